"""Each stored vocabulary is written once, as a StrEnum: the database's CHECK constraints
(made by the migrations) allow exactly its values, and the screens label every value."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from ecrf.allocation import ListKind, ListSource
from ecrf.capture import (
    EVENT_STATE_LABELS,
    FORM_STATUS_LABELS,
    NOT_STARTED,
    SUBJECT_LABELS,
    VISIT_LABELS,
    FormStatus,
    SubjectStatus,
)
from ecrf.core import db
from ecrf.domain.schedule import EventState, EventStatus
from ecrf.jobs import JobStatus
from ecrf.review import (
    ORIGIN_LABELS,
    QUERY_STATUS_LABELS,
    SIGNATURE_SCOPE_LABELS,
    LockScope,
    QueryOrigin,
    QueryStatus,
    SignatureScope,
)
from ecrf.safety import AssessmentStatus, AwarenessSource, NotificationChannel, PromptStatus
from ecrf.studies import STUDY_STATUS_LABELS, StudyStatus

CHECKED = [
    ("subject", "status", SubjectStatus),
    ("event_instance", "state", EventState),
    ("form_instance", "status", FormStatus),
    ("data_query", "status", QueryStatus),
    ("data_query", "origin", QueryOrigin),
    ("signature", "scope", SignatureScope),
    ("data_lock", "scope", LockScope),
    ("sae_report", "awareness_source", AwarenessSource),
    ("ae_grade_prompt", "status", PromptStatus),
    ("dlt_assessment", "status", AssessmentStatus),
    ("notification_log", "channel", NotificationChannel),
    ("study", "status", StudyStatus),
    ("randomization_list", "kind", ListKind),
    ("randomization_list", "source", ListSource),
    ("job", "status", JobStatus),
]


@pytest.mark.parametrize(("table", "column", "vocabulary"), CHECKED,
                         ids=[f"{t}.{c}" for t, c, _ in CHECKED])
def test_the_migrated_database_allows_exactly_the_vocabulary(app, table, column, vocabulary):
    checks = {c["name"]: c["sqltext"] for c in sa.inspect(db.engine).get_check_constraints(table)}
    # SQLite keeps "status IN ('a', 'b')"; PostgreSQL answers "status = ANY (ARRAY['a', ...])".
    allowed = set(re.findall(r"'([^']*)'", checks[f"ck_{table}_{column}"]))
    assert allowed == {v.value for v in vocabulary}


@pytest.mark.parametrize(("labels", "values"), [
    (SUBJECT_LABELS, set(SubjectStatus)),
    (VISIT_LABELS, set(EventStatus)),
    (EVENT_STATE_LABELS, set(EventState)),
    (FORM_STATUS_LABELS, {NOT_STARTED, *FormStatus}),
    (QUERY_STATUS_LABELS, set(QueryStatus)),
    (ORIGIN_LABELS, set(QueryOrigin)),
    (SIGNATURE_SCOPE_LABELS, set(SignatureScope)),
    (STUDY_STATUS_LABELS, set(StudyStatus)),
], ids=["subject", "visit", "event", "form", "query", "origin", "signature", "study"])
def test_every_value_has_a_label(labels, values):
    assert set(labels) == values
    assert all(str(label) for label in labels.values())
