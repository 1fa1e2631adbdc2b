from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ecrf.domain.adverse_events import (
    AdverseEvent,
    Causality,
    ClockError,
    Outcome,
    PartialDateError,
    SeriousnessCriterion,
    causality_summary,
    certainly_before,
    check_consistency,
    date_bounds,
    is_related,
    sae_clock_status,
    sae_report_due,
    susar_due,
    susar_followup_due,
)
from ecrf.domain.ctcae_terms import SOCS, TERMS, find_terms, term_by_name
from ecrf.domain.dates import PartialDate

C = SeriousnessCriterion

# --- Causality ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("causality", "default", "strict"),
    [
        (Causality.UNRELATED, False, False),
        (Causality.UNLIKELY, False, False),
        (Causality.POSSIBLE, True, False),
        (Causality.PROBABLE, True, True),
        (Causality.DEFINITE, True, True),
        ("possible", True, False),
        (None, False, False),
    ],
)
def test_is_related(causality, default, strict):
    assert is_related(causality) is default
    strict_set = frozenset({Causality.PROBABLE, Causality.DEFINITE})
    assert is_related(causality, related=strict_set) is strict


def test_causality_is_per_drug():
    ae = AdverseEvent("Nausea", causality={"dexamethasone": Causality.UNLIKELY,
                                           "cytarabine": Causality.PROBABLE})
    assert ae.related_drugs() == ["cytarabine"]
    assert causality_summary(ae.causality) == {"cytarabine": True, "dexamethasone": False}


def test_unknown_causality_value_is_rejected():
    with pytest.raises(ValueError, match="maybe"):
        is_related("maybe")


# --- Partial dates ------------------------------------------------------------------------

CERTAINLY_BEFORE = [
    ("2024-03", "2024-03-15", False),
    ("2024-03-15", "2024-03", False),
    ("2024-02", "2024-03-01", True),
    ("2024-02-29", "2024-03", True),
    ("2024-02", "2024-02-29", False),
    ("2023-02", "2023-03-01", True),          # February 2023 ends on the 28th
    ("2024", "2024-06", False),
    ("2024-06", "2024", False),
    ("2023", "2024", True),
    ("2023-12-31", "2024", True),
    ("2024", "2024-12-31", False),
    ("2024-03-14", "2024-03-15", True),
    ("2024-03-15", "2024-03-15", False),
    ("2024-03-16", "2024-03-15", False),
    ("2024-03-15T23:59", "2024-03-16", True),
    ("2024-03-15T08:00", "2024-03-15T09:00", False),  # same day: not certainly before
    (date(2024, 3, 14), "2024-03-15", True),
    (date(2024, 3, 15), "2024-03", False),
    (datetime(2024, 3, 14, 23, 0, tzinfo=UTC), date(2024, 3, 15), True),
    (PartialDate(2024, 2), PartialDate(2024, 3), True),
    (PartialDate(2024), "2024-07-01", False),
]


@pytest.mark.parametrize(("a", "b", "expected"), CERTAINLY_BEFORE)
def test_certainly_before(a, b, expected):
    assert certainly_before(a, b) is expected


