"""The ODM importer's forms: FormDef -> groups -> items, with their types, code lists,
ranges, units and conditions (see ``odm.importer``)."""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from ecrf.crf.schema import DOMAIN_PATTERN, SDTM_PATTERN
from ecrf.outputs.odm.common import CHOICE_OF
from ecrf.outputs.odm.importer.support import (
    DATA_TYPES,
    ECRF_TYPES,
    IDENTIFIER,
    NUMERIC,
    RESULT_TYPES,
    ImporterState,
    Namer,
    decimal_or_none,
    json_alias,
    order_key,
    pick_oid,
    to_oid,
    unwrap_negation,
    yaml_number,
)
from ecrf.outputs.odm.importer.vendors import OC_HANDLED, REDCAP_HANDLED, REDCAP_NS, VendorDialects
from ecrf.outputs.odm.metadata import range_message

SKIP_RECORD_ID = "REDCap record ID: it is the subject key"
SKIP_FORM_STATUS = "REDCap form status: ecrf keeps each form's own status"
# An ODM boolean's values (1/0 as OpenEDC and REDCap write them, or true/false) as ecrf's
# yes/no codes.
BOOLEAN_CODES = {"1": "Y", "0": "N", "true": "Y", "false": "N"}
_INLINE_ECRF_LIST = re.compile(r"^CL\.[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_]*$")


