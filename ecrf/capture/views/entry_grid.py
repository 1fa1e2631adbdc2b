"""Grids (``layout: grid``): the planned lines of a daily log, and the buttons that add
lines without JavaScript.

A grid is rendered by templates/entry/_grid.html (its lines by ``grid_rows``, from one
compiled line) from the same ``EntryPage`` as any other group, and posts the same field names (``GROUP-ROW-ITEM``, ``rows-GROUP``), so saving it
is the ordinary save. What this module adds:

- ``offer_planned``: a form with no line yet in a grid with ``planned_days`` opens with a
  line per planned day up to today, its date filled in;
- ``extend``: the "Add the planned days" (``plan:GROUP``) and "Add N lines"
  (``lines:GROUP`` with ``lines-GROUP``) buttons;
- ``unplanned``: on save, a new line holding nothing but its planned date is left out
  (it is an offer, not data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from ecrf.capture import operations as capture
from ecrf.capture.models import EventInstance, FormInstance, GroupRow, Subject
from ecrf.capture.schedule import local_today
from ecrf.capture.schedule_data import subject_schedule_data
from ecrf.capture.structures import OpenForm, Submission
from ecrf.capture.views.entry_page import posted_number
from ecrf.crf import FormDef, GroupDef, StudyDefinition
from ecrf.crf.fields import field_name

Rows = dict[str, tuple[int, ...]]
MAX_LINES_AT_ONCE = 60


def planned_groups(form: FormDef) -> list[GroupDef]:
    return [g for g in form.groups if g.repeating and g.is_grid and g.planned_days]


def planned_dates(session: Session, definition: StudyDefinition, subject: Subject,
                  group: GroupDef, *, up_to_today: bool = True) -> dict[int, dt.date]:
    """Study day -> date of the group's planned lines; empty while the anchor is unknown.
    Days after today are not offered (nothing can be measured on them yet)."""
    plan = group.planned_days
    if plan is None:
        return {}
    today = local_today(subject.site.timezone)
    anchors = subject_schedule_data(session, definition, subject, today=today).anchors
    day1 = anchors.get(plan.anchor)
    if day1 is None:
        return {}
    if isinstance(day1, dt.datetime):
        day1 = day1.date()
    return {d: when for d, when in plan.dates(day1).items()
            if not up_to_today or when <= today}


def offer_planned(session: Session, subject: Subject, opened: OpenForm, event_oid: str,
                  repeat: int) -> tuple[OpenForm, Rows, dict]:
    """The form to show on opening: with the planned lines of a grid that has no line yet
    (their dates as initial values), validated as if they were entered, so calculated
    cells (the study day) show."""
    rows: Rows = dict(opened.rows)
    prefill: dict = {}
    for group in planned_groups(opened.form):
        if rows.get(group.oid) or any(g == group.oid for g, _ in opened.removed):
            continue
        dates = planned_dates(session, opened.definition, subject, group)
        numbers = []
        for number, (_, when) in enumerate(sorted(dates.items()), start=1):
            numbers.append(number)
            prefill[(group.oid, number, group.planned_days.date)] = when.isoformat()
        rows[group.oid] = tuple(numbers)
    if not prefill:
        return opened, rows, {}
    preview, _ = capture.preview_form(
        session, subject, event_oid, repeat, opened.form.oid,
        Submission(values=prefill, rows=rows, partial=True))
    return preview, rows, prefill


def _stored_rows(session: Session, subject: Subject, event_oid: str, repeat: int,
                 form_oid: str) -> set[tuple[str, int]]:
    """Every row number the form has stored, removed ones included."""
    return set(session.execute(
        select(GroupRow.group_oid, GroupRow.row)
        .join(FormInstance, FormInstance.id == GroupRow.form_instance_id)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
        .where(EventInstance.subject_id == subject.id, EventInstance.event_oid == event_oid,
               EventInstance.repeat == repeat, FormInstance.form_oid == form_oid)).all())


def extend(session: Session, subject: Subject, event_oid: str, repeat: int,
           definition: StudyDefinition, form: FormDef, action: str, rows: Rows,
           data: MultiDict) -> tuple[Rows, MultiDict]:
    """Rows and form data after a ``plan:GROUP`` or ``lines:GROUP`` button; anything else
    is returned unchanged. New lines take numbers never used by the form."""
    kind, _, group_oid = action.partition(":")
    if kind not in ("plan", "lines") or group_oid not in rows:
        return rows, data
    group = form.group(group_oid)
    if not group.is_grid:
        return rows, data
    shown = rows[group_oid]
    used = {r for g, r in _stored_rows(session, subject, event_oid, repeat, form.oid)
            if g == group_oid} | set(shown)
    room = (group.max_rows or MAX_LINES_AT_ONCE * 10) - len(shown)
    data = MultiDict(data)
    new_dates: list[dt.date | None] = []
    if kind == "plan" and group.planned_days is not None:
        item = group.planned_days.date
        have = {data.get(field_name((group_oid, r, item)), "").strip() for r in shown}
        new_dates = [when for _, when in sorted(planned_dates(
            session, definition, subject, group).items()) if when.isoformat() not in have]
    elif kind == "lines":
        count = data.get(f"lines-{group_oid}", "").strip()
        new_dates = [None] * min(posted_number(count) or 1, MAX_LINES_AT_ONCE)
    added = []
    number = max(used, default=0)
    for when in new_dates[:max(room, 0)]:
        number += 1
        added.append(number)
        if when is not None:
            data[field_name((group_oid, number, group.planned_days.date))] = when.isoformat()
    return {**rows, group_oid: shown + tuple(added)}, data


def unplanned(session: Session, subject: Subject, event_oid: str, repeat: int,
              definition: StudyDefinition, form: FormDef, submission: Submission
              ) -> Submission:
    """The submission without the new lines that hold nothing but a planned date."""
    groups = planned_groups(form)
    if not groups:
        return submission
    by_row: dict[tuple[str, int], set[str]] = {}
    for group, row, item in submission.values:
        by_row.setdefault((group, row), set()).add(item)
    drop: set = set()
    stored = None
    for group in groups:
        item = group.planned_days.date
        candidates = [(g, r) for (g, r), items in by_row.items()
                      if g == group.oid and items == {item}]
        if not candidates:
            continue
        if stored is None:
            stored = _stored_rows(session, subject, event_oid, repeat, form.oid)
        planned = {when.isoformat() for when in planned_dates(
            session, definition, subject, group, up_to_today=False).values()}
        for g, r in candidates:
            if (g, r) not in stored and _text(submission.values[(g, r, item)]) in planned:
                drop.add((g, r, item))
    if not drop:
        return submission
    return dataclasses.replace(
        submission, values={k: v for k, v in submission.values.items() if k not in drop})


def _text(raw: object) -> str:
    return raw.strip() if isinstance(raw, str) else ""
