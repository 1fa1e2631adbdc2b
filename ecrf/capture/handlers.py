"""Capture's reactions and additions: the receiver that recomputes a subject's status
after a save, the tasks of a subject (a template global for the subject page) and the site
roles' dashboard panel of tasks; connected by ``register``."""

from __future__ import annotations

from flask import Flask, current_app, url_for
from flask_babel import get_locale

from ecrf import accounts, studies
from ecrf.capture import status
from ecrf.capture.models import Subject
from ecrf.capture.status import SubjectTask
from ecrf.core import DashboardPanel, add_panel, connect, db, form_saved


def _language() -> str | None:
    locale = get_locale()
    return str(locale) if locale else None


def _view(task: SubjectTask, study_oid: str) -> dict:
    rule = task.task.rule
    url = None
    if "entry.form" in current_app.view_functions:
        url = url_for("entry.form", study_oid=study_oid, subject_key=task.subject_key,
                      event_oid=rule.event, repeat=task.repeat, form_oid=rule.form)
    return {"subject_key": task.subject_key, "site": task.site_code,
            "name": rule.name_in(_language()), "since": task.task.since,
            "due": task.task.due, "overdue": task.task.overdue, "url": url}


def subject_tasks(subject: Subject) -> list[dict]:
    """The open tasks of a subject, for ``studies/_tasks.html`` on the subject page, each
    with the events its form's dates will plan (in the user's language)."""
    from ecrf.capture.views.subjects import _event_names

    tasks = status.subject_tasks(db.session, subject)
    if not tasks:
        return []
    definition = studies.definition_for(subject.study_version)
    names = _event_names(subject.study_version)
    views = []
    for task in tasks:
        view = _view(task, subject.study.oid)
        view["then"] = [names.get(oid, oid)
                        for oid in status.anchored_on(definition, task.task.rule.form)]
        views.append(view)
    return views


def site_tasks(session, user, study) -> list[dict]:
    """Open tasks of the subjects at the user's sites (the site roles' panel)."""
    site_ids = accounts.site_ids_for(user, "subjects.view", study)
    return [_view(t, study.oid) for t in status.study_tasks(session, study, site_ids)]


TASKS_PANEL = DashboardPanel("capture.tasks", frozenset({"investigator", "coordinator"}),
                             "studies/_tasks_panel.html", site_tasks)


def register(app: Flask) -> None:
    connect(form_saved, status.on_form_saved)
    app.add_template_global(subject_tasks, "subject_tasks")
    add_panel(TASKS_PANEL)
