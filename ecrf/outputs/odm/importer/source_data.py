"""Reading another system's ClinicalData through the study's source map: its OIDs become
ecrf's, REDCap checkbox fields (one 0/1 item per choice) become one multiple-choice value,
coded values are renamed, and what is skipped on purpose (a REDCap record ID, a form
status) is counted with its reason. Files written by ecrf (no source map) read as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from ecrf.crf import SourceMap, StudyDefinition
from ecrf.outputs.odm.common import q

Value = str | list[str] | None


@dataclass
class SourceReader:
    """The source map of a study, applied to one file's SubjectData elements."""

    map: SourceMap
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> ItemData skipped

    def study(self, source_oid: str | None) -> str | None:
        """The ecrf study a ClinicalData StudyOID is (None when the map does not know it)."""
        if self.map.empty:
            return source_oid
        return self.map.translate_study(source_oid)

    def events(self, subject: etree._Element) -> Iterator[tuple[etree._Element, str, int]]:
        """Each StudyEventData as (element, ecrf event, repeat); FormData given outside any
        event (a REDCap classic project) come as the subject element in the implied event."""
        for sed in subject.iterfind(q("StudyEventData")):
            key = sed.get("StudyEventRepeatKey") or "1"
            yield (sed, self.map.translate_event(sed.get("StudyEventOID")),
                   int(key) if key.isdigit() else 0)  # 0: not a repeat (refused by the caller)
        if subject.find(q("FormData")) is not None:
            yield subject, self.map.translate_event(None), 1

    def form(self, source_form: str | None) -> str:
        return self.map.translate_form(source_form)

    def group(self, source_form: str | None, source_group: str | None) -> str:
        return self.map.translate_group(source_form, source_group)

    def values(self, source_form: str | None, group: etree._Element
               ) -> Iterator[tuple[str, str, Value]]:
        """(ecrf group, ecrf item, value) of one ItemGroupData; None for a removed or null
        value."""
        checkboxes: dict[tuple[str, str], list[str]] = {}
        for data in group.iterfind(q("ItemData")):
            oid, target = self.map.locate_item(source_form, group.get("ItemGroupOID"),
                                               data.get("ItemOID"))
            if target.skip:
                self.skipped[target.skip] += 1
                continue
            removed = data.get("TransactionType") == "Remove" or data.get("IsNull") == "Yes"
            value = None if removed else data.get("Value")
            if target.choice is not None:
                chosen = checkboxes.setdefault((oid, target.item or ""), [])
                if self.map.is_checked(value):
                    chosen.append(target.choice)
                continue
            yield oid, target.item or "", self.map.translate_code(target, value)
        for (oid, item), chosen in checkboxes.items():
            yield oid, item, chosen or None


def source_reader(definition: StudyDefinition) -> SourceReader:
    """The reader of files of the system the study was imported from."""
    return SourceReader(definition.source_map)


__all__ = ["SourceReader", "source_reader"]
