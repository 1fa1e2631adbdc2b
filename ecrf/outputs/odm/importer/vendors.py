"""Vendor dialects the ODM importer reads: REDCap (checkbox fields, form status fields,
field notes, branching logic) and OpenClinica 3.x (multi-select lists, item texts,
show/hide on another item's answer)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lxml import etree

from ecrf.outputs.odm.importer.support import to_oid

if TYPE_CHECKING:
    from ecrf.outputs.odm.importer.support import ImporterState, Namer, Notes

REDCAP_NS = "https://projectredcap.org"
OC_PREFIX = "http://www.openclinica.org/ns/odm_ext"
REDCAP_HANDLED = frozenset({"Variable", "FieldType", "FieldNote", "TextValidationType",
                             "RequiredField", "BranchingLogic", "Calculation", "FormName",
                             "SectionHeader", "MatrixName", "Identifier"})
OC_HANDLED = frozenset({"ItemDetails", "MultiSelectListRef", "PresentInEventDefinition",
                         "FormDetails", "QuestionNumber", "ItemGroupDetails"})


def _in_variable(code: str) -> str:
    """A REDCap choice code as it appears in a checkbox item's name."""
    return re.sub(r"[^a-z0-9_]", "_", code.lower())


class VendorDialects:
    """Mixed into the item builder: what REDCap and OpenClinica files need beyond ODM."""

    imp: ImporterState
    notes: Notes
    item_namer: Namer
    names: dict[str, str]
    pending_show: list[tuple[dict[str, Any], str, str, str]]
    checkbox_code: str

    def t(self, tag: str) -> str:
        return self.imp.t(tag)

    def _redcap_repeating(self, el: etree._Element) -> bool:
        form_name = el.get(f"{{{REDCAP_NS}}}FormName")
        if not form_name:
            return False
        return any(r.get(f"{{{REDCAP_NS}}}RepeatInstrument") == form_name
                   for r in self.imp.study.iter(f"{{{REDCAP_NS}}}RepeatingInstrument"))

    def _list_oid(self, el: etree._Element) -> str | None:
        ref = el.find(self.t("CodeListRef"))
        return ref.get("CodeListOID") if ref is not None else None

    def _is_redcap_status(self, el: etree._Element) -> bool:
        ref = el.find(self.t("CodeListRef"))
        cl = self.imp.defs.get("CodeList", {}).get(ref.get("CodeListOID")) if ref is not None else None
        codes = {i.get("CodedValue") for i in cl.iter(self.t("CodeListItem"))} if cl is not None else set()
        return codes == {"0", "1", "2"}

    def _oc_find(self, el: etree._Element, tag: str) -> etree._Element | None:
        for child in el.iter():
            if isinstance(child.tag, str) and etree.QName(child).localname == tag \
                    and (etree.QName(child).namespace or "").startswith(OC_PREFIX):
                return child
        return None

    def _oc_text(self, el: etree._Element, tag: str) -> str | None:
        child = self._oc_find(el, tag)
        return " ".join((child.text or "").split()) or None if child is not None else None

    def _oc_display(self, el: etree._Element, item: dict[str, Any], where: str) -> None:
        """OpenClinica's item display: show/hide on another item's answer becomes show_if."""
        present = self._oc_find(el, "ItemPresentInForm")
        if present is None:
            return
        self.notes.group("OpenClinica:ItemDetails layout (sections, headers, left/right "
                         "texts, response layout) not imported", el.get("OID"))
        response = self._oc_find(present, "ItemResponse")
        if response is not None and response.get("ResponseType") == "calculation":
            self.notes.add(where, "OpenClinica calculation (defined in the CRF, not in ODM) "
                                  "not imported: the item is entered by hand")
        display = self._oc_find(present, "SimpleConditionalDisplay")
        if display is not None:
            control = self._oc_text(display, "ControlItemName")
            value = self._oc_text(display, "OptionValue")
            if control and value:
                self.pending_show.append((item, control, value, where))
                return
        if present.get("ShowItem") == "No":
            self.notes.add(where, "hidden by OpenClinica with no condition: imported as shown")

    def resolve_show(self, groups: list[dict[str, Any]]) -> None:
        by_name = {self.names.get(i["oid"], i["oid"]): i for g in groups for i in g["items"]}
        for item, control, value, where in self.pending_show:
            target = by_name.get(control)
            if target is None or target is item:
                self.notes.add(where, f"OpenClinica show/hide on {control} = {value!r} not "
                                      "translated (control item not in the form)")
                continue
            quoted = value.replace('"', "")
            item["show_if"] = (f'contains({target["oid"]}, "{quoted}")'
                               if target["type"] == "multiple_choice"
                               else f'{target["oid"]} = "{quoted}"')

    def _oc_multiselect(self, el: etree._Element) -> list[dict[str, Any]] | None:
        for child in el.iter():
            if not isinstance(child.tag, str) or etree.QName(child).localname != "MultiSelectListRef":
                continue
            wanted = child.get("MultiSelectListID")
            for msl in self.imp.mdv.iter():
                if isinstance(msl.tag, str) and etree.QName(msl).localname == "MultiSelectList" \
                        and msl.get("ID") == wanted:
                    entries = []
                    for option in msl:
                        code = (option.get("CodedOptionValue") or "").strip()
                        label, labels = self.imp._label(option, "Decode")
                        if code:
                            entry: dict[str, Any] = {"code": code, "label": label or code}
                            if labels:
                                entry["labels"] = labels
                            entries.append(entry)
                    return entries or None
        return None

    def _redcap_notes(self, el: etree._Element, where: str) -> None:
        field_type = el.get(f"{{{REDCAP_NS}}}FieldType")
        if field_type in ("file", "signature", "slider", "sql"):
            self.notes.add(where, f"REDCap {field_type} field imported as a plain "
                                  f"{'number' if field_type == 'slider' else 'text'}")
        for attr, what in (("BranchingLogic", "REDCap branching logic"),
                           ("Calculation", "REDCap calculation"),
                           ("SectionHeader", "REDCap section header"),
                           ("MatrixName", "REDCap matrix grouping")):
            value = el.get(f"{{{REDCAP_NS}}}{attr}")
            if value:
                self.notes.add(where, f"{what} {value!r} not translated")

    def _checkbox(self, el: etree._Element, variable: str, checkboxes: dict[str, dict[str, Any]]
                  ) -> dict[str, Any] | None:
        """REDCap exports a checkbox field as one boolean item per choice (``race___1``):
        ecrf has one multiple-choice item."""
        suffix = el.get("OID").rsplit("___", 1)[-1]
        self.imp.consume_list(self._list_oid(el))
        labels = self._checkbox_labels(el)
        # The OID carries the code as REDCap spells it in a variable name (``4.4`` ->
        # ``race___4_4``): the code itself is the choice spelled that way.
        code = next((c for c in labels if _in_variable(c) == suffix), suffix)
        self.checkbox_code = code
        existing = checkboxes.get(variable)
        entry = {"code": code, "label": labels.get(code, code)}
        if existing is not None:
            existing["choices"].append(entry)
            return None
        label, translations = self.imp._label(el, "Question")
        item: dict[str, Any] = {"oid": self.item_namer.claim(to_oid(variable)),
                                "label": label or variable, "type": "multiple_choice",
                                "choices": [entry]}
        if translations:
            item["labels"] = translations
        if el.get(f"{{{REDCAP_NS}}}FieldNote"):
            item["help"] = el.get(f"{{{REDCAP_NS}}}FieldNote")
        self._redcap_notes(el, f"ItemDef {el.get('OID')}")
        checkboxes[variable] = item
        return item

    def _checkbox_labels(self, el: etree._Element) -> dict[str, str]:
        ref = el.find(self.t("CodeListRef"))
        cl = self.imp.defs.get("CodeList", {}).get(ref.get("CodeListOID")) if ref is not None else None
        text = cl.get(f"{{{REDCAP_NS}}}CheckboxChoices") if cl is not None else None
        labels = {}
        for part in (text or "").split("|"):
            code, _, label = part.partition(",")
            if code.strip() and label.strip():
                labels[code.strip()] = label.strip()
        return labels
