"""The data structures of data capture: what a user submits, what a save answers, a form
as stored and as opened for the entry screen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ecrf.capture.models import (
    CheckAcknowledgement,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
)
from ecrf.capture.support import NOT_STARTED
from ecrf.crf import FormDef, StudyDefinition
from ecrf.crf.naming import ItemName, Name, Names
from ecrf.crf.validation import Issue, IssueKey, Key, ValidationResult
from ecrf.crf.values import N_, Message, Raw


@dataclass(frozen=True)
class Submission:
    """What a user submitted for one form.

    ``values`` holds the raw input of every item (text, or a list of codes for a multiple
    choice); an absent key is blank unless ``partial`` is set, in which case absent keys
    keep their saved value. ``rows`` optionally lists the live rows of each repeating
    group (rows already saved are always kept unless removed). ``reasons`` gives the reason
    for changing saved values, ``acknowledgements`` the justification of warnings, and
    ``removed_rows`` the reason for removing saved rows.
    """

    values: Mapping[Key, Raw] = field(default_factory=dict)
    reasons: Mapping[Key, str] = field(default_factory=dict)
    acknowledgements: Mapping[IssueKey, str] = field(default_factory=dict)
    removed_rows: Mapping[tuple[str, int], str] = field(default_factory=dict)
    rows: Mapping[str, Sequence[int]] | None = None
    partial: bool = False


@dataclass
class SaveResult:
    """Outcome of ``save_form``. When ``saved`` is False nothing was written."""

    saved: bool
    status: str
    version: int | None
    errors: dict[Key, list[Message]] = field(default_factory=dict)
    form_errors: list[Message] = field(default_factory=list)
    missing: list[Key] = field(default_factory=list)
    check_errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    unacknowledged: list[Issue] = field(default_factory=list)
    changed: list[Key] = field(default_factory=list)
    reasons_needed: list[Key] = field(default_factory=list)
    completion_problems: list[Message] = field(default_factory=list)
    form_instance: FormInstance | None = None
    validation: ValidationResult | None = None
    form_def: FormDef | None = None  # to name the items in messages

    def _missing_names(self) -> Names:
        """The blank items by label, with the row in a repeating group."""
        rows = self.validation.rows if self.validation is not None else {}
        names = []
        for group, row, item in self.missing:
            repeating = len(rows.get(group, (1,))) > 1 or row > 1
            if self.form_def is None:
                names.append(Name(f"{group}[{row}].{item}"))
                continue
            found = self.form_def.item(item)
            names.append(ItemName(Name(found.label, found.labels, item),
                                  row=row if repeating else None))
        return Names(tuple(names))

    @property
    def blockers(self) -> list[Message]:
        """Why the form is not (or cannot be marked) complete."""
        found = [Message(N_("%(n)s required item(s) are blank: %(items)s."), {
            "n": len(self.missing), "items": self._missing_names()})
        ] if self.missing else []
        found += [i.message for i in self.check_errors]
        found += [Message(N_("Warning not acknowledged: %(message)s"), {"message": i.message})
                  for i in self.unacknowledged]
        return found + list(self.completion_problems)


@dataclass
class OpenForm:
    """A form as stored, with what the entry screen needs to show it."""

    definition: StudyDefinition
    form: FormDef
    event: EventInstance
    instance: FormInstance | None
    values: dict[Key, str | None]
    rows: dict[str, tuple[int, ...]]  # live rows of each group
    removed: dict[tuple[str, int], GroupRow]
    acknowledgements: dict[IssueKey, CheckAcknowledgement]
    validation: ValidationResult
    # The stored rows of the values (a form just saved: as written, live rows and removed).
    stored: dict[Key, ItemValue] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.instance.status if self.instance else NOT_STARTED

    @property
    def version(self) -> int | None:
        return self.instance.version if self.instance else None

    def next_row(self, group_oid: str) -> int:
        used = set(self.rows.get(group_oid, ())) | {r for g, r in self.removed if g == group_oid}
        return max(used, default=0) + 1


@dataclass
class Stored:
    """A form as loaded for a save: its rows, values and acknowledgements."""

    event: EventInstance
    instance: FormInstance | None
    definition: StudyDefinition
    version_label: str
    form: FormDef
    values: dict[Key, ItemValue]
    group_rows: dict[tuple[str, int], GroupRow]
    acks: dict[IssueKey, CheckAcknowledgement]
    # The row-1 values of the other forms its expressions read, as (form, item, text), when
    # loaded with it (None: read them when needed).
    other_values: list[tuple[str, str, str | None]] | None = None

    def live_rows(self) -> dict[str, set[int]]:
        live: dict[str, set[int]] = {g.oid: set() for g in self.form.groups if g.repeating}
        for (group, row), record in self.group_rows.items():
            if record.removed_at is None and group in live:
                live[group].add(row)
        return live


@dataclass
class Assessed:
    """A submission checked against the stored form: what a save would write."""

    result: SaveResult
    validation: ValidationResult
    changes: list[Change]
    removals: dict[tuple[str, int], str]
    acks: dict[IssueKey, str]


@dataclass(frozen=True)
class Change:
    key: Key
    old: str | None
    new: str | None
    reason: str | None
    action: str
