"""Capture's checks for ``ecrf audit verify``: every stored item value, form status and
subject status equals what the audit trail last recorded for its path."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.capture.models import EventInstance, FormInstance, ItemValue, Subject
from ecrf.core import audit
from ecrf.studies import Study

ITEM_ACTIONS = ("item.entered", "item.changed", "item.cleared")


def _subject_path():
    return Study.oid + "/" + Subject.subject_key


def _form_path():
    return (_subject_path() + "/" + EventInstance.event_oid + "["
            + audit.as_text(EventInstance.repeat) + "]/" + FormInstance.form_oid)


def item_values(session: Session):
    path = (_form_path() + "/" + ItemValue.group_oid + "[" + audit.as_text(ItemValue.row)
            + "]/" + ItemValue.item_oid)
    stored = (select(path.label("path"), ItemValue.value.label("value"),
                     Subject.subject_key.label("subject_key"))
              .select_from(ItemValue)
              .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
              .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
              .join(Subject, Subject.id == EventInstance.subject_id)
              .join(Study, Study.id == Subject.study_id))
    # Item values are never deleted: an audited value with no stored row was removed.
    return audit.path_mismatches(session, "item value", stored, ITEM_ACTIONS,
                                 require_row=True, require_stored=True)


def form_statuses(session: Session):
    stored = (select(_form_path().label("path"), FormInstance.status.label("value"),
                     Subject.subject_key.label("subject_key"))
              .select_from(FormInstance)
              .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
              .join(Subject, Subject.id == EventInstance.subject_id)
              .join(Study, Study.id == Subject.study_id))
    # A form is created in progress (a randomization writing its date item creates one
    # without a status row); every change of status is audited.
    return audit.path_mismatches(session, "form status", stored, ("form.status",),
                                 default="in_progress")


def subject_statuses(session: Session):
    stored = (select((_subject_path() + "/status").label("path"),
                     Subject.status.label("value"), Subject.subject_key.label("subject_key"))
              .select_from(Subject).join(Study, Study.id == Subject.study_id))
    return audit.path_mismatches(session, "subject status", stored,
                                 ("subject.status_changed",), default="screening")


def register() -> None:
    audit.register_reconciliation("item values", item_values)
    audit.register_reconciliation("form statuses", form_statuses)
    audit.register_reconciliation("subject statuses", subject_statuses)
