"""Queries: the state machine, threads, assignees, corrections linked in the audit trail,
automatic queries from warning checks, lists and counts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.review import queries
from ecrf.review.corrections import Correction, CorrectionRefused, answer_with_correction
from ecrf.review.models import Query, QueryMessage
from ecrf.review.queries import QueryError, QueryTarget
from ecrf.review.support import ReviewPermissionError
from tests.capture.capture_setup import actor_for
from tests.conftest import count_statements
from tests.review.review_setup import (
    form_of,
    load_review_study,
    save,
    start,
    subject_at,
    vitals,
)

WEIGHT = ("VS", 1, "WEIGHT")
SYSBP = ("VS", 1, "SYSBP")
ON_WEIGHT = QueryTarget("SCREEN", 1, "VITALS", "VS", 1, "WEIGHT")


@pytest.fixture
def study(app, make_study):
    return load_review_study(make_study)


@pytest.fixture
def subject(study):
    return subject_at(study, "S01-001")


@pytest.fixture
def crc_user(make_user, study):
    return make_user("crc1", role="coordinator", study="REVIEW", site="S01",
                     full_name="Clara Coord")


@pytest.fixture
def crc(crc_user):
    return actor_for(crc_user)


@pytest.fixture
def monitor(make_user, study):
    return actor_for(make_user("mon1", role="monitor", study="REVIEW", site="S01"), "monitor")


@pytest.fixture
def entered(crc, subject):
    start(crc, subject)
    assert save(crc, subject).saved
    return form_of(subject)


def statuses(query: Query) -> list[tuple]:
    return [(m.author, m.status_from, m.status_to) for m in query.messages]


def test_state_machine_open_answered_closed_reopened(crc, monitor, subject, entered):
    query = queries.raise_query(db.session, monitor, subject, "Is 72.5 kg right?",
                                target=ON_WEIGHT)
    assert (query.status, query.origin, query.level) == ("open", "manual", "item")
    queries.answer(db.session, crc, query, "Yes, checked against the source")
    assert query.status == "answered"
    queries.reopen(db.session, monitor, query, "The source says 75.2")
    assert query.status == "open"
    queries.answer(db.session, crc, query, "Corrected on paper, see below")
    queries.close(db.session, monitor, query, "Resolved")
    assert query.status == "closed"
    with pytest.raises(QueryError, match="closed"):
        queries.answer(db.session, crc, query, "one more thing")
    with pytest.raises(QueryError, match="already closed"):
        queries.close(db.session, monitor, query)
    queries.reopen(db.session, monitor, query, "Audit finding")
    db.session.commit()
    assert statuses(query) == [
        ("mon1", None, "open"), ("crc1", "open", "answered"), ("mon1", "answered", "open"),
        ("crc1", "open", "answered"), ("mon1", "answered", "closed"), ("mon1", "closed", "open")]
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.category == "review").order_by(AuditEvent.seq)))
    assert actions == ["query.raised", "query.answered", "query.reopened", "query.answered",
                       "query.closed", "query.reopened"]
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "query.raised"))
    assert row.path == "REVIEW/S01-001/SCREEN[1]/VITALS/VS[1]/WEIGHT"
    assert json.loads(row.details)["query_id"] == query.id


def test_roles_raise_answer_and_close_only_their_part(crc, monitor, subject, entered,
                                                      make_user):
    with pytest.raises(ReviewPermissionError, match="raise queries"):
        queries.raise_query(db.session, crc, subject, "Me?", target=ON_WEIGHT)
    query = queries.raise_query(db.session, monitor, subject, "Check", target=ON_WEIGHT)
    with pytest.raises(ReviewPermissionError, match="answer queries"):
        queries.answer(db.session, monitor, query, "I answer myself")
    with pytest.raises(ReviewPermissionError, match="close"):
        queries.close(db.session, crc, query)
    elsewhere = actor_for(make_user("crc2", role="coordinator", study="REVIEW", site="S02"),
                          site="S02")
    with pytest.raises(ReviewPermissionError, match="own sites"):
        queries.answer(db.session, elsewhere, query, "Not mine")
    dm = actor_for(make_user("dm1", role="data_manager", study="REVIEW"), "data_manager")
    queries.answer(db.session, crc, query, "OK")
    queries.close(db.session, dm, query, "Data manager closes")
    assert query.status == "closed"


def test_targets_are_checked_against_the_subjects_data(monitor, subject, entered):
    with pytest.raises(QueryError, match="no form LAB"):
        queries.raise_query(db.session, monitor, subject, "?",
                            target=QueryTarget("SCREEN", 1, "LAB"))
    with pytest.raises(QueryError, match="has no data yet"):
        queries.raise_query(db.session, monitor, subject, "?",
                            target=QueryTarget("SCREEN", 1, "DEMOG", "DM", 1, "SEX"))
    with pytest.raises(QueryError, match="no event NOPE"):
        queries.raise_query(db.session, monitor, subject, "?", target=QueryTarget("NOPE"))
    with pytest.raises(QueryError, match="Write the question"):
        queries.raise_query(db.session, monitor, subject, "  ", target=ON_WEIGHT)
    on_event = queries.raise_query(db.session, monitor, subject, "Week 4 visit date?",
                                   target=QueryTarget("WEEK4", 1))
    on_form = queries.raise_query(db.session, monitor, subject, "DEMOG missing",
                                  target=QueryTarget("SCREEN", 1, "DEMOG"))
    on_subject = queries.raise_query(db.session, monitor, subject, "Consent version?")
    assert (on_event.level, on_event.event_instance_id) == ("event", None)
    assert (on_form.level, on_form.form_instance_id) == ("form", None)
    assert on_subject.level == "subject"
    assert queries.query_path(on_subject) == "REVIEW/S01-001"


def test_assignee_must_answer_at_the_subjects_site(crc_user, monitor, subject, entered,
                                                   make_user):
    outsider = make_user("crc9", role="coordinator", study="REVIEW", site="S02")
    with pytest.raises(QueryError, match="cannot answer queries at site S01"):
        queries.raise_query(db.session, monitor, subject, "?", target=ON_WEIGHT,
                            assignee=outsider)
    query = queries.raise_query(db.session, monitor, subject, "?", target=ON_WEIGHT,
                                assignee=crc_user)
    assert query.assignee_id == crc_user.id
    queries.assign(db.session, monitor, query, None)
    assert query.assignee_id is None
    assert [u.username for u in queries.site_answerers(db.session, subject.study,
                                                       subject.site_id)] == ["crc1"]


@pytest.mark.usefixtures("wired_capture")
def test_a_correction_in_reply_is_linked_in_the_audit_trail(crc, monitor, subject, entered):
    query = queries.raise_query(db.session, monitor, subject, "Source says 75.2",
                                target=ON_WEIGHT)
    db.session.commit()
    answer_with_correction(db.session, crc, query, "Transcription error",
                           Correction("75.2", "transcription error"))
    db.session.commit()
    change = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "item.changed"))
    assert (change.old_value, change.new_value, change.reason) == (
        "72.5", "75.2", "transcription error")
    link = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "query.correction_linked"))
    details = json.loads(link.details)
    assert details["query_id"] == query.id and details["audit_seq"] == change.seq
    linked = [m for m in query.messages if m.audit_seq is not None]
    assert len(linked) == 1 and linked[0].audit_seq == change.seq
    assert "72.5 -> 75.2" in linked[0].text
    assert query.status == "answered"


def test_a_correction_on_the_entry_screen_answers_the_open_query(crc, monitor, subject,
                                                                 entered):
    query = queries.raise_query(db.session, monitor, subject, "Check weight",
                                target=ON_WEIGHT)
    db.session.commit()
    save(crc, subject, values=vitals(WEIGHT="70.0"), reasons={WEIGHT: "per query"})
    db.session.refresh(query)
    assert query.status == "answered"
    assert query.messages[-1].audit_seq is not None


@pytest.mark.usefixtures("wired_capture")
def test_refused_corrections_keep_nothing(crc, monitor, subject, entered):
    query = queries.raise_query(db.session, monitor, subject, "?", target=ON_WEIGHT)
    db.session.commit()
    with pytest.raises(CorrectionRefused) as caught:
        answer_with_correction(db.session, crc, query, "fix", Correction("9999", "typo"))
    db.session.rollback()
    assert caught.value.problems
    with pytest.raises(QueryError, match="already saved"):
        answer_with_correction(db.session, crc, query, "fix", Correction("72.5", "x"))
    db.session.rollback()
    db.session.refresh(query)
    assert query.status == "open" and len(query.messages) == 1


def test_warning_raises_an_automatic_query_that_closes_when_corrected(crc, monitor, subject):
    start(crc, subject)
    save(crc, subject, values=vitals(SYSBP="190"))
    auto = db.session.scalar(select(Query).where(Query.origin == "automatic"))
    assert auto is not None and auto.status == "open"
    assert (auto.check_oid, auto.item_oid) == ("VS_SYSBP_HIGH", "SYSBP")
    assert auto.messages[0].author == "system"
    assert "180 mmHg or more" in auto.messages[0].text

    save(crc, subject, values=vitals(SYSBP="190", NOTES="repeat measure"))
    assert db.session.query(Query).count() == 1, "no duplicate for the same failing check"

    assert save(crc, subject, values=vitals(SYSBP="140", NOTES="repeat measure"),
                reasons={SYSBP: "misread"}).saved
    db.session.refresh(auto)
    assert auto.status == "closed"
    assert auto.messages[-1].text.startswith("Closed automatically")
    assert any(m.audit_seq for m in auto.messages), "the correction is linked to it"


def test_an_acknowledged_warning_is_answered_for_the_monitor_to_review(crc, monitor,
                                                                       subject):
    start(crc, subject)
    result = save(crc, subject, values=vitals(SYSBP="190"), complete=True,
                  acks={("VS_SYSBP_HIGH", 0): "Confirmed, patient anxious"})
    assert result.status == "complete"
    auto = db.session.scalar(select(Query).where(Query.origin == "automatic"))
    assert auto.status == "answered"
    assert auto.messages[-1].text == "Confirmed, patient anxious"
    queries.close(db.session, monitor, auto, "Accepted")
    db.session.commit()
    save(crc, subject, values=vitals(SYSBP="190", NOTES="calm"), complete=True)
    assert db.session.query(Query).count() == 1, "a closed query is not raised again"
    save(crc, subject, values=vitals(SYSBP="200", NOTES="calm"), reasons={SYSBP: "remeasured"},
         acks={("VS_SYSBP_HIGH", 0): "Confirmed again"}, complete=True)
    assert db.session.query(Query).count() == 2, "a changed value raises it again"


def test_soft_range_warnings_raise_automatic_queries_too(crc, subject):
    start(crc, subject)
    save(crc, subject, values=vitals(WEIGHT="160.0"))
    auto = db.session.scalar(select(Query).where(Query.origin == "automatic"))
    assert auto.check_oid == "WEIGHT.soft_range" and auto.item_oid == "WEIGHT"


def test_lists_filter_by_site_status_age_and_assignee(crc_user, crc, monitor, study,
                                                       subject, entered, make_user):
    lead = make_user("lead", role="monitor", study="REVIEW")
    other = subject_at(study, "S02-001", "S02")
    first = queries.raise_query(db.session, monitor, subject, "One", target=ON_WEIGHT,
                                assignee=crc_user)
    second = queries.raise_query(db.session, actor_for(lead, "monitor", None), other, "Two")
    queries.answer(db.session, crc, first, "done")
    first.created_at = first.created_at - dt.timedelta(days=20)
    db.session.commit()
    everything = queries.list_queries(db.session, lead, study)
    assert [r.query.id for r in everything] == [second.id, first.id]
    assert everything[1].question == "One" and everything[1].age_days == 20
    assert everything[1].assignee_name == "Clara Coord"
    assert [r.query.id for r in queries.list_queries(db.session, lead, study, site="S02")] \
        == [second.id]
    assert [r.query.id for r in queries.list_queries(db.session, lead, study,
                                                     status="answered")] == [first.id]
    assert [r.query.id for r in queries.list_queries(db.session, lead, study,
                                                     min_age_days=14)] == [first.id]
    assert [r.query.id for r in queries.list_queries(db.session, lead, study,
                                                     assignee="none")] == [second.id]
    assert [r.query.id for r in queries.list_queries(db.session, lead, study,
                                                     assignee=crc_user.id)] == [first.id]
    site_user = db.session.get(User, crc.user_id)
    assert [r.query.id for r in queries.list_queries(db.session, site_user, study)] == [
        first.id], "site staff see their sites only"


def test_query_counts_use_one_statement(crc, monitor, study, subject, entered):
    others = [subject_at(study, f"S01-10{n}") for n in range(5)]
    for target in [subject, *others]:
        queries.raise_query(db.session, monitor, target, "Open one")
    answered = queries.raise_query(db.session, monitor, subject, "Answered one")
    queries.answer(db.session, crc, answered, "Here")
    closed = queries.raise_query(db.session, monitor, others[0], "Closed one")
    queries.close(db.session, monitor, closed, "fine")
    db.session.commit()
    ids = [subject.id, *[o.id for o in others]]
    assert study.id
    with count_statements() as counted:
        counts = queries.query_counts(db.session, study, ids)
    assert counted.n == 1
    assert counts[subject.id] == (1, 1, 0)
    assert counts[others[0].id] == (1, 0, 0)
    assert queries.query_counts(db.session, study, []) == {}


def test_messages_are_kept_in_order_with_authors(crc, monitor, subject, entered):
    query = queries.raise_query(db.session, monitor, subject, "Q", target=ON_WEIGHT)
    queries.comment(db.session, monitor, query, "Also check the date")
    queries.comment(db.session, crc, query, "Will do")
    db.session.commit()
    texts = list(db.session.scalars(select(QueryMessage.text).where(
        QueryMessage.query_id == query.id).order_by(QueryMessage.id)))
    assert texts == ["Q", "Also check the date", "Will do"]
    assert query.status == "open"


def test_cli_lists_queries_with_a_status_filter(runner, crc, monitor, subject, entered):
    first = queries.raise_query(db.session, monitor, subject, "Weight\nplausible?",
                                target=ON_WEIGHT)
    second = queries.raise_query(db.session, monitor, subject, "Consent version?")
    queries.answer(db.session, crc, second, "v2")
    db.session.commit()
    result = runner.invoke(args=["queries", "list", "REVIEW"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("id\tsubject\tsite\tstatus")
    assert f"{first.id}\tS01-001\tS01\topen\tmanual\t0\t" \
           "REVIEW/S01-001/SCREEN[1]/VITALS/VS[1]/WEIGHT\tWeight plausible?" in lines
    result = runner.invoke(args=["queries", "list", "REVIEW", "--status", "answered"])
    assert [line.split("\t")[0] for line in result.stdout.splitlines()[1:]] == [str(second.id)]
    result = runner.invoke(args=["queries", "list", "REVIEW", "--status", "bogus"])
    assert result.exit_code == 2