@pytest.mark.parametrize(
    ("value", "earliest", "latest"),
    [
        ("2024", date(2024, 1, 1), date(2024, 12, 31)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2023-02", date(2023, 2, 1), date(2023, 2, 28)),
        ("2024-04", date(2024, 4, 1), date(2024, 4, 30)),
        ("2024-03-15", date(2024, 3, 15), date(2024, 3, 15)),
    ],
)
def test_date_bounds(value, earliest, latest):
    assert date_bounds(value) == (earliest, latest)


@pytest.mark.parametrize("bad", ["2024-13", "2024-02-30", "15/03/2024", "24-03", "", 2024,
                                 "2024-3-5"])
def test_invalid_partial_dates_raise(bad):
    with pytest.raises(PartialDateError):
        certainly_before(bad, "2024-01-01")


# --- Consistency --------------------------------------------------------------------------


def codes(ae, **kwargs):
    return sorted(f.code for f in check_consistency(ae, **kwargs))


def test_clean_serious_fatal_event_has_no_findings():
    ae = AdverseEvent("Sepsis", onset="2024-03-01", resolution="2024-03-09", grade=5,
                      serious=True, criteria={C.DEATH, C.HOSPITALISATION},
                      outcome=Outcome.FATAL, death_date="2024-03-09")
    assert check_consistency(ae, consent_date="2024-02-20") == []


def test_clean_non_serious_event_has_no_findings():
    ae = AdverseEvent("Nausea", onset="2024-03", resolution="2024-03-15", grade=1,
                      serious=False, outcome=Outcome.RECOVERED)
    assert check_consistency(ae, consent_date="2024-03-10") == []


SERIOUSNESS = [
    (True, set(), ["serious_without_criterion"]),
    (False, {C.HOSPITALISATION}, ["criterion_without_serious"]),
    (None, {C.IMPORTANT_MEDICAL_EVENT}, ["serious_not_answered"]),
    (True, {C.LIFE_THREATENING}, []),
    (True, {C.DISABILITY, C.CONGENITAL_ANOMALY}, []),
    (False, set(), []),
    (None, set(), []),
]


@pytest.mark.parametrize(("serious", "criteria", "expected"), SERIOUSNESS)
def test_serious_exactly_when_a_criterion_is_ticked(serious, criteria, expected):
    ae = AdverseEvent("Lung infection", grade=3, serious=serious, criteria=criteria)
    assert codes(ae) == expected


DEATH_RULES = [
    # grade, outcome, death_date, criteria, expected codes
    (5, Outcome.RECOVERED, None, set(),
     ["death_date_missing", "grade5_not_fatal", "grade5_without_death_criterion"]),
    (5, Outcome.FATAL, None, {C.DEATH}, ["death_date_missing"]),
    (5, Outcome.FATAL, "2024-04", set(), ["grade5_without_death_criterion"]),
    (5, None, "2024-04-02", {C.DEATH}, ["grade5_not_fatal"]),
    (5, Outcome.FATAL, "2024-04-02", {C.DEATH}, []),
    (3, Outcome.FATAL, None, set(),
     ["death_date_missing", "fatal_not_grade5", "fatal_without_death_criterion"]),
    (4, Outcome.FATAL, "2024-04-02", {C.DEATH}, ["fatal_not_grade5"]),
    (None, Outcome.FATAL, "2024-04-02", {C.DEATH}, []),
    (4, Outcome.RECOVERING, None, {C.DEATH}, ["death_criterion_not_fatal"]),
    (4, Outcome.NOT_RECOVERED, None, {C.LIFE_THREATENING}, []),
]


@pytest.mark.parametrize(("grade", "outcome", "death_date", "criteria", "expected"),
                         DEATH_RULES)
def test_death_rules(grade, outcome, death_date, criteria, expected):
    ae = AdverseEvent("Intracranial hemorrhage", onset="2024-04-01", grade=grade,
                      serious=bool(criteria), criteria=criteria, outcome=outcome,
                      death_date=death_date)
    assert codes(ae) == expected


def test_finding_severities_and_fields():
    ae = AdverseEvent("Sepsis", grade=3, serious=False, outcome=Outcome.FATAL,
                      criteria=set())
    by_code = {f.code: f for f in check_consistency(ae)}
    assert by_code["fatal_not_grade5"].severity == "warning"
    assert by_code["fatal_without_death_criterion"].severity == "error"
    assert by_code["death_date_missing"].fields == ("death_date", "outcome")
    assert all(f.message for f in by_code.values())


@pytest.mark.parametrize(
    ("outcome", "resolution", "expected"),
    [
        (Outcome.NOT_RECOVERED, "2024-03-10", ["resolution_while_ongoing"]),
        (Outcome.RECOVERING, "2024-03-10", ["resolution_while_ongoing"]),
        (Outcome.RECOVERED, "2024-03-10", []),
        (Outcome.RECOVERED_WITH_SEQUELAE, "2024-03-10", []),
        (Outcome.UNKNOWN, "2024-03-10", []),
        (Outcome.NOT_RECOVERED, None, []),
    ],
)
def test_resolution_with_ongoing_outcome_is_a_warning(outcome, resolution, expected):
    ae = AdverseEvent("Fatigue", onset="2024-03-01", resolution=resolution, grade=1,
                      serious=False, outcome=outcome)
    findings = check_consistency(ae)
    assert [f.code for f in findings] == expected
    assert all(f.severity == "warning" for f in findings)


DATE_ORDER = [
    # onset, resolution, death, consent, expected codes
    ("2024-03-10", "2024-03-09", None, None, ["resolution_before_onset"]),
    ("2024-03-10", "2024-03-10", None, None, []),
    ("2024-03-15", "2024-03", None, None, []),
    ("2024-03-15", "2024-02", None, None, ["resolution_before_onset"]),
    ("2024-03", "2024-03-01", None, None, []),
    ("2024", "2023-12-31", None, None, ["resolution_before_onset"]),
    ("2024-03-09", None, None, "2024-03-10", ["onset_before_consent"]),
    ("2024-03-10", None, None, "2024-03-10", []),
    ("2024-03", None, None, "2024-03-10", []),
    ("2024-02", None, None, "2024-03-10", ["onset_before_consent"]),
    ("2024", None, None, "2024-03-10", []),
    ("2024-03-09", None, None, date(2024, 3, 10), ["onset_before_consent"]),
    ("2024-03-10", None, "2024-03-09", None, ["death_before_onset"]),
    ("2024-03-10", None, "2024-03", None, []),
]


@pytest.mark.parametrize(("onset", "resolution", "death", "consent", "expected"), DATE_ORDER)
def test_date_order(onset, resolution, death, consent, expected):
    ae = AdverseEvent("Diarrhea", onset=onset, resolution=resolution, death_date=death,
                      grade=2, serious=False)
    findings = [f for f in check_consistency(ae, consent_date=consent)
                if f.code not in ("death_date_missing",)]
    assert [f.code for f in findings] == expected
    assert all(f.severity == "error" for f in findings)


def test_onset_before_consent_names_only_the_ae_field():
    ae = AdverseEvent("Diarrhea", onset="2024-03-01")
    (finding,) = check_consistency(ae, consent_date="2024-03-05")
    assert finding.fields == ("onset",)
    assert "2024-03-01" in finding.message and "2024-03-05" in finding.message


@pytest.mark.parametrize("field_name", ["onset", "resolution", "death_date"])
def test_invalid_date_is_a_finding_not_an_exception(field_name):
    ae = AdverseEvent("Rash maculo-papular", **{field_name: "2024-02-30"})
    findings = check_consistency(ae)
    assert [(f.code, f.fields) for f in findings] == [("date_invalid", (field_name,))]


def test_invalid_consent_date_is_a_finding():
    findings = check_consistency(AdverseEvent("Nausea", onset="2024-03-01"),
                                 consent_date="March 2024")
    assert [(f.code, f.fields) for f in findings] == [("date_invalid", ("consent_date",))]


@pytest.mark.parametrize(("grade", "valid"),
                         [(0, False), (1, True), (4, True), (5, True), (6, False),
                          (True, False), (None, True)])
def test_grade_range(grade, valid):
    ae = AdverseEvent("Nausea", grade=grade, serious=False,
                      outcome=Outcome.FATAL if grade == 5 else None,
                      criteria={C.DEATH} if grade == 5 else set(),
                      death_date="2024-01-01" if grade == 5 else None)
    if grade == 5:
        ae.serious = True
    assert ("grade_invalid" not in codes(ae)) is valid


# --- SAE and SUSAR clocks -----------------------------------------------------------------

AWARE = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
DUE = datetime(2024, 3, 2, 10, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_sae_report_due_is_24_hours_after_awareness():
    assert sae_report_due(AWARE) == DUE
    cet = timezone(timedelta(hours=1))
    due = sae_report_due(datetime(2024, 3, 1, 11, 0, tzinfo=cet))
    assert due == DUE and due.tzinfo == UTC


SAE_CLOCK = [
    # submitted, now, state, remaining
    (None, AWARE, "due", timedelta(hours=24)),
    (None, DUE - SECOND, "due", SECOND),
    (None, DUE, "due", timedelta(0)),
    (None, DUE + SECOND, "overdue", -SECOND),
    (None, DUE + timedelta(days=2), "overdue", -timedelta(days=2)),
    (DUE, DUE + timedelta(days=5), "submitted_in_time", None),
    (DUE - SECOND, DUE, "submitted_in_time", None),
    (DUE + SECOND, DUE + SECOND, "submitted_late", None),
    (AWARE + timedelta(hours=2), AWARE + timedelta(hours=3), "submitted_in_time", None),
]


@pytest.mark.parametrize(("submitted", "now", "state", "remaining"), SAE_CLOCK)
def test_sae_clock_status(submitted, now, state, remaining):
    status = sae_clock_status(AWARE, submitted, now)
    assert status.state == state
    assert status.due_at == DUE
    assert status.remaining == remaining


def test_sae_clock_accepts_other_aware_zones():
    shanghai = timezone(timedelta(hours=8))
    submitted = datetime(2024, 3, 2, 18, 0, 1, tzinfo=shanghai)  # 10:00:01 UTC
    assert sae_clock_status(AWARE, submitted, submitted).state == "submitted_late"


@pytest.mark.parametrize("which", ["awareness", "submitted_at", "now"])
def test_sae_clock_refuses_naive_datetimes(which):
    args = {"awareness": AWARE, "submitted_at": DUE, "now": DUE}
    args[which] = datetime(2024, 3, 1, 10, 0)
    with pytest.raises(ClockError, match=which):
        sae_clock_status(**args)


def test_sae_report_due_refuses_naive_and_non_datetimes():
    with pytest.raises(ClockError, match="naive"):
        sae_report_due(datetime(2024, 3, 1, 10, 0))
    with pytest.raises(ClockError, match="not a datetime"):
        sae_report_due(date(2024, 3, 1))


@pytest.mark.parametrize(
    ("awareness", "fatal", "due"),
    [
        (date(2024, 3, 1), True, date(2024, 3, 8)),
        (date(2024, 3, 1), False, date(2024, 3, 16)),
        (date(2024, 2, 25), True, date(2024, 3, 3)),      # leap February
        (date(2023, 2, 25), True, date(2023, 3, 4)),
        (date(2024, 12, 28), False, date(2025, 1, 12)),
        (datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))), True,
         date(2024, 3, 9)),                                # 04:30 UTC on 2 March
    ],
)
def test_susar_due(awareness, fatal, due):
    assert susar_due(awareness, fatal) == due