class ItemBuilder(VendorDialects):
    def __init__(self, importer: ImporterState) -> None:
        self.imp = importer
        self.notes = importer.notes
        self.t = importer.t

    # --- forms ----------------------------------------------------------------------------

    def form(self, el: etree._Element, oid: str) -> dict[str, Any] | None:
        raw_oid = el.get("OID")
        where = f"FormDef {raw_oid}"
        name, labels = self.imp._label(el, "Description")
        crf: dict[str, Any] = {"oid": oid, "name": name or el.get("Name") or raw_oid}
        if labels:
            crf["labels"] = labels
        aliases = self.imp._aliases(el)
        if aliases.get("ecrf:description"):
            crf["description"] = aliases["ecrf:description"]
        repeating = el.get("Repeating") == "Yes" or self._redcap_repeating(el)
        if repeating:
            self.notes.add(where, "repeating forms are not supported: the form's groups were "
                                  "made repeating instead")
        self.item_namer = Namer()
        self.form_oid = oid
        self.pending_show: list[tuple[dict[str, Any], str, str, str]] = []
        self.names: dict[str, str] = {}  # ecrf item OID -> the item's name in the file
        self.map_groups: dict[str, dict[str, Any]] = {}  # source group -> its source map
        groups, domains = [], set()
        refs = sorted(self.imp._children(el, "ItemGroupRef"),
                      key=order_key)
        for ref in refs:
            group_el = self.imp.defs.get("ItemGroupDef", {}).get(ref.get("ItemGroupOID"))
            if group_el is None:
                self.notes.add(where, f"ItemGroupRef {ref.get('ItemGroupOID')} names no "
                                      "ItemGroupDef")
                continue
            if ref.get("CollectionExceptionConditionOID"):
                self.imp.used_conditions.add(ref.get("CollectionExceptionConditionOID"))
                self.notes.add(f"ItemGroupRef {ref.get('ItemGroupOID')} in {raw_oid}",
                               "group-level collection exception condition "
                               f"{ref.get('CollectionExceptionConditionOID')} not supported")
            group = self.group(group_el, repeating)
            if group is not None:
                groups.append(group)
                if re.match(DOMAIN_PATTERN, group_el.get("Domain") or ""):
                    domains.add(group_el.get("Domain"))
        if len(domains) == 1:
            crf["sdtm_domain"] = domains.pop()
        self.resolve_show(groups)
        self.imp._other_aliases(el, where, set())
        self.imp._extensions(el, where, REDCAP_HANDLED | OC_HANDLED)
        if not groups:
            self.notes.add(where, "no item to import: form not imported")
            return None
        crf["groups"] = groups
        self.imp.form_map[raw_oid] = {"oid": oid, "groups": self.map_groups}
        checks = self.checks(raw_oid, oid)
        if checks:
            crf["checks"] = checks
        return crf

    def group(self, el: etree._Element, force_repeating: bool) -> dict[str, Any] | None:
        raw_oid, name = el.get("OID"), el.get("Name") or ""
        where = f"ItemGroupDef {raw_oid}"
        wanted = pick_oid(raw_oid, name, ["IG.", "IG_"], prefer_name=True)
        if self.imp.ecrf_origin and raw_oid.startswith(f"IG.{self.form_oid}."):
            wanted = raw_oid.split(".", 2)[2]
        oid = self.imp.group_namer.claim(to_oid(wanted))
        self.imp.group_names[(self.form_oid, name)] = oid
        group: dict[str, Any] = {"oid": oid}
        domain = el.get("Domain") or ""
        self.domain = domain if re.match(DOMAIN_PATTERN, domain) else None
        label, labels = self.imp._label(el, "Description")
        label = label or (name if name and not IDENTIFIER.match(name) else None)
        if label:
            group["label"] = label
        if labels:
            group["labels"] = labels
        if el.get("Repeating") == "Yes" or force_repeating:
            group["repeating"] = True
        aliases = self.imp._aliases(el)
        for key in ("min_rows", "max_rows"):
            if f"ecrf:{key}" in aliases and aliases[f"ecrf:{key}"].isdigit():
                group[key] = int(aliases[f"ecrf:{key}"])
        repeat_max = self._oc_find(el, "ItemGroupRepeat")
        if group.get("repeating") and repeat_max is not None and "max_rows" not in group \
                and (repeat_max.get("RepeatMax") or "").isdigit():
            group["max_rows"] = int(repeat_max.get("RepeatMax"))
        items = []
        self.map_items: dict[str, Any] = {}
        refs = sorted(self.imp._children(el, "ItemRef"), key=order_key)
        checkboxes: dict[str, dict[str, Any]] = {}
        for ref in refs:
            item_el = self.imp.defs.get("ItemDef", {}).get(ref.get("ItemOID"))
            if item_el is None:
                self.notes.add(where, f"ItemRef {ref.get('ItemOID')} names no ItemDef")
                continue
            for key in ("KeySequence", "Role", "RoleCodeListOID", "ImputationMethodOID"):
                if ref.get(key):
                    self.notes.group(f"ItemRef {key} not imported", ref.get("ItemOID"))
            item = self.item(item_el, ref, checkboxes)
            if item is not None:
                items.append(item)
        self.imp._other_aliases(el, where, set())
        self.imp._extensions(el, where, REDCAP_HANDLED | OC_HANDLED)
        if self.map_items:
            self.map_groups[raw_oid] = {"items": self.map_items}
        if not items:
            if not refs:
                self.notes.add(where, "no item: group not imported")
            return None
        self.map_groups.setdefault(raw_oid, {"items": {}})["oid"] = oid
        group["items"] = items
        return group

    # --- items ----------------------------------------------------------------------------

    def item(self, el: etree._Element, ref: etree._Element, checkboxes: dict[str, dict[str, Any]]
             ) -> dict[str, Any] | None:
        raw_oid = el.get("OID")
        where = f"ItemDef {raw_oid}"
        if CHOICE_OF in self.imp._aliases(el):
            return None  # a code of the multiple-choice item before it (odm.metadata)
        field_type = el.get(f"{{{REDCAP_NS}}}FieldType")
        variable = el.get(f"{{{REDCAP_NS}}}Variable")
        if variable and variable == self.imp.record_id:
            self.notes.add(where, "REDCap record ID field not imported (ecrf identifies "
                                  "subjects itself)")
            self.map_items[raw_oid] = {"skip": SKIP_RECORD_ID}
            return None
        if field_type == "descriptive":
            self.notes.add(where, "REDCap descriptive text (not a data field) not imported")
            self.map_items[raw_oid] = {"skip": "REDCap descriptive text, not a data field"}
            return None
        if variable and raw_oid.endswith("_complete") and field_type in (None, "select") \
                and variable == raw_oid and self._is_redcap_status(el):
            self.notes.group("REDCap form status fields not imported (ecrf tracks form status)",
                             raw_oid)
            self.imp.consume_list(self._list_oid(el))
            self.map_items[raw_oid] = {"skip": SKIP_FORM_STATUS}
            return None
        if field_type == "checkbox" and variable:
            created = self._checkbox(el, variable, checkboxes)
            self.map_items[raw_oid] = {"item": checkboxes[variable]["oid"],
                                       "choice": self.checkbox_code}
            return created
        name = el.get("Name") or ""
        if self.imp.ecrf_origin and raw_oid.startswith("I.") and raw_oid.count(".") == 2:
            name = raw_oid.split(".")[2]
        wanted = pick_oid(raw_oid, name, ["I.", "I_"], prefer_name=True)
        item: dict[str, Any] = {"oid": self.item_namer.claim(to_oid(wanted))}
        self.names[item["oid"]] = name or raw_oid
        self.item_codes: dict[str, str] = {}
        label, labels = self.imp._label(el, "Question")
        if not label:
            label = self._oc_text(el, "LeftItemText") or name or raw_oid
        item["label"] = label
        if labels:
            item["labels"] = labels
        aliases = self.imp._aliases(el)
        self._type(el, ref, item, aliases, where)
        self._details(el, item, aliases, where)
        self._conditions(ref, item, aliases, where)
        if field_type:
            self._redcap_notes(el, where)
        self._oc_display(el, item, where)
        self.imp._other_aliases(el, where, {"SDTM"})
        self.imp._extensions(el, where, REDCAP_HANDLED | OC_HANDLED)
        self.map_items[raw_oid] = ({"item": item["oid"], "codes": self.item_codes}
                                   if self.item_codes else item["oid"])
        if "choices" in item or "codelist" in item:
            self.imp.choice_entries[raw_oid] = item.get("choices") \
                or self.imp.codelists[item["codelist"]]
        return item

    def _type(self, el: etree._Element, ref: etree._Element, item: dict[str, Any],
              aliases: dict[str, str], where: str) -> None:
        data_type = el.get("DataType") or "text"
        ecrf_type = aliases.get("ecrf:type") if aliases.get("ecrf:type") in ECRF_TYPES else None
        method_oid = ref.get("MethodOID")
        if method_oid or ecrf_type == "calculated":
            expression = self.imp._expression("MethodDef", method_oid, where)
            result_type = RESULT_TYPES.get(data_type)
            if expression and result_type:
                item.update(type="calculated", expression=expression, result_type=result_type)
                return
            if method_oid and expression:
                self.notes.add(where, f"calculation with DataType {data_type} not supported")
        cl_ref = el.find(self.t("CodeListRef"))
        if cl_ref is not None and self._choices(cl_ref.get("CodeListOID"), item, ecrf_type, where):
            return
        msl = self._oc_multiselect(el)
        if msl is not None:
            item["type"] = "multiple_choice"
            item["choices"] = msl
            return
        mapped, note = DATA_TYPES.get(data_type, ("text", f"DataType {data_type} not supported: "
                                                           "imported as text"))
        if data_type == "boolean" and not self.imp.ecrf_origin:
            self.item_codes = dict(BOOLEAN_CODES)  # still a boolean: ecrf's yes/no
        if note:
            self.notes.add(where, note)
        item["type"] = mapped

    def _choices(self, raw_list: str, item: dict[str, Any], ecrf_type: str | None,
                 where: str) -> bool:
        cl = self.imp.defs.get("CodeList", {}).get(raw_list)
        if cl is None:
            self.notes.add(where, f"CodeListRef {raw_list} names no CodeList: imported as text")
            return False
        if ecrf_type == "yes_no":
            if [i.get("CodedValue") for i in cl.iter(self.t("CodeListItem"))] == ["Y", "N"]:
                self.imp.named_list(raw_list, cl)
                item["type"] = "yes_no"
                return True
            ecrf_type = "single_choice"
        item["type"] = ecrf_type if ecrf_type in ("single_choice", "multiple_choice") \
            else "single_choice"
        inline = (_INLINE_ECRF_LIST.match(raw_list) is not None if self.imp.ecrf_origin
                  else self.imp.list_refs.get(raw_list, 0) == 1)
        if inline:
            entries = self.imp.codelist_entries(cl)
            if entries:
                item["choices"] = entries
                return True
        else:
            oid = self.imp.named_list(raw_list, cl)
            if oid:
                item["codelist"] = oid
                return True
        del item["type"]
        return False

    def _details(self, el: etree._Element, item: dict[str, Any], aliases: dict[str, str],
                 where: str) -> None:
        kind = item["type"]
        numeric = kind in NUMERIC or (kind == "calculated" and item["result_type"] in NUMERIC)
        decimal = kind == "decimal" or (kind == "calculated" and item["result_type"] == "decimal")
        length = el.get("Length")
        if length and length.isdigit() and int(length) > 0:
            if kind == "text":
                item["length"] = int(length)
            elif kind not in ("single_choice", "multiple_choice", "yes_no"):
                self.notes.group("ItemDef Length on non-text items not imported", el.get("OID"))
        digits = el.get("SignificantDigits")
        if digits and digits.isdigit():
            if decimal:
                item["precision"] = int(digits)
            else:
                self.notes.group("ItemDef SignificantDigits on non-decimal items not imported",
                                 el.get("OID"))
        units = self.imp._children(el, "MeasurementUnitRef")
        if units:
            unit = self.imp.units.get(units[0].get("MeasurementUnitOID"))
            if numeric and unit:
                item["unit"] = unit
            else:
                self.notes.add(where, "measurement unit on a non-numeric item not imported")
            if len(units) > 1:
                self.notes.add(where, "several measurement units: only the first was imported")
        self._ranges(el, item, numeric, where)
        help_text, help_labels = self.imp._label(el, "Description")
        help_text = help_text or el.get(f"{{{REDCAP_NS}}}FieldNote")
        if el.get("Comment"):
            self.notes.group("ItemDef Comment not imported", el.get("OID"))
        if help_text:
            item["help"] = help_text
        if help_labels:
            item["help_labels"] = help_labels
        sdtm = aliases.get("SDTM")
        if not sdtm and el.get("SDSVarName") and self.domain:
            sdtm = f"{self.domain}.{el.get('SDSVarName')}"
        if sdtm:
            if re.match(SDTM_PATTERN, sdtm):
                item["sdtm"] = sdtm
            else:
                self.notes.add(where, f"SDTM annotation {sdtm!r} is not DOMAIN.VARIABLE: "
                                      "not imported")
        if aliases.get("ecrf:critical") == "Yes":
            item["critical"] = True
        if aliases.get("ecrf:lab"):
            lab = json_alias(aliases["ecrf:lab"], where, self.notes)
            if isinstance(lab, dict):
                item["lab"] = lab

    def _ranges(self, el: etree._Element, item: dict[str, Any], numeric: bool, where: str
                ) -> None:
        for rc in self.imp._children(el, "RangeCheck"):
            soft = rc.get("SoftHard") == "Soft"
            comparator = rc.get("Comparator")
            values = [(cv.text or "").strip() for cv in self.imp._children(rc, "CheckValue")]
            what = f"{rc.get('SoftHard')} RangeCheck {comparator} {' '.join(values)}".strip()
            number = decimal_or_none(values[0]) if len(values) == 1 else None
            if not numeric or comparator not in ("GE", "GT", "LE", "LT") or number is None:
                self.notes.add(where, f"{what} not supported")
                continue
            if comparator in ("GT", "LT"):
                if item["type"] == "integer" and number == number.to_integral_value():
                    number += 1 if comparator == "GT" else -1
                else:
                    self.notes.add(where, f"{what}: strict bound imported as inclusive")
            side = "min" if comparator in ("GE", "GT") else "max"
            bounds = item.setdefault("soft_range" if soft else "range", {})
            if side in bounds:
                self.notes.add(where, f"{what}: a second {side} bound was not imported")
                continue
            bounds[side] = yaml_number(number)
            message = self.imp._first_text(rc, "ErrorMessage")
            expected = range_message(item["label"], "GE" if side == "min" else "LE", values[0],
                                     item.get("unit"), soft)
            if message and message != expected:
                self.notes.group("custom range error messages not imported", el.get("OID"))

    def _conditions(self, ref: etree._Element, item: dict[str, Any], aliases: dict[str, str],
                    where: str) -> None:
        if ref.get("Mandatory") == "Yes" and "ecrf:required_if" not in aliases:
            item["required"] = True
        hide = ref.get("CollectionExceptionConditionOID")
        if hide:
            expression = self.imp._expression("ConditionDef", hide, where)
            shown = unwrap_negation(expression) if expression else None
            if expression:
                item["show_if"] = shown or f"not ({expression})"
        if aliases.get("ecrf:required_if"):
            expression = self.imp._expression("ConditionDef", aliases["ecrf:required_if"], where)
            if expression:
                item["required_if"] = expression

    # --- edit checks (ecrf files only) ----------------------------------------------------

    def checks(self, raw_form: str, form: str) -> list[dict[str, Any]]:
        checks = []
        for oid, el in self.imp.defs.get("MethodDef", {}).items():
            aliases = self.imp._aliases(el)
            if aliases.get("ecrf:check") is None or raw_form != f"F.{aliases.get('ecrf:form')}":
                continue
            expression = self.imp._expression("MethodDef", oid, f"FormDef {raw_form}")
            message, message_labels = self.imp._label(el, "Description")
            if not expression or not message:
                continue
            check: dict[str, Any] = {"oid": to_oid(el.get("Name") or oid, ["EC."]),
                                     "expression": expression}
            if aliases.get("ecrf:severity") in ("error", "warning"):
                check["severity"] = aliases["ecrf:severity"]
            check["message"] = message
            if message_labels:
                check["message_labels"] = message_labels
            if aliases.get("ecrf:group"):
                check["group"] = self.imp.group_names.get((form, aliases["ecrf:group"]),
                                                          aliases["ecrf:group"])
            checks.append(check)
        return checks
