"""Semantic checks of study.yaml's ``status:`` rules and ``tasks:`` (the schema checked
their shape and the status names)."""

from __future__ import annotations

from typing import Any

from ecrf.domain.expressions import ValueType

from .check import StudyChecker, dicts, text
from .yaml_lines import Document


def check_status_and_tasks(c: StudyChecker, doc: Document, data: dict[str, Any]) -> None:
    for index, rule in dicts(data.get("status")):
        c.expression(doc, ("status", index, "when"), rule.get("when"),
                     expected=ValueType.BOOLEAN, what="a status rule")
    events = {text(e.get("oid")): e for _, e in dicts(data.get("events"))}
    seen: set[str] = set()
    for index, task in dicts(data.get("tasks")):
        path = ("tasks", index)
        oid = text(task.get("oid"))
        if oid in seen:
            c.report(doc, (*path, "oid"), f"task OID {oid} is used twice")
        if oid:
            seen.add(oid)
        event_oid, form = text(task.get("event")), text(task.get("form"))
        event = events.get(event_oid) if event_oid else None
        if event_oid and event is None:
            c.report(doc, (*path, "event"), f"unknown event '{event_oid}'")
        elif event is not None and form and form not in (event.get("forms") or []):
            c.report(doc, (*path, "form"), f"event {event_oid} has no form {form}")
        c.period(doc, (*path, "due_after"), task.get("due_after"), non_negative=True)
        for t, trigger in dicts(task.get("triggers")):
            c.expression(doc, (*path, "triggers", t, "from"), trigger.get("from"),
                         expected=ValueType.DATE, what="a task's start")
            c.expression(doc, (*path, "triggers", t, "when"), trigger.get("when"),
                         expected=ValueType.BOOLEAN, what="a task's condition")