def test_susar_followup_due():
    assert susar_followup_due(date(2024, 3, 1)) == date(2024, 3, 16)
    assert susar_followup_due(date(2024, 3, 1),
                              initial_report_date=date(2024, 3, 5)) == date(2024, 3, 13)


def test_susar_refuses_naive_datetime():
    with pytest.raises(ClockError, match="naive"):
        susar_due(datetime(2024, 3, 1, 9, 0), True)
    with pytest.raises(ClockError, match="not a date"):
        susar_due("2024-03-01", True)


# --- Bundled CTCAE terms ------------------------------------------------------------------

REQUIRED_TERMS = [
    ("Anemia", "Blood and lymphatic system disorders"),
    ("Febrile neutropenia", "Blood and lymphatic system disorders"),
    ("Bone marrow hypocellular", "Blood and lymphatic system disorders"),
    ("Disseminated intravascular coagulation", "Blood and lymphatic system disorders"),
    ("Neutrophil count decreased", "Investigations"),
    ("Platelet count decreased", "Investigations"),
    ("White blood cell decreased", "Investigations"),
    ("Lymphocyte count decreased", "Investigations"),
    ("Alanine aminotransferase increased", "Investigations"),
    ("Aspartate aminotransferase increased", "Investigations"),
    ("Blood bilirubin increased", "Investigations"),
    ("Alkaline phosphatase increased", "Investigations"),
    ("GGT increased", "Investigations"),
    ("Creatinine increased", "Investigations"),
    ("Sepsis", "Infections and infestations"),
    ("Lung infection", "Infections and infestations"),
    ("Catheter related infection", "Infections and infestations"),
    ("Skin infection", "Infections and infestations"),
    ("Urinary tract infection", "Infections and infestations"),
    ("Enterocolitis infectious", "Infections and infestations"),
    ("Upper respiratory infection", "Infections and infestations"),
    ("Infections and infestations - Other, specify", "Infections and infestations"),
    ("Epistaxis", "Respiratory, thoracic and mediastinal disorders"),
    ("Gastric hemorrhage", "Gastrointestinal disorders"),
    ("Rectal hemorrhage", "Gastrointestinal disorders"),
    ("Intracranial hemorrhage", "Nervous system disorders"),
    ("Hematuria", "Renal and urinary disorders"),
    ("Hepatic failure", "Hepatobiliary disorders"),
    ("Acute kidney injury", "Renal and urinary disorders"),
    ("Infusion related reaction", "Injury, poisoning and procedural complications"),
    ("Allergic reaction", "Immune system disorders"),
    ("Anaphylaxis", "Immune system disorders"),
    ("Cytokine release syndrome", "Immune system disorders"),
    ("Fever", "General disorders and administration site conditions"),
    ("Chills", "General disorders and administration site conditions"),
    ("Fatigue", "General disorders and administration site conditions"),
    ("Nausea", "Gastrointestinal disorders"),
    ("Vomiting", "Gastrointestinal disorders"),
    ("Diarrhea", "Gastrointestinal disorders"),
    ("Mucositis oral", "Gastrointestinal disorders"),
    ("Hyperglycemia", "Metabolism and nutrition disorders"),
    ("Hypokalemia", "Metabolism and nutrition disorders"),
    ("Insomnia", "Psychiatric disorders"),
    ("Hypertension", "Vascular disorders"),
    ("Alopecia", "Skin and subcutaneous tissue disorders"),
    ("Rash maculo-papular", "Skin and subcutaneous tissue disorders"),
]


