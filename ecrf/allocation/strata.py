"""Stratification factors after randomization: the stratum used and the one recorded now.

A randomized subject keeps its allocation and the strata it was made in (the allocation's
``strata``, copied to ``Subject.strata`` for the schedule). Correcting a stratification
item afterwards is the data manager's (``strata.correct``): it goes through data capture
like any other change (reason, audit trail, locks), capture refusing it to site roles.
The save's receivers record the mis-stratification against the allocation
(``record_misstratification``, audit action ``allocation.stratum_corrected``) and review
opens a query explaining it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import capture
from ecrf.allocation.models import Allocation
from ecrf.allocation.randomization import definition_of, recorded_values
from ecrf.capture import EventInstance, FormInstance, ItemValue, Subject
from ecrf.core import FormChange, audit
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinition
from ecrf.crf.values import N_, Message


class StratumCorrectionError(ValueError):
    """A correction that was not saved; ``messages`` say why (nothing was written)."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        super().__init__("; ".join(m.render() for m in messages))


@dataclass(frozen=True)
class StratumRow:
    name: str
    form: str
    item: str
    label: str
    used: str | None  # the level the allocation was made in
    recorded: str | None  # the level recorded now
    choices: tuple[tuple[str, str], ...]  # (code, label) of the item

    def label_of(self, code: str | None) -> str | None:
        return dict(self.choices).get(code, code) if code is not None else None

    @property
    def mismatch(self) -> bool:
        return self.used is not None and self.recorded is not None \
            and self.used != self.recorded


def used_strata(subject: Subject) -> dict[str, str]:
    try:
        found = json.loads(subject.strata) if subject.strata else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def strata_rows(session: Session, subject: Subject, language: str | None = None
                ) -> list[StratumRow]:
    """Each stratum of the study with the level used at randomization and the one recorded
    now (empty for a study without strata)."""
    defn = definition_of(session, subject)
    if defn.randomization is None or not defn.randomization.strata:
        return []
    keys = [(s.form, s.item) for s in defn.randomization.strata]
    values = recorded_values(session, [subject.id], keys)
    used = used_strata(subject)
    rows = []
    for stratum in defn.randomization.strata:
        key = (stratum.form, stratum.item)
        choices = defn.choices_of(*key)
        rec = values.get((subject.id, *key))
        rows.append(StratumRow(
            stratum.name, stratum.form, stratum.item,
            defn.item(*key).label_in(language), used.get(stratum.name),
            rec.value if rec else None,
            tuple((c.code, c.label_in(language)) for c in choices.items) if choices else ()))
    return rows


def _stored_at(session: Session, subject: Subject, key: tuple[str, str]
               ) -> tuple[EventInstance, ItemValue] | None:
    value = session.scalar(select(ItemValue).where(
        ItemValue.subject_id == subject.id, ItemValue.form_oid == key[0],
        ItemValue.item_oid == key[1], ItemValue.value.is_not(None))
        .order_by(ItemValue.updated_at.desc(), ItemValue.id.desc()).limit(1))
    if value is None:
        return None
    form = session.get(FormInstance, value.form_instance_id)
    return session.get(EventInstance, form.event_instance_id), value


def correct_stratum(session: Session, actor: Actor, subject: Subject, name: str,
                    value: str, reason: str) -> capture.SaveResult:
    """Change the stratification item of stratum ``name`` where it is recorded, through
    data capture, keeping the allocation. Raises StratumCorrectionError (nothing saved)."""
    defn = definition_of(session, subject)
    stratum = next((s for s in (defn.randomization.strata if defn.randomization else ())
                    if s.name == name), None)
    if stratum is None:
        raise StratumCorrectionError([Message(N_("The study has no stratum %(name)s."),
                                              {"name": name})])
    if not subject.arm:
        raise StratumCorrectionError([Message(N_(
            "The subject is not randomized: correct the screening form itself."))])
    key = (stratum.form, stratum.item)
    choices = defn.choices_of(*key)
    if choices is None or value not in choices.codes:
        raise StratumCorrectionError([Message(N_("Choose one of the levels of the stratum."))])
    if not (reason or "").strip():
        raise StratumCorrectionError([Message(N_("Give the reason for the correction."))])
    found = _stored_at(session, subject, key)
    if found is None:
        raise StratumCorrectionError([Message(N_("%(label)s is not recorded."),
                                              {"label": defn.item(*key).label})])
    event, stored = found
    if stored.value == value:
        raise StratumCorrectionError([Message(N_("%(label)s is already recorded as %(level)s."),
                                              {"label": defn.item(*key).label,
                                               "level": choices.label_of(value)})])
    opened = capture.load_form(session, subject, event.event_oid, event.repeat, key[0])
    cell = (stored.group_oid, stored.row, stored.item_oid)
    result = capture.save_form(
        session, actor, subject, event.event_oid, event.repeat, key[0],
        capture.Submission(values={cell: value}, reasons={cell: reason.strip()},
                           partial=True),
        base_version=opened.version, complete=False)
    if not result.saved:
        messages = [m for ms in result.errors.values() for m in ms] + list(result.form_errors)
        raise StratumCorrectionError(messages or [Message(N_("The correction was not saved."))])
    return result


def _stratum_of(defn: StudyDefinition, form_oid: str, item_oid: str) -> str | None:
    return defn.strata_items.get((form_oid, item_oid))


def record_misstratification(change: FormChange) -> None:
    """A stratification item of a randomized subject changed: record, against the
    allocation in force, the stratum used beside the one now recorded."""
    subject = change.subject
    if not isinstance(subject, Subject) or not subject.arm or not change.changes:
        return
    defn = definition_of(change.session, subject)
    used = used_strata(subject)
    for item in change.changes:
        name = _stratum_of(defn, change.form_oid, item.item)
        if name is None:
            continue
        allocation = change.session.scalar(select(Allocation).where(
            Allocation.live_subject_id == subject.id))
        audit.record(change.session, change.actor, "allocation.stratum_corrected",
                     category="clinical", study_oid=subject.study.oid,
                     site_code=subject.site.code, subject_key=subject.subject_key,
                     path=f"{subject.study.oid}/{subject.subject_key}/strata/{name}",
                     old_value=item.old, new_value=item.new,
                     study_version=subject.study_version.label,
                     details={"stratum": name, "used": used.get(name), "recorded": item.new,
                              "allocation_id": allocation.id if allocation else None,
                              "arm": subject.arm, "allocation_kept": True})
