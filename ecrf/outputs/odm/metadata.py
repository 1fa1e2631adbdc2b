"""CDISC ODM 1.3.2 metadata of one study version, streamed with lxml's ``xmlfile``.

What ODM expresses natively is written natively (events, forms, groups, items, types,
units, ranges, code lists, translations, SDTM annotations, conditions and computation
methods). What only ecrf knows (the visit schedule, study parameters, arms, allocation,
lab grading, row limits) travels in ``Alias`` elements whose Context starts with
``ecrf:``: the file stays valid against the official XSD, other systems ignore those
aliases, and ``odm.importer`` restores them, so an ecrf study survives a round trip.

Conventions that readers need:

- ``show_if`` becomes the ItemRef's ``CollectionExceptionConditionOID``. ODM defines that
  condition as "the item is NOT collected when true", so its FormalExpression is the
  negation ``not (<show_if>)``. The same holds for an event ``condition`` on its
  StudyEventRef.
- ``required_if`` is a ConditionDef named by the ItemDef alias ``ecrf:required_if``.
- A multiple-choice item keeps its ItemDef (question, code list, ``ecrf:type``) and is
  answered through one boolean ItemDef per code, ``I.<FORM>.<ITEM>.<CODE>`` (alias
  ``ecrf:choice_of`` naming the item, Question the code's label), referenced right after
  it: ODM gives one ItemData one code of a list, never several.
- Calculated items reference a MethodDef (Type Computation) through ``ItemRef/@MethodOID``;
  edit checks are MethodDefs (Type Other, ``EC.<FORM>.<CHECK>``) whose expression must
  hold, with their message as Description.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from lxml import etree

from ecrf.crf import CodeList, FormDef, ItemDef, ItemType, Range, StudyDefinition
from ecrf.crf import definition_from_content as _definition_from_content
from ecrf.outputs.odm.common import (
    CHOICE_OF,
    DATA_TYPES,
    EXPRESSION_CONTEXT,
    RESULT_DATA_TYPES,
    AdminInfo,
    FileInfo,
    choice_oid,
    codelist_oid,
    element,
    event_oid,
    form_oid,
    group_oid,
    item_oid,
    mdv_oid,
    new_file_oid,
    odm_document,
    q,
    sub,
    translated,
    unit_oids,
    write_admin_data,
)

STUDY_SETTINGS = "ecrf:study-settings"
SCHEDULE = "ecrf:schedule"
EVENT_KINDS = {  # ecrf kind -> (ODM Type, Repeating)
    "scheduled": ("Scheduled", False),
    "repeating": ("Scheduled", True),
    "unscheduled": ("Unscheduled", True),
    "log": ("Common", False),
}


@dataclass(frozen=True)
class VersionRef:
    """The stored version an export describes."""

    study_oid: str
    number: int
    label: str
    content_hash: str
    loaded_at: dt.datetime

    @property
    def mdv_oid(self) -> str:
        return mdv_oid(self.study_oid, self.number)


def negate(expression: str) -> str:
    return f"not ({expression})"


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def number_text(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def range_message(label: str, comparator: str, value: str, unit: str | None, soft: bool) -> str:
    """The ErrorMessage written for a range check (the importer recognises it)."""
    bound = "at least" if comparator == "GE" else "at most"
    unit_text = f" {unit}" if unit else ""
    if soft:
        return f"{label} is usually {bound} {value}{unit_text}: please confirm."
    return f"{label} must be {bound} {value}{unit_text}."


def _texts(default: str | None, labels: dict[str, str], languages: Iterable[str]
           ) -> list[tuple[str, str]]:
    if not default:
        return []
    texts = [("en", default)]
    texts += [(lang, labels[lang]) for lang in languages if lang != "en" and lang in labels]
    return texts


def _alias(parent: etree._Element, context: str, name: str | None) -> None:
    if name not in (None, ""):
        sub(parent, "Alias", {"Context": context, "Name": name})


class MetadataWriter:
    """Writes the ``Study`` element of one version; reused by later full exports."""

    def __init__(self, content: dict[str, Any], version: VersionRef,
                 definition: StudyDefinition | None = None) -> None:
        self.content = content
        self.version = version
        self.definition = definition or _definition_from_content(content)
        self.languages = self.definition.languages
        self.study_yaml = content["study"]
        self.events_raw = {e["oid"]: e for e in self.study_yaml["events"]}
        units = [i.unit for i in self.definition.iter_items() if i.unit and i.is_numeric]
        self.units = unit_oids(sorted(set(units)))
        self.conditions: list[etree._Element] = []
        self.methods: list[etree._Element] = []

    # --- order ------------------------------------------------------------------------

    def forms_in_order(self) -> list[FormDef]:
        """Forms in the order the schedule first uses them (how a reader meets them)."""
        seen: dict[str, FormDef] = {}
        for event in self.definition.events:
            for oid in event.forms:
                seen.setdefault(oid, self.definition.form(oid))
        for oid, form in self.definition.forms.items():
            seen.setdefault(oid, form)
        return list(seen.values())

    def codelists(self) -> Iterator[tuple[str, str, CodeList]]:
        """(OID, Name, list) of every declared list, NY when used, and inline choices."""
        d = self.definition
        declared = set(self.content.get("codelists") or {})
        for crf in self.content["crfs"].values():
            declared.update(crf.get("codelists") or {})
        if "NY" in declared or any(i.type is ItemType.YES_NO for i in d.iter_items()):
            declared.add("NY")
        rows = [(codelist_oid(oid), oid, d.codelist(oid)) for oid in declared]
        for form in self.forms_in_order():
            for item in form.items:
                if item.choices is not None:
                    rows.append((codelist_oid(f"{form.oid}.{item.oid}"), f"{form.oid}.{item.oid}",
                                 item.choices))
        return iter(sorted(rows, key=lambda row: row[0]))

    # --- the Study element --------------------------------------------------------------

    def write(self, xf: Any) -> None:
        d = self.definition
        with xf.element(q("Study"), {"OID": d.oid}):
            gv = element("GlobalVariables")
            sub(gv, "StudyName", text=d.name)
            sub(gv, "StudyDescription", text=d.title or d.name)
            sub(gv, "ProtocolName", text=d.protocol_id or d.name)
            xf.write(gv)
            if self.units:
                bd = element("BasicDefinitions")
                for unit, oid in self.units.items():
                    mu = sub(bd, "MeasurementUnit", {"OID": oid, "Name": unit})
                    translated(mu, "Symbol", [(None, unit)])
                xf.write(bd)
            attrib = {"OID": self.version.mdv_oid, "Name": self.version.label,
                      "Description": f"{d.name} {self.version.label}, content SHA-256 "
                                     f"{self.version.content_hash}"}
            with xf.element(q("MetaDataVersion"), attrib):
                self._write_mdv(xf)

    def _write_mdv(self, xf: Any) -> None:
        xf.write(self.protocol())
        for event in self.definition.events:
            xf.write(self.study_event_def(event.oid))
        forms = self.forms_in_order()
        for form in forms:
            xf.write(self.form_def(form))
        for form in forms:
            for index, _group in enumerate(form.groups):
                xf.write(self.item_group_def(form, index))
        for form in forms:
            for item in form.items:
                xf.write(self.item_def(form, item))
                for option in self.choice_defs(form, item):
                    xf.write(option)
            for check in form.checks:
                self.methods.append(self.check_method(form, check))
        for oid, name, codelist in self.codelists():
            xf.write(self.codelist(oid, name, codelist))
        for el in self.conditions:
            xf.write(el)
        for el in self.methods:
            xf.write(el)
        xf.flush()

    def protocol(self) -> etree._Element:
        d = self.definition
        identity = self.study_yaml["study"]
        el = element("Protocol")
        translated(el, "Description", _texts(d.title, identity.get("title_labels", {}),
                                            self.languages))
        for order, event in enumerate(d.events, start=1):
            ref = sub(el, "StudyEventRef", {
                "StudyEventOID": event_oid(event.oid), "OrderNumber": order,
                "Mandatory": event.kind.value in ("scheduled", "repeating"),
            })
            if event.condition:
                cond = self.condition(f"CD.SE.{event.oid}", f"{event.oid} not expected",
                                      f"Not expected unless: {event.condition}",
                                      negate(event.condition))
                ref.set("CollectionExceptionConditionOID", cond)
        settings = {k: v for k, v in self.study_yaml.items() if k != "events"}
        _alias(el, STUDY_SETTINGS, compact_json(settings))
        return el

    def study_event_def(self, oid: str) -> etree._Element:
        raw = self.events_raw[oid]
        kind = raw["kind"]
        odm_type, repeating = EVENT_KINDS[kind]
        el = element("StudyEventDef", {"OID": event_oid(oid), "Name": raw["name"],
                                       "Repeating": repeating, "Type": odm_type})
        translated(el, "Description", _texts(raw["name"], raw.get("labels", {}), self.languages))
        for order, form in enumerate(raw["forms"], start=1):
            sub(el, "FormRef", {"FormOID": form_oid(form), "OrderNumber": order,
                                "Mandatory": kind in ("scheduled", "repeating")})
        schedule = {k: v for k, v in raw.items()
                    if k not in ("oid", "name", "labels", "forms", "condition")}
        repeat = dict(schedule.get("repeat") or {})
        if "until" in repeat:
            repeat["until"] = self.condition(
                f"CD.SE.{oid}.UNTIL", f"{oid} repeats until",
                f"No new occurrence once true: {repeat['until']}", repeat["until"])
            schedule["repeat"] = repeat
        _alias(el, SCHEDULE, compact_json(schedule))
        return el

    def form_def(self, form: FormDef) -> etree._Element:
        el = element("FormDef", {"OID": form_oid(form.oid), "Name": form.name, "Repeating": False})
        translated(el, "Description", _texts(form.name, dict(form.labels), self.languages))
        for order, group in enumerate(form.groups, start=1):
            mandatory = (group.min_rows or 0) >= 1 if group.repeating else True
            sub(el, "ItemGroupRef", {"ItemGroupOID": group_oid(form.oid, group.oid),
                                     "OrderNumber": order, "Mandatory": mandatory})
        _alias(el, "ecrf:description", form.description)
        return el

    def item_group_def(self, form: FormDef, index: int) -> etree._Element:
        group = form.groups[index]
        domain = form.sdtm_domain
        el = element("ItemGroupDef", {
            "OID": group_oid(form.oid, group.oid), "Name": group.oid,
            "Repeating": group.repeating, "SASDatasetName": domain, "Domain": domain,
        })
        translated(el, "Description", _texts(group.label, dict(group.labels), self.languages))
        order = 0
        for item in group.items:
            order += 1
            ref = sub(el, "ItemRef", {"ItemOID": item_oid(form.oid, item.oid),
                                      "OrderNumber": order, "Mandatory": item.required})
            for code in self.choice_codes(form, item):
                order += 1
                sub(el, "ItemRef", {"ItemOID": choice_oid(form.oid, item.oid, code),
                                    "OrderNumber": order, "Mandatory": False})
            if item.type is ItemType.CALCULATED:
                ref.set("MethodOID", self.calculation(form, item))
            if item.show_if:
                ref.set("CollectionExceptionConditionOID", self.condition(
                    f"CD.{form.oid}.{item.oid}.HIDE", f"{form.oid}.{item.oid} not collected",
                    f"Shown only when: {item.show_if}", negate(item.show_if)))
        if group.min_rows is not None:
            _alias(el, "ecrf:min_rows", str(group.min_rows))
        if group.max_rows is not None:
            _alias(el, "ecrf:max_rows", str(group.max_rows))
        return el

    def choice_codes(self, form: FormDef, item: ItemDef) -> tuple[str, ...]:
        """The codes of a multiple-choice item, each answered by its own boolean item."""
        if item.type is not ItemType.MULTIPLE_CHOICE:
            return ()
        choices = self.definition.choices_of(form.oid, item.oid)
        return choices.codes if choices is not None else ()

    def choice_defs(self, form: FormDef, item: ItemDef) -> list[etree._Element]:
        choices = self.definition.choices_of(form.oid, item.oid)
        found = []
        for code in self.choice_codes(form, item):
            entry = next(i for i in choices.items if i.code == code)
            el = element("ItemDef", {"OID": choice_oid(form.oid, item.oid, code),
                                     "Name": f"{item.oid}.{code}", "DataType": "boolean"})
            translated(el, "Question", _texts(entry.label, dict(entry.labels), self.languages))
            _alias(el, CHOICE_OF, item_oid(form.oid, item.oid))
            found.append(el)
        return found

    def item_def(self, form: FormDef, item: ItemDef) -> etree._Element:
        if item.type is ItemType.CALCULATED:
            data_type = RESULT_DATA_TYPES[item.result_type or "text"]
        else:
            data_type = DATA_TYPES[item.type.value]
        decimal = data_type == "float"
        sdtm_var = item.sdtm.split(".")[1] if item.sdtm else None
        el = element("ItemDef", {
            "OID": item_oid(form.oid, item.oid), "Name": item.oid, "DataType": data_type,
            "Length": item.length, "SignificantDigits": item.precision if decimal else None,
            "SASFieldName": item.oid if len(item.oid) <= 8 else None,
            "SDSVarName": sdtm_var,
        })
        translated(el, "Description", _texts(item.help, dict(item.help_labels), self.languages))
        translated(el, "Question", _texts(item.label, dict(item.labels), self.languages))
        if item.unit and item.is_numeric:
            sub(el, "MeasurementUnitRef", {"MeasurementUnitOID": self.units[item.unit]})
        for soft, bounds in ((False, item.range), (True, item.soft_range)):
            self._range_checks(el, item, bounds, soft)
        if item.type is ItemType.YES_NO:
            sub(el, "CodeListRef", {"CodeListOID": codelist_oid("NY")})
        elif item.choices is not None:
            sub(el, "CodeListRef", {"CodeListOID": codelist_oid(f"{form.oid}.{item.oid}")})
        elif item.codelist:
            sub(el, "CodeListRef", {"CodeListOID": codelist_oid(item.codelist)})
        _alias(el, "SDTM", item.sdtm)
        if item.type in (ItemType.SINGLE_CHOICE, ItemType.MULTIPLE_CHOICE, ItemType.YES_NO,
                         ItemType.CALCULATED):
            _alias(el, "ecrf:type", item.type.value)
        if item.required_if:
            _alias(el, "ecrf:required_if", self.condition(
                f"CD.{form.oid}.{item.oid}.REQUIRED", f"{form.oid}.{item.oid} required",
                f"Required when: {item.required_if}", item.required_if))
        if item.critical:
            _alias(el, "ecrf:critical", "Yes")
        raw_lab = self._raw_item(form.oid, item.oid).get("lab")
        if raw_lab:
            _alias(el, "ecrf:lab", compact_json(raw_lab))
        return el

    def _raw_item(self, form: str, item: str) -> dict[str, Any]:
        for group in self.content["crfs"][form]["groups"]:
            for raw in group["items"]:
                if raw["oid"] == item:
                    return raw
        raise KeyError(f"{form}.{item}")

    def _range_checks(self, el: etree._Element, item: ItemDef, bounds: Range | None,
                      soft: bool) -> None:
        if bounds is None:
            return
        for comparator, value in (("GE", bounds.min), ("LE", bounds.max)):
            if value is None:
                continue
            text = number_text(value)
            rc = sub(el, "RangeCheck", {"Comparator": comparator,
                                        "SoftHard": "Soft" if soft else "Hard"})
            sub(rc, "CheckValue", text=text)
            translated(rc, "ErrorMessage",
                       [("en", range_message(item.label, comparator, text, item.unit, soft))])

    def codelist(self, oid: str, name: str, codelist: CodeList) -> etree._Element:
        el = element("CodeList", {"OID": oid, "Name": name, "DataType": "text"})
        for order, entry in enumerate(codelist.items, start=1):
            cli = sub(el, "CodeListItem", {"CodedValue": entry.code, "OrderNumber": order})
            translated(cli, "Decode", _texts(entry.label, dict(entry.labels), self.languages))
        return el

    # --- conditions and methods ------------------------------------------------------------

    def condition(self, oid: str, name: str, description: str, expression: str) -> str:
        el = element("ConditionDef", {"OID": oid, "Name": name})
        translated(el, "Description", [("en", description)])
        sub(el, "FormalExpression", {"Context": EXPRESSION_CONTEXT}, text=expression)
        self.conditions.append(el)
        return oid

    def calculation(self, form: FormDef, item: ItemDef) -> str:
        oid = f"MT.{form.oid}.{item.oid}"
        el = element("MethodDef", {"OID": oid, "Name": f"{form.oid}.{item.oid}",
                                   "Type": "Computation"})
        translated(el, "Description", [("en", f"Calculates {item.label}")])
        sub(el, "FormalExpression", {"Context": EXPRESSION_CONTEXT}, text=item.expression)
        self.methods.append(el)
        return oid

    def check_method(self, form: FormDef, check: Any) -> etree._Element:
        el = element("MethodDef", {"OID": f"EC.{form.oid}.{check.oid}", "Name": check.oid,
                                   "Type": "Other"})
        translated(el, "Description", _texts(check.message, dict(check.message_labels),
                                             self.languages))
        sub(el, "FormalExpression", {"Context": EXPRESSION_CONTEXT}, text=check.expression)
        _alias(el, "ecrf:check", "must hold")
        _alias(el, "ecrf:form", form.oid)
        _alias(el, "ecrf:group", check.group)
        _alias(el, "ecrf:severity", check.severity.value)
        return el


def write_metadata(target: str | Path | IO[bytes], content: dict[str, Any], version: VersionRef,
                   *, admin: AdminInfo | None = None, created_at: dt.datetime | None = None,
                   definition: StudyDefinition | None = None) -> None:
    """Write the ODM 1.3.2 metadata file (Study + AdminData) of one version to ``target``."""
    created_at = created_at or dt.datetime.now(dt.UTC)
    writer = MetadataWriter(content, version, definition)
    info = FileInfo(
        file_oid=new_file_oid(version.study_oid, f"MDV{version.number}", created_at),
        created_at=created_at, granularity="Metadata",
        description=f"{writer.definition.name} {version.label}: study metadata",
    )
    admin = admin or AdminInfo()
    if not admin.versions:
        admin = AdminInfo(admin.users, admin.sites,
                          ((version.mdv_oid, version.loaded_at.date()),))
    with odm_document(target, info) as xf:
        writer.write(xf)
        write_admin_data(xf, writer.definition.oid, admin)
