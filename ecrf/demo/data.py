"""Demo: realistic entered data, drafts, completed forms and corrections with reasons.

Everything goes through the capture service, as a coordinator of the subject's site would
enter it, so the demo's audit trail, schedule and statuses are the real thing. Values are
derived from each item's definition (type, ranges, code lists, lab test) and then adjusted
until the form's own edit checks pass; a form that still fails is left in progress, as a
coordinator would leave it. Idempotent: a subject that already has an event is skipped.

Generic values cannot know a trial's clinical story (a relapse 8 to 14 months after the
first remission, the WHO class, a DLT), so a trial folder may script values in its
``demo.yaml`` (``scripts``): they are tried first, the generic ones only after them.
In a dose-escalation study a subject is filled once it has a dose level, since its forms
record that level.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import capture
from ecrf.accounts import Role, RoleGrant, User
from ecrf.capture import (
    EventInstance,
    FormInstance,
    ItemValue,
    Subject,
    build_context,
    event_instance,
)
from ecrf.core.audit import Actor
from ecrf.crf import ItemType
from ecrf.crf.validation import validate_form
from ecrf.demo.scripts import Dates, DemoScript, FormScript, load_script
from ecrf.demo.studies import SCREEN_FAILURES, SUBJECTS, TRIALS
from ecrf.demo.values import FormValues
from ecrf.domain.schedule import EventKind
from ecrf.studies import Site, Study, definition_for

log = logging.getLogger(__name__)

ACK = "Confirmed against the source document."
CORRECTIONS = ("Transcription error corrected against the source document.",
               "Value re-checked with the laboratory report.")
MAX_VISITS = 8
# Visits planned from a date a log gives (follow-up from the end of treatment), entered
# once the logs are: at most this many per subject.
MAX_FOLLOW_UP_VISITS = 4
ELIGIBILITY_FORM = "ELIG"  # where both trials record the eligibility decision


def enter_data(session: Session, actor: Actor, config) -> int:
    """Enter data for the demo subjects that have none yet; returns how many were filled.

    A subject of a dose-escalation study waits for its dose level (its forms record it).
    """
    keys = [(oid, key) for oid, _site, key, _days in SUBJECTS]
    found = session.execute(select(Subject, Study.oid).join(Study, Study.id == Subject.study_id)
                            .where(Study.oid.in_(sorted({o for o, _ in keys})))).all()
    by_key = {(oid, s.subject_key): s for s, oid in found}
    started = set(session.scalars(select(EventInstance.subject_id).distinct()))
    scripts = _Scripts(config)
    filled = 0
    for number, (oid, key) in enumerate(keys):
        subject = by_key.get((oid, key))
        if subject is None or subject.id in started:
            continue
        definition = definition_for(subject.study_version)
        failed = (oid, key) in SCREEN_FAILURES
        if definition.dose_escalation is not None and subject.dose_level is None \
                and not failed:
            continue
        index = [k for o, k in keys if o == oid].index(key)
        _Subject(session, subject, _staff(session, subject, Role.COORDINATOR) or actor,
                 _staff(session, subject, Role.INVESTIGATOR) or actor, number,
                 scripts.get(oid, definition), index, screen_failure=failed).fill()
        filled += 1
    return filled


class _Scripts:
    """Each trial's demo.yaml, read once per run and checked against its definition."""

    def __init__(self, config) -> None:
        self.forms = Path(config["FORMS_DIR"])
        self.folders = {oid: folder for oid, folder, _name in TRIALS}
        self.loaded: dict[str, DemoScript | None] = {}

    def get(self, oid: str, definition) -> DemoScript | None:
        if oid not in self.loaded:
            folder = self.folders.get(oid)
            self.loaded[oid] = load_script(self.forms / folder, definition) if folder else None
        return self.loaded[oid]


def _staff(session: Session, subject: Subject, role: Role) -> Actor | None:
    user = session.scalar(select(User).join(RoleGrant, RoleGrant.user_id == User.id).where(
        RoleGrant.study_id == subject.study_id, RoleGrant.site_id == subject.site_id,
        RoleGrant.role == role.value, RoleGrant.revoked_at.is_(None), User.active))
    if user is None:
        return None
    site = session.get(Site, subject.site_id)
    return Actor(user_id=user.id, username=user.username, role=role.value, site_code=site.code)


