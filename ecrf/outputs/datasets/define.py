"""define.xml (CDISC Define-XML 2.1) describing the SDTM datasets of a study.

Everything comes from :func:`ecrf.outputs.datasets.sdtm.sdtm_package` (each dataset's
variables with their full label, type, length, origin, source items, method and code lists)
and the study definition (code lists with their decodes, forms for the CRF page references):

- one ``ItemGroupDef`` per dataset, its ``def:leaf`` the dataset's XPT file, and one
  ``ItemDef`` per variable with the full label (XPT labels may be shortened, never these);
- **origins**: a variable read from the CRF is ``Collected`` from the investigator, with a
  ``def:PDFPageRef`` into the annotated CRF (``acrf.pdf``): physical page numbers when the
  annotated CRF was rendered with the package, else the named destinations
  ``form-<form OID>`` that every annotated CRF carries. A derived variable has a
  ``MethodDef`` with the rule; trial design variables come from the protocol, the others
  are assigned by the sponsor;
- **code lists**: the study's code lists (codes and decodes) of the items a variable comes
  from; a variable with CDISC controlled terminology (``CDISC_CT`` below) and no study code
  list gets a list of the values in the data, tagged with the NCI code of the CDISC code
  list. A value in the data that is not in the list is added as an extended value;
- **value-level metadata**: the result (``--ORRES``) of LB, VS and RS per test code, with the
  data type, length and source of that test's values.

The document is plain ODM 1.3.2 with the def: extensions; tests validate it against the
Define-XML 2.1 schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal

from lxml import etree

from ecrf.crf import CodeList, ItemDef, StudyDefinition
from ecrf.outputs.datasets.sdtm import Dataset, Variable

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
DEF_NS = "http://www.cdisc.org/ns/def/v2.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NSMAP = {None: ODM_NS, "def": DEF_NS, "xlink": XLINK_NS}
SDTMIG_VERSION = "3.4"
CT_VERSION = "2024-09-27"  # the SDTM CDISC CT package the NCI codes below are taken from
ACRF = "acrf.pdf"

# variable -> (CDISC code list short name, NCI code of the code list)
CDISC_CT: dict[str, tuple[str, str]] = {
    "AGEU": ("AGEU", "C66781"), "SEX": ("SEX", "C66731"), "RACE": ("RACE", "C74457"),
    "ETHNIC": ("ETHNIC", "C66790"), "COUNTRY": ("COUNTRY", "C66786"),
    "DTHFL": ("NY", "C66742"), "AESER": ("NY", "C66742"), "AESCONG": ("NY", "C66742"),
    "AESDISAB": ("NY", "C66742"), "AESDTH": ("NY", "C66742"), "AESHOSP": ("NY", "C66742"),
    "AESLIFE": ("NY", "C66742"), "AESMIE": ("NY", "C66742"), "AECONTRT": ("NY", "C66742"),
    "CMPRESP": ("NY", "C66742"), "CMOCCUR": ("NY", "C66742"), "MHPRESP": ("NY", "C66742"),
    "MHOCCUR": ("NY", "C66742"), "AEACN": ("ACN", "C66767"), "AEOUT": ("OUT", "C66768"),
    "AETOXGR": ("TOXGR", "C87162"), "LBTOXGR": ("TOXGR", "C87162"),
    "DSDECOD": ("NCOMPLT", "C66727"), "DSCAT": ("DSCAT", "C74558"),
    "LBNRIND": ("NRIND", "C78736"), "EXROUTE": ("ROUTE", "C66729"),
    "CMROUTE": ("ROUTE", "C66729"), "EXDOSFRQ": ("FREQ", "C71113"), "CMDOSFRQ": ("FREQ", "C71113"),
    "IECAT": ("IECAT", "C66797"), "TSPARMCD": ("TSPARMCD", "C66738"),
    "DOMAIN": ("DOMAIN", "C66734"), "RDOMAIN": ("DOMAIN", "C66734"),
    "EPOCH": ("EPOCH", "C99079"),
}
# Rules of derived variables that the dataset builder states nowhere else; {D} is the domain.
METHODS = {
    "AGEU": "YEARS, the unit of AGE.", "ARM": "The name of the arm coded in ARMCD.",
    "ACTARM": "The name of the arm coded in ACTARMCD.",
    "COUNTRY": "The country of the subject's site.",
    "DSTERM": "The disposition event of the subject status, or INFORMED CONSENT OBTAINED.",
    "DSCAT": "DISPOSITION EVENT for the subject status, PROTOCOL MILESTONE for the consent.",
    "DSSTDTC": "The date of the status event, or of the study's consent anchor.",
    "{D}PRESP": "Y for a yes/no question of the form asked of every subject.",
    "VISIT": "The name of the scheduled visit numbered VISITNUM.",
    "{D}TESTCD": "The lab test of the item (its lab specification), else the item OID, "
                 "cut to 8 characters.",
    "{D}TEST": "The label of the item, cut to 40 characters.",
    "{D}ORRESU": "The unit of the item.",
    "LBORNRLO": "The item's lower limit of normal, evaluated on the record's form.",
    "LBORNRHI": "The item's upper limit of normal, evaluated on the record's form.",
    "{D}STRESC": "{D}STRESN as text when the result is a number, else {D}ORRES.",
    "{D}STRESN": "{D}ORRES as a number (LB: converted to the CTCAE grading unit).",
    "{D}STRESU": "The unit of {D}STRESN.",
    "{D}DTC": "The item annotated {D}DTC in the result's row, else on its form, else the "
              "date of the visit.",
}
NY_TERMS = {"Y": "C49488", "N": "C49487", "U": "C17998", "NA": "C48660"}
CLASSES = {"DM": "SPECIAL PURPOSE", "AE": "EVENTS", "DS": "EVENTS", "MH": "EVENTS",
           "CM": "INTERVENTIONS", "EX": "INTERVENTIONS", "LB": "FINDINGS", "VS": "FINDINGS",
           "RS": "FINDINGS", "TA": "TRIAL DESIGN", "TE": "TRIAL DESIGN", "TV": "TRIAL DESIGN",
           "TI": "TRIAL DESIGN", "TS": "TRIAL DESIGN"}
STRUCTURES = {
    "DM": "One record per subject", "DS": "One record per disposition status or protocol "
    "milestone per subject", "AE": "One record per adverse event per subject",
    "CM": "One record per recorded intervention occurrence or constant-dosing interval per "
    "subject", "MH": "One record per medical history event per subject",
    "EX": "One record per protocol-specified study treatment, constant-dosing interval, per "
    "subject", "LB": "One record per lab test per time point per visit per subject",
    "VS": "One record per vital sign measurement per time point per visit per subject",
    "RS": "One record per response assessment per visit per subject",
    "TA": "One record per planned Element per Arm", "TE": "One record per planned Element",
    "TV": "One record per planned Visit per Arm", "TI": "One record per I/E criterion",
    "TS": "One record per trial summary parameter value",
}
KEYS = {"DM": ("STUDYID", "USUBJID"), "TA": ("STUDYID", "ARMCD", "TAETORD"),
        "TE": ("STUDYID", "ETCD"), "TV": ("STUDYID", "VISITNUM"),
        "TI": ("STUDYID", "IETESTCD"), "TS": ("STUDYID", "TSPARMCD", "TSSEQ")}
SUPP_KEYS = ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM")
FINDINGS = ("LB", "VS", "RS")
TOPICS = {"AE": "AETERM", "CM": "CMTRT", "MH": "MHTERM", "EX": "EXTRT", "DS": "DSTERM"}


def _q(tag: str) -> str:
    prefix, _, name = tag.rpartition(":")
    return f"{{{DEF_NS if prefix == 'def' else XLINK_NS}}}{name}" if prefix else \
        f"{{{ODM_NS}}}{tag}"


def _el(parent: etree._Element | None, tag: str, text: str | None = None,
        **attributes: str | None) -> etree._Element:
    attrs = {_q(k.replace("__", ":")) if "__" in k else k: v
             for k, v in attributes.items() if v is not None}
    node = etree.Element(_q(tag), attrs, nsmap=NSMAP) if parent is None else \
        etree.SubElement(parent, _q(tag), attrs)
    if text is not None:
        node.text = text
    return node


def _described(parent: etree._Element, tag: str, text: str) -> etree._Element:
    node = _el(parent, tag)
    _el(node, "TranslatedText", text).set(XML_LANG, "en")
    return node


def _oid(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def _value_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _data_type(variable: Variable, values: Iterable[object]) -> tuple[str, int | None]:
    """Define-XML data type and length of a variable from its SDTM type and its values."""
    texts = [t for t in (_value_text(v) for v in values) if t]
    if variable.name.endswith("DTC"):
        if not texts:
            return "date", None
        timed = any("T" in t for t in texts)
        partial = any(len(t) < (16 if "T" in t else 10) for t in texts)
        return ("partialDatetime" if timed else "partialDate") if partial else \
            ("datetime" if timed else "date"), None
    if variable.type == "text":
        return "text", max(1, variable.length)
    if variable.type == "integer":
        return "integer", max([len(t.lstrip("-")) for t in texts], default=1)
    return "float", max([len(t.replace("-", "").replace(".", "")) for t in texts], default=1)


def _significant(values: Iterable[object]) -> int:
    digits = [len(t.partition(".")[2]) for t in (_value_text(v) for v in values) if t]
    return max(digits, default=0)


class _Builder:
    def __init__(self, package: Mapping[str, Dataset], definition: StudyDefinition,
                 pages: Mapping[str, int] | None) -> None:
        self.package = package
        self.definition = definition
        self.pages = pages
        self.codelists: dict[str, tuple[str, list[tuple[str, str | None, str | None]],
                                        str | None, bool]] = {}
        self.methods: dict[str, tuple[str, str]] = {}
        self.value_lists: list[tuple[str, list[tuple[str, str, str]]]] = []
        self.where: dict[str, tuple[str, str]] = {}
        # (variable, ItemDef OID, length, significant digits, code list, value list)
        self.items: list[tuple[Variable, str, int | None, int | None, str | None,
                               str | None]] = []
        self.values: dict[str, list[object]] = {}

    # --- code lists -----------------------------------------------------------------------

    def study_codelist(self, oid: str) -> CodeList | None:
        if oid in self.definition.codelists:
            return self.definition.codelists[oid]
        for form in self.definition.forms.values():
            for item in form.items:
                if item.choices is not None and item.choices.oid == oid:
                    return item.choices
        return None

    def codelist_for(self, dataset: str, variable: Variable,
                     values: list[object]) -> str | None:
        """The code list of a variable: its source items' study code list (shared by every
        variable using it), a merge of several, or for CDISC controlled terminology
        without a study list the values in the data; values outside the list are added
        as extended values."""
        present = sorted({t for t in (_value_text(v) for v in values) if t})
        ct = CDISC_CT.get(variable.name)
        lists = [c for c in (self.study_codelist(o) for o in variable.codelists) if c]
        if not lists and (ct is None or not present):
            return None
        if len(lists) == 1:
            oid, name = f"CL.{_oid(lists[0].oid)}", lists[0].oid
            nci = ct[1] if ct and ct[0] == lists[0].oid else (
                CDISC_CT["DTHFL"][1] if lists[0].oid == "NY" else None)
        else:
            oid = f"CL.{dataset}.{variable.name}"
            name = f"{ct[0] if ct and not lists else variable.name} ({dataset}.{variable.name})"
            nci = ct[1] if ct and not lists else None
        terms = self.codelists[oid][1] if oid in self.codelists else []
        seen = {t[0] for t in terms}
        for codelist in lists:
            for item in codelist.items:
                if item.code not in seen:
                    seen.add(item.code)
                    terms.append((item.code, item.label, None))
        for value in present:
            if value not in seen:
                seen.add(value)
                terms.append((value, None, "Yes" if lists else None))
        if oid not in self.codelists:
            self.codelists[oid] = (name, terms, nci, bool(lists))
        return oid

    # --- origins and methods --------------------------------------------------------------

    def method_for(self, dataset: str, variable: Variable) -> str | None:
        if variable.origin != "Derived":
            return None
        oid = f"MT.{dataset}.{variable.name}"
        generic = next((m for k, m in METHODS.items()
                        if k.replace("{D}", dataset) == variable.name), None)
        text = variable.method or (generic.replace("{D}", dataset) if generic else
                                   f"{variable.label}: set when the dataset is made.")
        self.methods[oid] = (f"Algorithm to derive {dataset}.{variable.name}", text)
        return oid

    def origin(self, parent: etree._Element, variable: Variable,
               sources: Iterable[str] | None = None) -> None:
        sources = tuple(variable.sources if sources is None else sources)
        if variable.origin == "CRF":
            node = _el(parent, "def:Origin", Type="Collected", Source="Investigator")
            forms = sorted({s.split(".", 1)[0] for s in sources})
            ref = _el(node, "def:DocumentRef", leafID="LF.acrf")
            if self.pages is not None and all(f in self.pages for f in forms):
                pages = sorted({self.pages[f] for f in forms})
                _el(ref, "def:PDFPageRef", Type="PhysicalRef",
                    PageRefs=" ".join(str(p) for p in pages))
            else:
                _el(ref, "def:PDFPageRef", Type="NamedDestination",
                    PageRefs=" ".join(f"form-{f}" for f in forms))
        elif variable.origin == "Derived":
            _el(parent, "def:Origin", Type="Derived", Source="Sponsor")
        elif variable.origin == "Protocol":
            _el(parent, "def:Origin", Type="Protocol")
        else:
            _el(parent, "def:Origin", Type="Assigned", Source="Sponsor")

    # --- value-level metadata -------------------------------------------------------------

    def source_item(self, source: str) -> ItemDef | None:
        form_oid, _, item_oid = source.partition(".")
        form = self.definition.forms.get(form_oid)
        return next((i for i in form.items if i.oid == item_oid), None) if form else None

    def value_level(self, dataset: Dataset, variable: Variable) -> str | None:
        domain = dataset.name
        if domain not in FINDINGS or variable.name != f"{domain}ORRES":
            return None
        testcd = f"{domain}TESTCD"
        if testcd not in dataset.columns:
            return None
        tests: dict[str, list[object]] = {}
        names: dict[str, str] = {}
        units: dict[str, set[str]] = {}
        for row in dataset.rows:
            code = row.get(testcd)
            if code is None:
                continue
            tests.setdefault(str(code), []).append(row.get(variable.name))
            names.setdefault(str(code), str(row.get(f"{domain}TEST") or code))
            if row.get(f"{domain}ORRESU"):
                units.setdefault(str(code), set()).add(str(row[f"{domain}ORRESU"]))
        if not tests:
            return None
        refs = []
        for code in sorted(tests):
            values = tests[code]
            numbers = []
            for value in values:
                try:
                    numbers.append(Decimal(str(value)) if value is not None else None)
                except ArithmeticError:
                    numbers = []
                    break
            numeric = bool(numbers) and all(n is not None for n in numbers)
            kind = ("integer" if all(n == n.to_integral() for n in numbers) else "float") \
                if numeric else "text"
            item_oid = f"IT.{domain}.{variable.name}.{_oid(code)}"
            sources = [s for s in variable.sources if self._tests(s, code)]
            codelists = tuple(sorted({
                c for s in sources if (i := self.source_item(s)) is not None
                for c in [i.codelist or (i.choices.oid if i.choices else None)] if c}))
            texts = [t for t in (_value_text(v) for v in values) if t]
            length = max([len(t.encode("utf-8")) for t in texts], default=1)
            unit = ", ".join(sorted(units.get(code, ())))
            label = f"{names[code]} result" + (f" in {unit}" if unit else "")
            vld = Variable(variable.name, label, kind, length,
                            "CRF" if sources else variable.origin, tuple(sources),
                            variable.method, codelists)
            where_oid = f"WC.{domain}.{testcd}.{_oid(code)}"
            self.where[where_oid] = (f"IT.{domain}.{testcd}", code)
            self.items.append((vld, item_oid, None, None,
                               self.codelist_for(domain, vld, values), None))
            refs.append((item_oid, where_oid, kind))
            self.values[item_oid] = values
        oid = f"VL.{domain}.{variable.name}"
        self.value_lists.append((oid, [(i, w, k) for i, w, k in refs]))
        return oid

    def _tests(self, source: str, code: str) -> bool:
        item = self.source_item(source)
        if item is None:
            return False
        return (item.lab.test if item.lab else item.oid)[:8] == code


def metadata_version_oid(study_oid: str) -> str:
    """The OID of the define.xml MetaDataVersion (Dataset-JSON files name it too)."""
    return f"MDV.{_oid(study_oid)}.SDTMIG.{SDTMIG_VERSION}"


def key_variables(name: str, columns: tuple[str, ...]) -> list[str]:
    """The key variables of a dataset, in key order, as define.xml declares them."""
    return _keys(name, columns)


def _keys(name: str, columns: tuple[str, ...]) -> list[str]:
    if name.startswith("SUPP"):
        wanted = SUPP_KEYS
    elif name in KEYS:
        wanted = KEYS[name]
    elif name in FINDINGS:
        wanted = ("STUDYID", "USUBJID", f"{name}TESTCD", "VISITNUM", f"{name}DTC", f"{name}SEQ")
    else:
        wanted = ("STUDYID", "USUBJID", TOPICS.get(name, ""), f"{name}STDTC", f"{name}SEQ")
    return [k for k in wanted if k in columns]


def define_xml(package: Mapping[str, Dataset], definition: StudyDefinition, *,
               study_oid: str, version_label: str, content_hash: str | None = None,
               created: dt.datetime | None = None, pages: Mapping[str, int] | None = None,
               dataset_suffix: str = ".xpt") -> bytes:
    """The define.xml of ``package`` as UTF-8 bytes.

    ``pages`` maps form OIDs to their first page in the annotated CRF (``acrf.pdf``);
    without it the CRF origins point at the PDF's named destinations.
    """
    created = (created or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    build = _Builder(package, definition, pages)
    root = _el(None, "ODM", ODMVersion="1.3.2", FileType="Snapshot",
               FileOID=f"DEFINE.{_oid(study_oid)}.{_oid(version_label)}",
               CreationDateTime=created.isoformat().replace("+00:00", "Z"),
               Originator="ecrf", SourceSystem="ecrf", def__Context="Submission")
    study = _el(root, "Study", OID=_oid(study_oid))
    glob = _el(study, "GlobalVariables")
    _el(glob, "StudyName", study_oid)
    _el(glob, "StudyDescription", definition.title or definition.name)
    _el(glob, "ProtocolName", definition.protocol_id or study_oid)
    description = f"SDTM datasets of {study_oid}, study version {version_label}" + (
        f" (content {content_hash})" if content_hash else "")
    mdv = _el(study, "MetaDataVersion", OID=metadata_version_oid(study_oid),
              Name=f"{study_oid} SDTM", Description=description, def__DefineVersion="2.1.0")
    standards = _el(mdv, "def:Standards")
    _el(standards, "def:Standard", OID="STD.SDTMIG", Name="SDTMIG", Type="IG",
        Version=SDTMIG_VERSION, Status="Final")
    _el(standards, "def:Standard", OID="STD.CT", Name="CDISC/NCI", Type="CT",
        PublishingSet="SDTM", Version=CT_VERSION, Status="Final")
    acrf = _el(mdv, "def:AnnotatedCRF")
    _el(acrf, "def:DocumentRef", leafID="LF.acrf")

    groups = []
    for name, data in package.items():
        refs = []
        keys = _keys(name, data.columns)
        for order, variable in enumerate(data.variables, start=1):
            values = [row.get(variable.name) for row in data.rows]
            kind, length = _data_type(variable, values)
            oid = f"IT.{name}.{variable.name}"
            vl = build.value_level(data, variable)
            digits = _significant(values) if kind == "float" else None
            build.items.append((variable, oid, length, digits,
                                build.codelist_for(name, variable, values), vl))
            build.values[oid] = values
            refs.append((oid, order, variable, keys.index(variable.name) + 1
                         if variable.name in keys else None, build.method_for(name, variable)))
        groups.append((name, data, refs))

    for oid, refs in build.value_lists:
        node = _el(mdv, "def:ValueListDef", OID=oid)
        for order, (item_oid, where_oid, _kind) in enumerate(refs, start=1):
            ref = _el(node, "ItemRef", ItemOID=item_oid, OrderNumber=str(order),
                      Mandatory="No")
            _el(ref, "def:WhereClauseRef", WhereClauseOID=where_oid)
    for oid, (item_oid, value) in build.where.items():
        node = _el(mdv, "def:WhereClauseDef", OID=oid)
        check = _el(node, "RangeCheck", Comparator="EQ", SoftHard="Soft", def__ItemOID=item_oid)
        _el(check, "CheckValue", value)

    for name, data, refs in groups:
        domain = name[4:] if name.startswith("SUPP") else name
        group = _el(mdv, "ItemGroupDef", OID=f"IG.{name}", Name=name, Repeating=(
            "No" if name == "DM" else "Yes"), IsReferenceData="Yes" if name in (
            "TA", "TE", "TV", "TI", "TS") else "No", SASDatasetName=name, Domain=domain,
            Purpose="Tabulation", def__Structure=STRUCTURES.get(name) or (
                "One record per supplemental qualifier per related parent domain record"),
            def__StandardOID="STD.SDTMIG", def__ArchiveLocationID=f"LF.{name}")
        _described(group, "Description", data.label)
        for oid, order, variable, key, method in refs:
            mandatory = key is not None or variable.name in (
                "DOMAIN", f"{name}SEQ", TOPICS.get(name), f"{name}TESTCD", f"{name}TEST",
                "QVAL", "QLABEL")
            _el(group, "ItemRef", ItemOID=oid, OrderNumber=str(order),
                Mandatory="Yes" if mandatory else "No",
                KeySequence=str(key) if key else None, MethodOID=method)
        if name.startswith("SUPP"):
            _el(group, "Alias", Context="DomainDescription",
                Name=f"Supplemental Qualifiers for {domain}")
        _el(group, "def:Class", Name="RELATIONSHIP" if name.startswith("SUPP")
            else CLASSES.get(name, "FINDINGS"))
        leaf = _el(group, "def:leaf", ID=f"LF.{name}",
                   xlink__href=f"{name.lower()}{dataset_suffix}")
        _el(leaf, "def:title", f"{name.lower()}{dataset_suffix}")

    for variable, oid, length, digits, codelist, vl in build.items:
        values = build.values.get(oid, [])
        kind, computed = _data_type(variable, values)
        if length is None and kind in ("text", "integer", "float"):
            length = computed
        if kind == "float" and digits is None:
            digits = _significant(values)
        item = _el(mdv, "ItemDef", OID=oid, Name=variable.name, DataType=kind,
                   Length=str(length) if length is not None and kind in (
                       "text", "integer", "float") else None,
                   SignificantDigits=str(digits) if kind == "float" else None,
                   SASFieldName=variable.name)
        _described(item, "Description", variable.label)
        if codelist:
            _el(item, "CodeListRef", CodeListOID=codelist)
        build.origin(item, variable)
        if vl:
            _el(item, "def:ValueListRef", ValueListOID=vl)

    for oid, (name, terms, nci, decoded) in build.codelists.items():
        node = _el(mdv, "CodeList", OID=oid, Name=name, DataType="text",
                   def__StandardOID="STD.CT" if nci else None)
        for order, (code, label, extended) in enumerate(terms, start=1):
            if decoded:
                term = _el(node, "CodeListItem", CodedValue=code, OrderNumber=str(order),
                           def__ExtendedValue=extended)
                _described(term, "Decode", label or code)
            else:
                term = _el(node, "EnumeratedItem", CodedValue=code, OrderNumber=str(order),
                           def__ExtendedValue=extended)
            if nci == "C66742" and code in NY_TERMS:
                _el(term, "Alias", Context="nci:ExtCodeID", Name=NY_TERMS[code])
        if nci:
            _el(node, "Alias", Context="nci:ExtCodeID", Name=nci)

    for oid, (name, text) in build.methods.items():
        method = _el(mdv, "MethodDef", OID=oid, Name=name, Type="Computation")
        _described(method, "Description", text)

    leaf = _el(mdv, "def:leaf", ID="LF.acrf", xlink__href=ACRF)
    _el(leaf, "def:title", "Annotated Case Report Form")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
