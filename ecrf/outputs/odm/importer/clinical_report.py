"""The report of a clinical import: every problem where it is in the file (subject, event,
form, item group and item by their source OIDs), what happened to each subject and form,
and the count of ItemData: in the file = stored + unchanged + skipped (by reason)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Why an ItemData of the file was not stored, by the code the JSON report uses.
SKIP_REASONS = {
    "calculated": "calculated here from the values it depends on",
    "system": "written by this system (randomisation, dose level)",
    "unknown_event": "its event is not in the study definition",
    "unknown_form": "its form is not in the study definition",
    "unknown_item": "not an item of its form",
    "row_removed": "in a row the file removes",
    "superseded": "a later ItemData of the file gives the same item",
    "invalid_value": "value refused",
    "form_refused": "another value or rule of its form was refused",
    "subject_not_imported": "its subject was not imported (problems listed)",
    "import_refused": "valid, but the import was refused as a whole (all or nothing)",
}

# Reactions a historical import holds back (``audit.held_back``), for the printed report.
HELD_BACK = {
    "sae_reports": "SAE report creation, submission and SUSAR checks",
    "notifications": "SAE notifications",
    "automatic_queries": "automatic queries",
    "ae_prompts": "AE prompts from graded values",
    "dlt_candidates": "DLT candidate reviews",
}


@dataclass(frozen=True)
class Problem:
    """Why a record cannot be stored, where it is in the file (its own OIDs)."""

    subject: str
    event: str | None = None
    event_repeat: str | None = None
    form: str | None = None
    group: str | None = None
    row: str | None = None
    item: str | None = None
    message: str = ""

    def where(self) -> str:
        parts = [self.subject]
        if self.event:
            parts.append(f"{self.event}[{self.event_repeat}]" if self.event_repeat
                         else self.event)
        if self.form:
            parts.append(self.form)
        if self.group:
            parts.append(f"{self.group}[{self.row}]" if self.row else self.group)
        if self.item:
            parts.append(self.item)
        return " / ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ItemCounts:
    in_file: int = 0
    stored: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)

    def add(self, other: ItemCounts) -> None:
        self.in_file += other.in_file
        self.stored += other.stored
        self.unchanged += other.unchanged
        self.skipped.update(other.skipped)

    def move_kept(self, reason: str) -> None:
        """Stored and unchanged ItemData that end up not stored, for ``reason``."""
        moved = self.stored + self.unchanged
        if moved:
            self.skipped[reason] += moved
        self.stored = self.unchanged = 0

    @property
    def adds_up(self) -> bool:
        return self.in_file == self.stored + self.unchanged + sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {"in_file": self.in_file, "stored": self.stored, "unchanged": self.unchanged,
                "skipped": dict(sorted((k, v) for k, v in self.skipped.items() if v))}

    def line(self, dry_run: bool = False) -> str:
        skipped = sum(self.skipped.values())
        text = (f"ItemData: {self.in_file} in the file = {self.stored} "
                f"{'to store' if dry_run else 'stored'} + {self.unchanged} unchanged + "
                f"{skipped} skipped")
        if skipped:
            text += " (" + "; ".join(f"{n} {SKIP_REASONS.get(code, code)}" for code, n
                                     in sorted(self.skipped.items()) if n) + ")"
        return text


@dataclass
class FormOutcome:
    event: str
    repeat: int
    form: str
    saved: bool = False
    status: str = ""
    steps: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.event}[{self.repeat}]/{self.form}"


@dataclass
class SubjectOutcome:
    subject_key: str
    site_code: str | None = None
    enrolled: bool = False
    error: str | None = None
    forms: list[FormOutcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    counts: ItemCounts = field(default_factory=ItemCounts)
    rows_removed: int = 0
    # stored | not_imported | checked (valid, not stored: dry run or a refused import)
    state: str = "checked"

    @property
    def refused(self) -> list[FormOutcome]:
        return [f for f in self.forms if not f.saved]

    def lines(self) -> list[str]:
        head = self.subject_key + (f" (site {self.site_code})" if self.site_code else "")
        saved = sum(1 for f in self.forms if f.saved)
        if self.state == "not_imported":
            lines = [f"{head}: not imported: " + (self.error or (
                f"{len(self.problems)} problem(s); {len(self.refused)} of {len(self.forms)} "
                "form(s) refused"))]
            lines += [f"  {p}" for p in self.problems if p.message != self.error]
            return lines
        if self.state == "stored":
            lines = [f"{head}: {'enrolled; ' if self.enrolled else ''}{saved} form(s) saved"]
        else:
            lines = [f"{head}: passes ({'would be enrolled; ' if self.enrolled else ''}"
                     f"{saved} form(s) to save)"]
        for form in self.forms:
            lines += [f"  {form.where} note: {m}" for m in form.messages]
        return lines


@dataclass
class ImportReport:
    file_name: str
    study_oid: str
    sha256: str = ""
    source_system: str | None = None
    originator: str | None = None
    file_type: str = "Snapshot"
    partial: bool = False
    dry_run: bool = False
    subjects: list[SubjectOutcome] = field(default_factory=list)
    counts: ItemCounts = field(default_factory=ItemCounts)
    rows_removed: int = 0
    held: dict[str, int] = field(default_factory=dict)
    committed: bool = False
    seconds: float = 0.0

    @property
    def problems(self) -> list[Problem]:
        return [p for s in self.subjects for p in s.problems]

    @property
    def refused_forms(self) -> int:
        return sum(len(s.refused) for s in self.subjects) + sum(1 for s in self.subjects
                                                                 if s.error)

    @property
    def saved_forms(self) -> int:
        return sum(1 for s in self.subjects if s.state == "stored" for f in s.forms if f.saved)

    @property
    def refused_subjects(self) -> list[str]:
        return [s.subject_key for s in self.subjects if s.state == "not_imported"]

    @property
    def outcome(self) -> str:
        if self.committed:
            return "partially stored" if self.refused_subjects else "stored"
        if self.dry_run:
            return "dry run"
        return "refused"

    def summary_lines(self) -> list[str]:
        stored = sum(1 for s in self.subjects if s.state == "stored")
        lines = [f"{self.file_name} (SHA-256 {self.sha256[:16]}..., "
                 f"{self.file_type.lower()}, from {self.source_system or 'an unnamed system'})"
                 f": {len(self.subjects)} subject(s), {stored} stored, "
                 f"{len(self.refused_subjects)} not imported, "
                 f"{len(self.problems)} problem(s)",
                 self.counts.line(self.dry_run)]
        if self.rows_removed:
            lines.append(f"{self.rows_removed} repeating-group row(s) removed")
        held = [f"{HELD_BACK.get(k, k)} ({n} save(s))" for k, n in sorted(self.held.items())]
        if held:
            lines.append("Historical import, held back: " + "; ".join(held))
        if self.outcome == "stored":
            lines.append("Stored.")
        elif self.outcome == "partially stored":
            lines.append(f"Stored, except the subject(s) listed as not imported: "
                         f"{', '.join(self.refused_subjects)}.")
        elif self.dry_run:
            checked = sum(1 for s in self.subjects if s.state == "checked")
            if not self.problems:
                then = ""
            elif self.partial and checked:
                then = (f" The import would store {checked} subject(s) and leave out "
                        f"{len(self.refused_subjects)}.")
            else:
                then = " The file would be refused as it stands."
            lines.append("Dry run: nothing was stored." + then)
        else:
            lines.append("Nothing was stored: every problem above must be solved first "
                         "(or import with --partial to store the subjects without problems).")
        return lines

    def lines(self) -> list[str]:
        found = [line for s in self.subjects for line in s.lines()]
        return found + self.summary_lines()

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file_name, "sha256": self.sha256, "study": self.study_oid,
            "source_system": self.source_system, "originator": self.originator,
            "file_type": self.file_type,
            "mode": "partial" if self.partial else "all-or-nothing",
            "dry_run": self.dry_run, "committed": self.committed, "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "subjects": {
                "in_file": len(self.subjects),
                "stored": sum(1 for s in self.subjects if s.state == "stored"),
                "enrolled": sum(1 for s in self.subjects
                                if s.enrolled and s.state == "stored"),
                "not_imported": self.refused_subjects,
            },
            "forms": {"saved": self.saved_forms, "refused": self.refused_forms},
            "item_data": self.counts.as_dict(),
            "rows_removed": self.rows_removed,
            "held_back": dict(sorted(self.held.items())),
            "problems": [p.as_dict() for p in self.problems],
            "subject_details": [{
                "subject": s.subject_key, "site": s.site_code, "state": s.state,
                "new_subject": s.enrolled, "item_data": s.counts.as_dict(),
                "forms": [{"event": f.event, "repeat": f.repeat, "form": f.form,
                           "passed": f.saved, "status": f.status or None, "saves": f.steps,
                           "messages": f.messages} for f in s.forms],
            } for s in self.subjects],
        }
