"""Support for data capture: errors, audit paths, the expression context of a form and
the report of what changed under a stale save."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ecrf.capture.models import EventInstance, FormInstance, FormStatus, ItemValue, Subject
from ecrf.capture.schedule import local_today, subject_schedule_data
from ecrf.core import audit
from ecrf.core.audit import Actor, AuditEvent
from ecrf.crf import FormDef, StudyDefinition, UnknownOidError
from ecrf.crf.validation import EntryContext, Key
from ecrf.crf.values import N_, Message, from_canonical
from ecrf.domain.expressions import compile_cached
from ecrf.domain.schedule import EventKind, EventRule

NOT_STARTED = "not_started"
CLINICAL = "clinical"
MAX_REASON = 2000
STATUSES = (NOT_STARTED, *FormStatus)


class CaptureError(ValueError):
    """A capture request that cannot be carried out; ``message`` says why (translatable)."""

    def __init__(self, template: str, **params) -> None:
        self.message = Message(template, params)
        super().__init__(str(self.message))


class NotFoundError(CaptureError, LookupError):
    """No such event, occurrence or form in the subject's study definition."""


class EventStateError(CaptureError):
    """The event is not open for data entry (not started, or declared not done)."""


@dataclass(frozen=True)
class StaleChange:
    username: str
    occurred_at: dt.datetime
    action: str
    path: str
    item: str  # the last part of the path: an item OID, GROUP[row] or the form
    old_value: str | None
    new_value: str | None


class StaleFormError(CaptureError):
    """The form was saved by someone else after the user opened it; nothing was saved.

    ``changes`` lists what was saved meanwhile (who, when, which items) and
    ``current_version`` is the version to base a new attempt on.
    """

    def __init__(self, template: str, changes: list[StaleChange], current_version: int | None,
                 **params) -> None:
        super().__init__(template, **params)
        self.changes = changes
        self.current_version = current_version

    @classmethod
    def build(cls, changes: list[StaleChange], current_version: int | None) -> StaleFormError:
        if not changes:
            return cls(N_("This form was saved by someone else while you were editing it. "
                          "Nothing was saved; your entries are still on the page: review the "
                          "form and save again."), changes, current_version)
        who = ", ".join(sorted({c.username for c in changes}))
        latest = max(c.occurred_at for c in changes)
        items = ", ".join(dict.fromkeys(c.item for c in changes if c.action.startswith(
            ("item.", "row."))))
        return cls(N_("This form was saved by %(who)s at %(when)s after you opened it "
                      "(changed: %(items)s). Nothing was saved; your entries are still on the "
                      "page: review the changes and save again."), changes, current_version,
                   who=who, when=latest.strftime("%Y-%m-%d %H:%M UTC"),
                   items=items or "status")


# --- paths ----------------------------------------------------------------------------------


def event_path(subject: Subject, event_oid: str, repeat: int) -> str:
    return f"{subject.study.oid}/{subject.subject_key}/{event_oid}[{repeat}]"


def form_path(subject: Subject, event_oid: str, repeat: int, form_oid: str) -> str:
    return f"{event_path(subject, event_oid, repeat)}/{form_oid}"


def row_path(subject: Subject, event_oid: str, repeat: int, form_oid: str, group: str,
             row: int) -> str:
    return f"{form_path(subject, event_oid, repeat, form_oid)}/{group}[{row}]"


def item_path(subject: Subject, event_oid: str, repeat: int, form_oid: str, key: Key) -> str:
    group, row, item = key
    return f"{row_path(subject, event_oid, repeat, form_oid, group, row)}/{item}"


def event_rule(definition: StudyDefinition, event_oid: str, repeat: int) -> EventRule:
    try:
        rule = definition.event(event_oid)
    except UnknownOidError:
        raise NotFoundError(N_("There is no event %(event)s in this study."),
                            event=event_oid) from None
    if repeat < 1 or (repeat != 1 and rule.kind in (EventKind.SCHEDULED, EventKind.LOG)):
        raise NotFoundError(N_("%(event)s has no occurrence %(repeat)s."), event=rule.name,
                            repeat=repeat)
    return rule


# --- shared helpers -------------------------------------------------------------------------


def event_instance(session: Session, subject: Subject, event_oid: str, repeat: int, *,
                    lock: bool = False) -> EventInstance | None:
    stmt = select(EventInstance).where(EventInstance.subject_id == subject.id,
                                       EventInstance.event_oid == event_oid,
                                       EventInstance.repeat == repeat)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalar(stmt)


