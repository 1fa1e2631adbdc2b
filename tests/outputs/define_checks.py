"""Checks of a define.xml against the Define-XML 2.1 schema and against the datasets it
describes, without a stylesheet: every variable of the data is described and every
described variable is in the data, every reference (ItemOID, CodeListOID, MethodOID,
ValueListOID, WhereClauseOID, leafID) resolves, and every value of a variable with a code
list is in the list.

The schema (tests/fixtures/define_xml_2_1, see its SOURCE.md) is CDISC's Define-XML 2.1
package as bundled with the MIT-licensed defineutils project."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

SCHEMA = (Path(__file__).resolve().parents[1] / "fixtures" / "define_xml_2_1"
          / "cdisc-define-2.1" / "define2-1-0.xsd")
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1",
      "xlink": "http://www.w3.org/1999/xlink"}


@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def schema_errors(xml: bytes) -> list[str]:
    checker = schema()
    if checker.validate(etree.fromstring(xml)):
        return []
    return [f"line {e.line}: {e.message}" for e in checker.error_log]


def _value(value: object) -> str | None:
    if value is None:
        return None
    text = format(value.normalize(), "f") if hasattr(value, "normalize") else str(value)
    return text or None


def consistency_problems(xml: bytes, package: dict) -> list[str]:
    """What in ``xml`` does not match the datasets of ``package`` (empty when all does)."""
    root = etree.fromstring(xml)
    problems = []

    def oids(xpath: str, attribute: str = "OID") -> set[str]:
        return {n.get(attribute) for n in root.iterfind(xpath, NS)}

    items = {n.get("OID"): n for n in root.iterfind(".//odm:ItemDef", NS)}
    codelists = {n.get("OID"): n for n in root.iterfind(".//odm:CodeList", NS)}
    methods, value_lists = oids(".//odm:MethodDef"), oids(".//def:ValueListDef")
    wheres = oids(".//def:WhereClauseDef")
    leaves = {n.get("ID") for n in root.iterfind(".//def:leaf", NS)}
    groups = {n.get("Name"): n for n in root.iterfind(".//odm:ItemGroupDef", NS)}
    if set(groups) != set(package):
        problems.append(f"datasets: define.xml {sorted(groups)}, data {sorted(package)}")
    for name, data in package.items():
        group = groups.get(name)
        if group is None:
            continue
        described = []
        for ref in group.iterfind("odm:ItemRef", NS):
            item = items.get(ref.get("ItemOID"))
            if item is None:
                problems.append(f"{name}: ItemRef {ref.get('ItemOID')} has no ItemDef")
                continue
            described.append(item.get("Name"))
            method = ref.get("MethodOID")
            if method is not None and method not in methods:
                problems.append(f"{name}.{item.get('Name')}: MethodOID {method} unresolved")
            origin = item.find("def:Origin", NS)
            if origin is not None and origin.get("Type") == "Derived" and method is None:
                problems.append(f"{name}.{item.get('Name')}: derived without a method")
        if described != list(data.columns):
            problems.append(f"{name}: define.xml {described}, data {list(data.columns)}")
        labels = {v.name: v.label for v in data.variables}
        for variable in described:
            item = items.get(f"IT.{name}.{variable}")
            if item is None:
                continue
            text = item.findtext("odm:Description/odm:TranslatedText", None, NS)
            if text != labels.get(variable):
                problems.append(f"{name}.{variable}: label {text!r}, not {labels[variable]!r}")
            ref = item.find("odm:CodeListRef", NS)
            if ref is not None and ref.get("CodeListOID") in codelists:
                allowed = {t.get("CodedValue") for t in codelists[ref.get("CodeListOID")]
                           if t.get("CodedValue") is not None}
                outside = {_value(r.get(variable)) for r in data.rows} - allowed - {None}
                if outside:
                    problems.append(f"{name}.{variable}: {sorted(outside)} not in "
                                    f"{ref.get('CodeListOID')}")
        if group.find("def:leaf", NS) is None and group.get(
                f"{{{NS['def']}}}ArchiveLocationID") not in leaves:
            problems.append(f"{name}: no leaf for the dataset file")
    for node in root.iterfind(".//odm:CodeListRef", NS):
        if node.get("CodeListOID") not in codelists:
            problems.append(f"CodeListRef {node.get('CodeListOID')} unresolved")
    for node in root.iterfind(".//def:ValueListRef", NS):
        if node.get("ValueListOID") not in value_lists:
            problems.append(f"ValueListRef {node.get('ValueListOID')} unresolved")
    for node in root.iterfind(".//def:WhereClauseRef", NS):
        if node.get("WhereClauseOID") not in wheres:
            problems.append(f"WhereClauseRef {node.get('WhereClauseOID')} unresolved")
    for node in root.iterfind(".//def:ValueListDef/odm:ItemRef", NS):
        if node.get("ItemOID") not in items:
            problems.append(f"value-level ItemRef {node.get('ItemOID')} has no ItemDef")
    for node in root.iterfind(".//def:DocumentRef", NS):
        if node.get("leafID") not in leaves:
            problems.append(f"DocumentRef {node.get('leafID')} unresolved")
    for node in root.iterfind(".//def:Origin[@Type='Collected']", NS):
        if node.find("def:DocumentRef/def:PDFPageRef", NS) is None:
            problems.append("a collected variable without a page of the annotated CRF")
    return problems
