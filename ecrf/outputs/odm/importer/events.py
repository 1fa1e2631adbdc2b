"""The ODM importer's events: StudyEventDefs in protocol order, their kind and timing
(restored from ecrf's ``ecrf:schedule`` alias, or derived from ODM Type/Repeating and
REDCap day offsets), conditions and forms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxml import etree

from ecrf.outputs.odm.importer.support import (
    Namer,
    OdmImportError,
    json_alias,
    order_key,
    pick_oid,
    unwrap_negation,
)
from ecrf.outputs.odm.metadata import SCHEDULE

IMPLIED_EVENT = "MAIN"

if TYPE_CHECKING:
    from ecrf.outputs.odm.importer.support import Notes


class EventsMixin:
    """Mixed into the importer (which provides the XML helpers used here)."""

    notes: Notes
    protocol: etree._Element
    defs: dict[str, dict[str, etree._Element]]
    forms: dict[str, dict[str, Any]]
    form_namer: Namer
    event_map: dict[str, str]
    implied_event: str | None

    def _events(self) -> list[dict[str, Any]]:
        refs = sorted(self._children(self.protocol, "StudyEventRef"),
                      key=order_key)
        by_oid = {r.get("StudyEventOID"): r for r in refs}
        order = list(by_oid) + [oid for oid in self.defs.get("StudyEventDef", {})
                                if oid not in by_oid]
        namer, events = Namer(), []
        if not self.defs.get("StudyEventDef"):
            return self._implied_event()
        for raw_oid in order:
            el = self.defs.get("StudyEventDef", {}).get(raw_oid)
            if el is None:
                self.notes.add(f"StudyEventRef {raw_oid}", "names no StudyEventDef")
                continue
            event = self._event(el, by_oid.get(raw_oid), namer)
            if event is not None:
                events.append(event)
        if not events:
            raise OdmImportError("no event with forms to import (ecrf needs at least one)")
        return events

    def _event(self, el: etree._Element, ref: etree._Element | None, namer: Namer
               ) -> dict[str, Any] | None:
        raw_oid = el.get("OID")
        where = f"StudyEventDef {raw_oid}"
        name, labels = self._label(el, "Description")
        event: dict[str, Any] = {
            "oid": pick_oid(raw_oid, el.get("Name"), ["SE.", "SE_", "Event."]),
            "name": el.get("Name") or name or raw_oid,
        }
        if labels:
            event["labels"] = labels
        aliases = self._aliases(el)
        schedule = json_alias(aliases.get(SCHEDULE), where, self.notes)
        if isinstance(schedule, dict):
            repeat = schedule.get("repeat")
            if repeat and "until" in repeat:
                until = self._expression("ConditionDef", repeat["until"], where)
                repeat = {k: v for k, v in repeat.items() if k != "until"}
                if until:
                    repeat["until"] = until
                schedule["repeat"] = repeat
            event.update(schedule)
        else:
            event.update(self._foreign_schedule(el, where))
        if ref is not None and ref.get("CollectionExceptionConditionOID"):
            expression = self._expression("ConditionDef", ref.get("CollectionExceptionConditionOID"),
                                          f"StudyEventRef {raw_oid}")
            condition = unwrap_negation(expression) if expression else None
            if condition:
                event["condition"] = condition
            elif expression:
                event["condition"] = f"not ({expression})"
        forms = []
        for form_ref in sorted(self._children(el, "FormRef"),
                               key=order_key):
            form = self._form_for(form_ref.get("FormOID"), where)
            if form and form not in forms:
                forms.append(form)
            if form_ref.get("CollectionExceptionConditionOID"):
                self.used_conditions.add(form_ref.get("CollectionExceptionConditionOID"))
                self.notes.add(f"FormRef {form_ref.get('FormOID')} in {raw_oid}",
                               "form-level collection exception condition not supported")
        self._other_aliases(el, where, set())
        self._extensions(el, where, frozenset({"EventName", "UniqueEventName", "ArmNum",
                                               "ArmName", "DayOffset", "OffsetMin",
                                               "OffsetMax", "CustomEventLabel"}))
        if not forms:
            self.notes.add(where, "no form to import: event not imported")
            return None
        event["oid"] = namer.claim(event["oid"])
        event["forms"] = forms
        self.event_map[raw_oid] = event["oid"]
        return event

    def _implied_event(self) -> list[dict[str, Any]]:
        """A file without events (a REDCap classic project, a forms library): every form in
        one event, where the clinical import also puts the data given outside events."""
        forms = []
        for raw_oid in self.defs.get("FormDef", {}):
            form = self._form_for(raw_oid, f"FormDef {raw_oid}")
            if form and form not in forms:
                forms.append(form)
        if not forms:
            raise OdmImportError("no form to import (ecrf needs at least one)")
        self.implied_event = IMPLIED_EVENT
        self.notes.add("MetaDataVersion", f"no StudyEventDef: the {len(forms)} form(s) were put "
                                          f"in one event {IMPLIED_EVENT}, scheduled at enrolment "
                                          "(data given outside events is imported there)")
        return [{"oid": IMPLIED_EVENT, "name": "Study forms", "kind": "scheduled",
                 "anchor": "enrolment", "forms": forms}]

    def _foreign_schedule(self, el: etree._Element, where: str) -> dict[str, Any]:
        odm_type, repeating = el.get("Type"), el.get("Repeating") == "Yes"
        offset = self._vendor(el, "DayOffset")
        if not repeating and offset is not None and offset.lstrip("-").isdigit():
            schedule: dict[str, Any] = {"kind": "scheduled", "anchor": "enrolment",
                                        "offset": f"{int(offset)}d"}
            low, high = self._vendor(el, "OffsetMin"), self._vendor(el, "OffsetMax")
            if (low or "0").isdigit() and (high or "0").isdigit():
                schedule["window"] = {"before": f"{int(low or 0)}d", "after": f"{int(high or 0)}d"}
            self.notes.add(where, "REDCap day offset imported as an offset from enrolment: "
                                  "check the anchor")
            return schedule
        if odm_type == "Common":
            if repeating:
                self.notes.add(where, "repeating Common event imported as a log (one per "
                                      "subject): make its groups repeating for several entries")
            return {"kind": "log"}
        if odm_type == "Unscheduled":
            return {"kind": "unscheduled"}
        if repeating:
            self.notes.add(where, "repeating Scheduled event has no interval in ODM: imported "
                                  "as unscheduled (add kind: repeating with repeat.every)")
            return {"kind": "unscheduled"}
        self.notes.add(where, "ODM carries no visit timing: scheduled at enrolment + 0d "
                              "(set anchor, offset and window)")
        return {"kind": "scheduled", "anchor": "enrolment"}