def record_clinical(session: Session, actor: Actor, subject: Subject, action: str, path: str, *,
                    version_label: str, old=None, new=None, reason=None, details=None) -> None:
    audit.record(session, actor, action, category=CLINICAL, study_oid=subject.study.oid,
                 site_code=subject.site.code, subject_key=subject.subject_key, path=path,
                 old_value=old, new_value=new, reason=reason, study_version=version_label,
                 details=details)


# --- expression context ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Needs:
    other_forms: frozenset[tuple[str, str]]
    anchors: bool


_NEEDS: dict[tuple[int, str], tuple[StudyDefinition, _Needs]] = {}


def _needs(definition: StudyDefinition, form_oid: str) -> _Needs:
    # Definitions are immutable and cached per content hash: keyed by identity.
    cached = _NEEDS.get((id(definition), form_oid))
    if cached is not None and cached[0] is definition:
        return cached[1]
    form = definition.form(form_oid)
    sources = [c.expression for c in form.checks]
    for item in form.items:
        sources += [s for s in (item.show_if, item.required_if, item.expression) if s]
        if item.lab is not None:
            sources += [s for s in (item.lab.lln, item.lab.uln) if s]
    others: set[tuple[str, str]] = set()
    anchors = False
    for source in sources:
        for parts in compile_cached(source).references:
            if len(parts) == 2 and parts[0] == "anchor":
                anchors = True
            elif len(parts) == 2 and parts[0] not in ("subject", "param", form_oid):
                others.add((parts[0], parts[1]))
    needs = _Needs(frozenset(others), anchors)
    _NEEDS[(id(definition), form_oid)] = (definition, needs)
    return needs


def strata_fields(text: str | None) -> dict[str, str]:
    """The strata used at randomization as ``subject.stratum.NAME`` reads them."""
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {f"stratum.{k}": str(v) for k, v in found.items()} if isinstance(found, dict) \
        else {}


def other_forms_read(definition: StudyDefinition, form_oid: str) -> list[str]:
    """The other forms of its event whose values a form's expressions read (row 1)."""
    return sorted({f for f, _ in _needs(definition, form_oid).other_forms})


def build_context(session: Session, definition: StudyDefinition, form: FormDef,
                  subject: Subject, event: EventInstance, today: dt.date | None = None, *,
                  other_values: list[tuple[str, str, str | None]] | None = None
                  ) -> EntryContext:
    """What the form's expressions read, loaded only if they read it (``other_values``:
    the row-1 values of ``other_forms_read`` as (form, item, text), already loaded)."""
    site = subject.site
    today = today or local_today(site.timezone)
    needs = _needs(definition, form.oid)
    other: dict[tuple[str, str], object] = {}
    if needs.other_forms:
        stmt = (select(ItemValue.form_oid, ItemValue.item_oid, ItemValue.value)
                .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
                .where(FormInstance.event_instance_id == event.id, ItemValue.row == 1,
                       ItemValue.form_oid.in_(other_forms_read(definition, form.oid))))
        found = other_values if other_values is not None else session.execute(stmt)
        for form_oid, item_oid, text in found:
            if (form_oid, item_oid) in needs.other_forms:
                other[(form_oid, item_oid)] = from_canonical(
                    definition.item(form_oid, item_oid), text)
    anchors: dict[str, dt.date] = {"enrolment": subject.enrolled_on}
    if needs.anchors:
        anchors = dict(subject_schedule_data(session, definition, subject, today=today).anchors)
    return EntryContext(
        today=today, timezone=site.timezone, codelists=definition.codelists,
        other_forms=other, anchors=anchors, params=definition.parameter_values(),
        subject={"arm": subject.arm, "site": site.code,
                 "dose_level": str(subject.dose_level) if subject.dose_level is not None
                 else None, **strata_fields(subject.strata)},
        forms=definition.forms,
    )


# --- what changed since a version ------------------------------------------------------------


def changes_since(session: Session, subject: Subject, event_oid: str, repeat: int,
                  form_oid: str, base_version: int, limit: int = 500) -> list[StaleChange]:
    """Audit rows of saves of the form after ``base_version``, oldest first."""
    prefix = form_path(subject, event_oid, repeat, form_oid)
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.study_oid == subject.study.oid,
                                 AuditEvent.subject_key == subject.subject_key,
                                 or_(AuditEvent.path == prefix,
                                     AuditEvent.path.startswith(prefix + "/", autoescape=True)))
        .order_by(AuditEvent.seq.desc()).limit(limit))
    found = []
    for row in rows:
        try:
            version = json.loads(row.details or "{}").get("form_version")
        except ValueError:
            version = None
        if version is None or version <= base_version:
            continue
        found.append(StaleChange(row.username or "", row.occurred_at, row.action, row.path or "",
                                 (row.path or "").rsplit("/", 1)[-1], row.old_value,
                                 row.new_value))
    found.reverse()
    return found