@pytest.mark.parametrize(("name", "soc"), REQUIRED_TERMS)
def test_required_terms_are_bundled_with_their_soc(name, soc):
    term = term_by_name(name)
    assert term is not None and term.term == name
    assert term.soc == soc


def test_every_soc_has_other_specify_and_names_are_unique():
    assert len(SOCS) == 26
    for soc in SOCS:
        other = term_by_name(f"{soc} - Other, specify")
        assert other is not None and other.soc == soc and other.is_other_specify
    names = [t.term.casefold() for t in TERMS]
    assert len(names) == len(set(names))
    assert all(t.soc in SOCS for t in TERMS)


def test_term_lookup():
    assert term_by_name("  febrile   NEUTROPENIA ").term == "Febrile neutropenia"
    assert term_by_name("Neutropenia") is None
    assert term_by_name(None) is None
    assert [t.term for t in find_terms("neutro")][:2] == ["Neutrophil count decreased",
                                                          "Febrile neutropenia"]
    hemorrhage = find_terms("hemorrhage", limit=50)
    assert {"Epistaxis"}.isdisjoint(t.term for t in hemorrhage)
    assert "Intracranial hemorrhage" in [t.term for t in hemorrhage]
    assert len(find_terms("infection", limit=3)) == 3
    assert len(find_terms("Other, specify", limit=100)) == 26
    assert find_terms("") == [] and find_terms("zzz") == [] and find_terms("a", limit=0) == []
