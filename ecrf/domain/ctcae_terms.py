"""CTCAE v5.0 adverse-event terms bundled for the AE form's term picker.

A working subset chosen for AML induction, consolidation, hypomethylating therapy,
dexamethasone and cell-product infusions, plus the "<SOC> - Other, specify" term of every
system organ class so that nothing is unrecordable. Each term is filed under its MedDRA
primary SOC as CTCAE lists it. MedDRA codes are left to the licensed dictionary: the
``code_hint`` slot is there for a study that loads them, not filled from memory.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOOD = "Blood and lymphatic system disorders"
CARDIAC = "Cardiac disorders"
CONGENITAL = "Congenital, familial and genetic disorders"
EAR = "Ear and labyrinth disorders"
ENDOCRINE = "Endocrine disorders"
EYE = "Eye disorders"
GI = "Gastrointestinal disorders"
GENERAL = "General disorders and administration site conditions"
HEPATOBILIARY = "Hepatobiliary disorders"
IMMUNE = "Immune system disorders"
INFECTIONS = "Infections and infestations"
INJURY = "Injury, poisoning and procedural complications"
INVESTIGATIONS = "Investigations"
METABOLISM = "Metabolism and nutrition disorders"
MUSCULOSKELETAL = "Musculoskeletal and connective tissue disorders"
NEOPLASMS = "Neoplasms benign, malignant and unspecified (incl cysts and polyps)"
NERVOUS = "Nervous system disorders"
PREGNANCY = "Pregnancy, puerperium and perinatal conditions"
PSYCHIATRIC = "Psychiatric disorders"
RENAL = "Renal and urinary disorders"
REPRODUCTIVE = "Reproductive system and breast disorders"
RESPIRATORY = "Respiratory, thoracic and mediastinal disorders"
SKIN = "Skin and subcutaneous tissue disorders"
SOCIAL = "Social circumstances"
PROCEDURES = "Surgical and medical procedures"
VASCULAR = "Vascular disorders"

SOCS: tuple[str, ...] = (
    BLOOD, CARDIAC, CONGENITAL, EAR, ENDOCRINE, EYE, GI, GENERAL, HEPATOBILIARY, IMMUNE,
    INFECTIONS, INJURY, INVESTIGATIONS, METABOLISM, MUSCULOSKELETAL, NEOPLASMS, NERVOUS,
    PREGNANCY, PSYCHIATRIC, RENAL, REPRODUCTIVE, RESPIRATORY, SKIN, SOCIAL, PROCEDURES,
    VASCULAR,
)


@dataclass(frozen=True)
class CtcaeTerm:
    term: str
    soc: str
    code_hint: str | None = None

    @property
    def is_other_specify(self) -> bool:
        return self.term.endswith("- Other, specify")


_BY_SOC: dict[str, tuple[str, ...]] = {
    BLOOD: (
        "Anemia", "Bone marrow hypocellular", "Disseminated intravascular coagulation",
        "Febrile neutropenia", "Hemolysis", "Hemolytic uremic syndrome", "Leukocytosis",
        "Thrombotic thrombocytopenic purpura",
    ),
    INVESTIGATIONS: (
        "Neutrophil count decreased", "Platelet count decreased",
        "White blood cell decreased", "Lymphocyte count decreased",
        "Alanine aminotransferase increased", "Aspartate aminotransferase increased",
        "Blood bilirubin increased", "Alkaline phosphatase increased", "GGT increased",
        "Creatinine increased", "INR increased",
        "Activated partial thromboplastin time prolonged", "Fibrinogen decreased",
        "Electrocardiogram QT corrected interval prolonged", "Ejection fraction decreased",
        "Lipase increased", "Serum amylase increased", "Weight loss", "Weight gain",
    ),
    INFECTIONS: (
        "Sepsis", "Bacteremia", "Lung infection", "Catheter related infection",
        "Device related infection", "Skin infection", "Soft tissue infection",
        "Urinary tract infection", "Enterocolitis infectious", "Upper respiratory infection",
        "Sinusitis", "Mucosal infection", "Tooth infection", "Anorectal infection",
        "Herpes simplex reactivation", "Cytomegalovirus infection reactivation",
    ),
    RESPIRATORY: (
        "Epistaxis", "Bronchopulmonary hemorrhage", "Dyspnea", "Cough", "Hypoxia",
        "Pneumonitis", "Pleural effusion",
    ),
    GI: (
        "Nausea", "Vomiting", "Diarrhea", "Constipation", "Mucositis oral",
        "Abdominal pain", "Dyspepsia", "Colitis", "Typhlitis", "Anal mucositis",
        "Esophagitis", "Gastric hemorrhage", "Rectal hemorrhage", "Oral hemorrhage",
        "Upper gastrointestinal hemorrhage", "Lower gastrointestinal hemorrhage",
        "Hemorrhoidal hemorrhage",
    ),
    NERVOUS: (
        "Intracranial hemorrhage", "Headache", "Dizziness", "Seizure",
        "Peripheral sensory neuropathy", "Dysgeusia",
    ),
    RENAL: ("Acute kidney injury", "Hematuria", "Proteinuria", "Cystitis noninfective"),
    HEPATOBILIARY: ("Hepatic failure",),
    IMMUNE: ("Allergic reaction", "Anaphylaxis", "Cytokine release syndrome"),
    INJURY: ("Infusion related reaction", "Bruising"),
    GENERAL: (
        "Fever", "Chills", "Fatigue", "Edema limbs", "Malaise", "Pain",
        "Infusion site extravasation", "Multi-organ failure",
    ),
    METABOLISM: (
        "Hyperglycemia", "Hypokalemia", "Hypomagnesemia", "Hypophosphatemia",
        "Hypocalcemia", "Hyponatremia", "Hypoalbuminemia", "Hyperuricemia", "Anorexia",
        "Tumor lysis syndrome",
    ),
    PSYCHIATRIC: ("Insomnia", "Anxiety", "Depression", "Confusion"),
    VASCULAR: ("Hypertension", "Hypotension", "Thromboembolic event", "Hematoma"),
    SKIN: ("Alopecia", "Rash maculo-papular", "Rash acneiform", "Pruritus", "Purpura"),
    CARDIAC: ("Sinus tachycardia", "Atrial fibrillation", "Heart failure",
              "Chest pain - cardiac"),
    MUSCULOSKELETAL: ("Arthralgia", "Myalgia", "Back pain", "Bone pain"),
    EYE: ("Retinal hemorrhage",),
    REPRODUCTIVE: ("Vaginal hemorrhage",),
}

TERMS: tuple[CtcaeTerm, ...] = tuple(
    [CtcaeTerm(term, soc) for soc, names in _BY_SOC.items() for term in names]
    + [CtcaeTerm(f"{soc} - Other, specify", soc) for soc in SOCS]
)

_BY_NAME: dict[str, CtcaeTerm] = {t.term.casefold(): t for t in TERMS}


def term_by_name(name: str) -> CtcaeTerm | None:
    """The bundled term with exactly this name (case-insensitive), or None."""
    return _BY_NAME.get(" ".join(name.split()).casefold()) if isinstance(name, str) else None


def find_terms(text: str, limit: int = 20) -> list[CtcaeTerm]:
    """Terms containing ``text``; names starting with it come first, then alphabetical."""
    needle = " ".join(text.split()).casefold() if isinstance(text, str) else ""
    if not needle or limit <= 0:
        return []
    hits = [t for t in TERMS if needle in t.term.casefold()]
    hits.sort(key=lambda t: (not t.term.casefold().startswith(needle), t.term.casefold()))
    return hits[:limit]