class _Subject:
    def __init__(self, session: Session, subject: Subject, entrant: Actor, reviewer: Actor,
                 number: int, script: DemoScript | None = None, index: int = 0, *,
                 screen_failure: bool = False):
        self.session, self.subject = session, subject
        self.entrant, self.reviewer, self.number = entrant, reviewer, number
        self.script, self.index = script, index
        self.definition = definition_for(subject.study_version)
        self.today = capture.local_today(subject.site.timezone)
        # Every visit due by today, up to a cap: a dose-escalation cohort needs its DLT
        # assessments, a randomized subject its treatment visits.
        self.budget = MAX_VISITS
        # A screen failure stops at the eligibility decision: screening only, and none of
        # its forms after the eligibility form (a dose level, a randomization).
        self.screen_failure = screen_failure
        if screen_failure:
            self.budget = 1
        self.birth = dt.date(1948 + number * 3 % 30, 1 + number * 5 % 12, 1 + number * 7 % 27)

    def fill(self) -> None:
        events = 0
        while events < self.budget:
            visit = self._next_visit()
            if visit is None:
                break
            last = events + 1 == self.budget
            self._visit(visit.event_oid, visit.repeat, visit.planned, draft=last and
                        self.number % 3 == 2 and not self.screen_failure)
            events += 1
            if events == 1:
                self._randomize(visit.planned)
        if events:
            self._logs(generic=self.number % 3 != 1 and not self.screen_failure)
            if not self.screen_failure:
                self._follow_up()
        if events and self.number % 2 == 0:
            self._correct()

    def _follow_up(self) -> None:
        """The visits due from a date the logs just gave (DEXAML-03's follow-up contacts
        from the end of treatment): the walk above came before the logs, so it could not
        see them. Other visits keep the walk's cap."""
        log_forms = {form for rule in self.definition.events if rule.kind is EventKind.LOG
                     for form in rule.forms}
        anchors = {name for name, (form, _item) in self.definition.anchors.items()
                   if form in log_forms}
        for _ in range(MAX_FOLLOW_UP_VISITS if anchors else 0):
            visit = self._next_visit(anchors)
            if visit is None:
                break
            self._visit(visit.event_oid, visit.repeat, visit.planned, draft=False)

    def _next_visit(self, anchors: set[str] | None = None):
        started = {(e.event_oid, e.repeat) for e in self.session.scalars(
            select(EventInstance).where(EventInstance.subject_id == self.subject.id))}
        rows = capture.schedule_rows(self.session, self.subject, self.today)
        for row in rows:
            rule = self.definition.event(row.event_oid)
            if (row.event_oid, row.repeat) in started or row.planned is None:
                continue
            if anchors is not None and rule.anchor not in anchors:
                continue
            if rule.kind in (EventKind.SCHEDULED, EventKind.REPEATING) \
                    and row.status in ("due", "overdue") and row.planned <= self.today:
                return row
        return None

    def _visit(self, event_oid: str, repeat: int, planned: dt.date, *, draft: bool) -> None:
        day = min(max(planned, self.subject.enrolled_on), self.today)
        capture.open_event(self.session, self.entrant, self.subject, event_oid, repeat, day,
                           today=self.today)
        forms = [f for f in self.definition.event(event_oid).forms if not self._skipped(f)]
        if self.screen_failure and ELIGIBILITY_FORM in forms:
            forms = forms[:forms.index(ELIGIBILITY_FORM) + 1]
        for index, form_oid in enumerate(forms):
            half = draft and index == len(forms) - 1
            self._form(event_oid, repeat, form_oid, day, complete=not half, half=half)

    def _skipped(self, form_oid: str) -> bool:
        # Written by the randomization service, never typed in.
        rand = self.definition.randomization
        return bool(rand and rand.date_item and rand.date_item[0] == form_oid)

    def _randomize(self, planned: dt.date) -> None:
        from ecrf import allocation

        if self.definition.randomization is None:
            return
        if allocation.active_list(self.session, self.subject.study) is None:
            return
        try:
            allocation.randomize(self.session, self.reviewer, self.subject,
                                    today=self.randomization_day(planned))
        except allocation.NotRandomizable as exc:
            log.info("demo: %s not randomized: %s", self.subject.subject_key, exc)
            return
        self._complete_written_form()

    def _rand_item(self) -> tuple[str, str, str] | None:
        """(event, form, item) of the randomization date the service writes."""
        rand = self.definition.randomization
        if rand is None or rand.date_item is None:
            return None
        form_oid, item_oid = rand.date_item
        event = next((e.oid for e in self.definition.events if form_oid in e.forms), None)
        return (event, form_oid, item_oid) if event else None

    def _complete_written_form(self) -> None:
        """The coordinator checks the form the randomization service wrote and marks it
        complete, as they would on screen."""
        where = self._rand_item()
        if where is None or capture.event_instance(self.session, self.subject, where[0],
                                                   1) is None:
            return
        event, form_oid, _item = where
        opened = capture.load_form(self.session, self.subject, event, 1, form_oid,
                                   today=self.today)
        if opened.version is None or opened.status == "complete":
            return
        submission = capture.Submission(
            partial=True, acknowledgements={w.key: ACK for w in opened.validation.warnings})
        capture.save_form(self.session, self.entrant, self.subject, event, 1, form_oid,
                          submission, base_version=opened.version, complete=True,
                          today=self.today)

    def randomization_day(self, planned: dt.date) -> dt.date:
        """The scripted randomization date (the service writes it), else today."""
        where = self._rand_item()
        if where is None:
            return self.today
        event, form_oid, item_oid = where
        value = self.form_script(event, form_oid).value(item_oid, ItemType.DATE, 1,
                                                        self.dates(planned))
        return dt.date.fromisoformat(value) if isinstance(value, str) else self.today

    def form_script(self, event_oid: str, form_oid: str) -> FormScript:
        if self.script is None:
            return FormScript()
        return self.script.form(self.subject.subject_key, self.index, event_oid, form_oid)

    def dates(self, day: dt.date, repeat: int = 1) -> Dates:
        return Dates(day, self.subject.enrolled_on, self.today, repeat)

    def _logs(self, *, generic: bool = True) -> None:
        """A few logs with generic lines, and every log the script tells for this subject."""
        anchored = {form for form, _item in self.definition.anchors.values()}
        own = self.script.scripted_for_subject(self.subject.subject_key) if self.script \
            else set()
        filled = 0
        for rule in self.definition.events:
            if rule.kind is not EventKind.LOG:
                continue
            forms = [self.definition.form(f) for f in rule.forms]
            if not own.intersection(rule.forms) and (not generic or filled >= 2):
                continue
            if capture.event_instance(self.session, self.subject, rule.oid, 1) is not None:
                continue
            if rule.condition and not self._applies(rule.condition):
                continue
            # Generic lines go to repeating logs only; a log the script tells for this
            # subject (an end of treatment, a death, an end of study) is always entered.
            if not own.intersection(rule.forms) and (any(f.oid in anchored for f in forms)
                                                     or not all(any(g.repeating for g in
                                                                    f.groups)
                                                                for f in forms)):
                continue
            capture.open_event(self.session, self.entrant, self.subject, rule.oid, 1, None,
                               today=self.today)
            for form in forms:
                self._form(rule.oid, 1, form.oid, self.today - dt.timedelta(days=10),
                           complete=True, rows=1 + self.number % 2)
            filled += 1

    def _applies(self, condition: str) -> bool:
        data = capture.subject_schedule_data(self.session, self.definition, self.subject,
                                              today=self.today)
        return data.evaluate(condition)

    # --- one form ---------------------------------------------------------------------------

    def _form(self, event_oid: str, repeat: int, form_oid: str, day: dt.date, *,
              complete: bool, half: bool = False, rows: int = 1) -> None:
        form = self.definition.form(form_oid)
        event = event_instance(self.session, self.subject, event_oid, repeat)
        context = build_context(self.session, self.definition, form, self.subject, event,
                                self.today)
        script = self.form_script(event_oid, form_oid)
        if script.rows is not None:
            rows = script.rows
        counts = {g.oid: tuple(range(1, rows + 1)) for g in form.groups if g.repeating}
        filler = FormValues(self, form, day, counts, script, repeat)
        values = filler.settle(context)
        filler.report(values, f"{self.subject.subject_key} {event_oid} {form_oid}")
        if half:
            keep = sorted(values)[: len(values) // 2]
            values = {k: values[k] for k in keep}
            # An item whose controlling answer was left out is not asked yet.
            shown = validate_form(form, values, context, rows=counts).visible
            values = {k: v for k, v in values.items() if k in shown}
        warnings = validate_form(form, values, context, rows=counts).warnings
        submission = capture.Submission(values=values, rows=counts,
                                        acknowledgements={w.key: ACK for w in warnings})
        result = capture.save_form(self.session, self.entrant, self.subject, event_oid, repeat,
                                   form_oid, submission, base_version=None, complete=complete,
                                   today=self.today)
        if not result.saved and complete:
            result = capture.save_form(self.session, self.entrant, self.subject, event_oid,
                                       repeat, form_oid, submission, base_version=None,
                                       complete=False, today=self.today)
        if not result.saved:
            log.info("demo: %s %s not saved: %s", self.subject.subject_key, form_oid,
                     [str(m) for ms in result.errors.values() for m in ms][:3])

    def _correct(self) -> None:
        """A monitor's finding corrected by the investigator, with the reason."""
        rows = self.session.execute(
            select(ItemValue, FormInstance, EventInstance)
            .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .where(ItemValue.subject_id == self.subject.id, FormInstance.status == "complete",
                   ItemValue.value_number.is_not(None))
            .order_by(ItemValue.id)).all()
        for value, instance, event in rows:
            item = definition_for(instance.study_version).item(instance.form_oid, value.item_oid)
            if item.type not in (ItemType.INTEGER, ItemType.DECIMAL):
                continue
            if value.item_oid in self.form_script(event.event_oid, instance.form_oid).items:
                continue  # the script's values are the source document: nothing to correct
            step = Decimal(1).scaleb(-(item.precision or 0)) if item.type is ItemType.DECIMAL \
                else Decimal(1)
            new = value.value_number + step
            if item.range is not None and not item.range.contains(new):
                continue
            text = format(new.quantize(step), "f")
            key = (value.group_oid, value.row, value.item_oid)
            result = capture.save_form(
                self.session, self.reviewer, self.subject, event.event_oid, event.repeat,
                instance.form_oid, capture.Submission(
                    values={key: text}, partial=True,
                    reasons={key: CORRECTIONS[self.number % len(CORRECTIONS)]},
                    acknowledgements={}),
                base_version=instance.version, complete=False, today=self.today)
            if result.saved:
                return
