"""Dose escalation through the service: cohorts from recorded data, proposals, signed
decisions, pacing of enrolment and the MTD rule."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User
from ecrf.allocation import decisions as escalation_decisions
from ecrf.allocation import escalation
from ecrf.allocation.models import EscalationDecision
from ecrf.capture.models import Subject
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.domain.escalation import Action
from tests.allocation.test_randomization import ACTOR, add_subject, load, record, site_today
from tests.conftest import PASSWORD

LOCK = {"lockout_threshold": 3, "lockout_minutes": 15}


@pytest.fixture
def study33(app, make_site):
    make_site("S01")
    return load("allocation_3p3")


@pytest.fixture
def boin_study(app, make_site):
    make_site("S01")
    return load("allocation_boin")


@pytest.fixture
def decider(make_user):
    def make(study: str = "ALLOC33", role: str = "data_manager", username: str = "dm.esc"):
        user = make_user(username, role=role, study=study,
                         site="S01" if role == "investigator" else None)
        return user, Actor(user.id, user.username, role=role)

    return make


def enrol(study, key: str) -> Subject:
    subject = add_subject(study, key)
    level = escalation.assign_dose_level(db.session, ACTOR, subject)
    db.session.commit()
    assert subject.dose_level == level
    return subject


def treat(subject: Subject, *, days_ago: int = 20, dlt: str | None = "N",
          full_dose: str | None = "Y", evaluable: str | None = None) -> None:
    record(subject, "INFUSION", "INF", {"INFDT": site_today() - dt.timedelta(days=days_ago)})
    values = {k: v for k, v in (("DLTYN", dlt), ("DLTFULL", full_dose),
                                ("DLTEVAL", evaluable)) if v is not None}
    if values:
        record(subject, "DLTWIN", "DLT", values)
    db.session.commit()


def cohort(study, prefix: str, dlts: int = 0, size: int = 3) -> list[Subject]:
    subjects = [enrol(study, f"{prefix}-{i}") for i in range(size)]
    for i, subject in enumerate(subjects):
        treat(subject, dlt="Y" if i < dlts else "N")
    return subjects


def decide(study, actor, action, reason="safety review", password=PASSWORD):
    decision = escalation_decisions.record_decision(db.session, actor, study, action=action,
                                          reason=reason, password=password, **LOCK)
    db.session.commit()
    return decision


def test_zero_of_three_proposes_escalation_and_a_signed_decision_opens_level_2(study33,
                                                                               decider):
    user, actor = decider()
    assert escalation.current_open_level(db.session, study33) == 1
    subjects = cohort(study33, "L1")
    with pytest.raises(escalation.EscalationServiceError, match="level 1 is full"):
        escalation.assign_dose_level(db.session, ACTOR, add_subject(study33, "L1-extra"))
    db.session.rollback()
    board = escalation.board(db.session, study33)
    level1 = board.level(1)
    assert (level1.state.treated, level1.state.evaluable, level1.state.dlts) == (3, 3, 0)
    assert [s.subject_key for s in level1.subjects] == [s.subject_key for s in subjects]
    assert board.proposal.action is Action.ESCALATE and board.proposal.level == 2
    assert "escalate to level 2" in board.proposal.reason
    assert board.proposed_decision == "escalate"
    decision = decide(study33, actor, "escalate", reason="0/3 DLT, SRC agrees")
    assert decision.next_level == 2 and decision.level == 1
    assert decision.signer_name == user.full_name and decision.signature_meaning == "approval"
    assert decision.proposed_action == "escalate" and "0 DLTs" in decision.proposal
    assert escalation.current_open_level(db.session, study33) == 2
    assert enrol(study33, "L2-0").dose_level == 2
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "escalation.decided"))
    assert row.reason == "0/3 DLT, SRC agrees" and row.user_id == user.id
    assert '"meaning": "approval"' in row.details


def test_one_of_three_proposes_expansion_and_escalation_is_refused(study33, decider):
    _, actor = decider()
    cohort(study33, "L1", dlts=1)
    board = escalation.board(db.session, study33)
    assert board.proposal.action is Action.EXPAND and board.allowed == ["stay", "stop"]
    with pytest.raises(escalation.EscalationServiceError,
                       match="does not allow escalating now: 1 DLT"):
        decide(study33, actor, "escalate")
    db.session.rollback()
    decide(study33, actor, "stay", reason="expand level 1 to six")
    board = escalation.board(db.session, study33)
    assert board.current_level == 1 and board.level(1).capacity == 6
    cohort(study33, "L1b")
    board = escalation.board(db.session, study33)
    assert (board.level(1).state.evaluable, board.level(1).state.dlts) == (6, 1)
    assert board.proposal.action is Action.ESCALATE


def test_subjects_in_their_window_are_pending_and_non_evaluable_ones_are_replaced(study33):
    a, b, c = (enrol(study33, f"W-{i}") for i in range(3))
    treat(a, days_ago=5, dlt=None, full_dose="Y")  # inside the 14-day window
    treat(b, days_ago=20, dlt="N", full_dose="N")  # partial dose: replace
    treat(c, days_ago=20, dlt="N", full_dose="Y", evaluable="N")  # assessed not evaluable
    board = escalation.board(db.session, study33)
    level = board.level(1)
    states = {s.subject_key: s.state for s in level.subjects}
    assert states == {"W-0": "in_window", "W-1": "not_evaluable", "W-2": "not_evaluable"}
    assert (level.state.treated, level.state.evaluable, level.replacements) == (3, 0, 2)
    assert level.pending == 1 and level.capacity == 5
    assert board.proposal.action is Action.ENROL
    assert "replace non-evaluable" in board.proposal.reason
    assert enrol(study33, "W-3").dose_level == 1  # a replacement place is open
    window_end = next(s for s in level.subjects if s.subject_key == "W-0").window_end
    assert window_end == site_today() - dt.timedelta(days=5) + dt.timedelta(days=14)


def test_the_last_day_of_the_window_counts_once_assessed_evaluable(study33):
    assessed, waiting = enrol(study33, "T-0"), enrol(study33, "T-1")
    treat(assessed, days_ago=14, evaluable="Y")
    treat(waiting, days_ago=14)
    states = {s.subject_key: s.state for s in escalation.board(db.session, study33).level(1)
              .subjects}
    assert states == {"T-0": "evaluable", "T-1": "in_window"}


def test_a_dlt_counts_even_inside_the_window(study33):
    subject = enrol(study33, "D-0")
    treat(subject, days_ago=2, dlt="Y", full_dose=None)
    level = escalation.board(db.session, study33).level(1)
    assert (level.state.evaluable, level.state.dlts) == (1, 1)


def test_wrong_password_is_counted_audited_and_locks_at_the_threshold(study33, decider):
    user, actor = decider()
    cohort(study33, "L1")
    for attempt in (1, 2):
        with pytest.raises(escalation_decisions.SignatureError) as caught:
            decide(study33, actor, "escalate", password="not-my-password")
        db.session.commit()  # as the view does: the failure must persist
        assert not caught.value.locked
        assert db.session.get(User, user.id).failed_logins == attempt
    with pytest.raises(escalation_decisions.SignatureError) as caught:
        decide(study33, actor, "escalate", password="still-wrong")
    db.session.commit()
    assert caught.value.locked
    locked = db.session.get(User, user.id)
    assert locked.locked_until is not None
    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.user_id == user.id).order_by(AuditEvent.seq)).all()
    assert actions.count("signature.failed") == 3 and "account.locked" in actions
    with pytest.raises(escalation_decisions.SignatureError, match="locked"):
        decide(study33, actor, "escalate")
    db.session.rollback()
    assert db.session.scalar(select(EscalationDecision)) is None


def test_the_mtd_is_declared_only_when_the_rule_allows(study33, decider):
    _, actor = decider()
    cohort(study33, "L1")
    with pytest.raises(escalation.EscalationServiceError,
                       match="does not allow declaring the MTD now: 0 DLTs"):
        decide(study33, actor, "declare_mtd")
    db.session.rollback()
    decide(study33, actor, "stay")  # cautious: six at level 1 before going up
    cohort(study33, "L1b", dlts=1)
    decide(study33, actor, "escalate")
    cohort(study33, "L2", dlts=2)
    board = escalation.board(db.session, study33)
    assert board.proposal.action is Action.DECLARE_MTD and board.proposal.mtd == 1
    assert "declare_mtd" in board.allowed and "escalate" not in board.allowed
    decision = decide(study33, actor, "declare_mtd", reason="2/3 DLT at level 2")
    assert decision.mtd_level == 1 and decision.next_level is None
    board = escalation.board(db.session, study33)
    assert board.current_level is None and board.mtd == 1 and board.proposal is None
    assert escalation.current_open_level(db.session, study33) is None
    with pytest.raises(escalation.EscalationServiceError, match="closed"):
        escalation.assign_dose_level(db.session, ACTOR, add_subject(study33, "late"))
    db.session.rollback()
    with pytest.raises(escalation.EscalationServiceError, match="the escalation is closed"):
        decide(study33, actor, "stop")


def test_level_one_toxic_stops_without_mtd_and_cannot_stay(study33, decider):
    _, actor = decider()
    cohort(study33, "L1", dlts=2)
    board = escalation.board(db.session, study33)
    assert board.proposal.action is Action.STOP_NO_MTD and board.allowed == ["stop"]
    with pytest.raises(escalation.EscalationServiceError, match="not allowed"):
        decide(study33, actor, "stay")
    db.session.rollback()
    with pytest.raises(escalation.EscalationServiceError, match="the rule says stop"):
        decide(study33, actor, "de-escalate")
    db.session.rollback()
    assert decide(study33, actor, "stop").next_level is None


def test_decisions_need_a_reason_a_known_action_and_the_decide_permission(study33, decider,
                                                                          make_user):
    _, actor = decider()
    cohort(study33, "L1")
    with pytest.raises(escalation.EscalationServiceError, match="reason is required"):
        decide(study33, actor, "escalate", reason=" ")
    with pytest.raises(escalation.EscalationServiceError, match="unknown decision"):
        decide(study33, actor, "jump")
    monitor = make_user("mon", role="monitor", study="ALLOC33")
    with pytest.raises(escalation.EscalationServiceError, match="data manager or an investi"):
        decide(study33, Actor(monitor.id, monitor.username, role="monitor"), "escalate")
    db.session.rollback()
    _, investigator = decider(role="investigator", username="inv.esc")
    assert decide(study33, investigator, "escalate").decided_role == "investigator"


def test_boin_uses_the_target_rate_boundaries(boin_study, decider):
    _, actor = decider(study="ALLOCBN")
    cohort(boin_study, "B1")
    board = escalation.board(db.session, boin_study)
    assert board.design == "boin" and board.target == "0.3"
    assert round(board.boundaries[0], 4) == 0.2365 and round(board.boundaries[1], 4) == 0.3585
    assert board.proposal.action is Action.ESCALATE and "lambda_e 0.2365" in board.proposal.reason
    decide(boin_study, actor, "escalate")
    cohort(boin_study, "B2", dlts=1)
    board = escalation.board(db.session, boin_study)
    assert board.proposal.action is Action.STAY and "between lambda_e" in board.proposal.reason
    decide(boin_study, actor, "stay")
    assert escalation.board(db.session, boin_study).level(2).capacity == 6
    cohort(boin_study, "B2b", dlts=2)
    board = escalation.board(db.session, boin_study)  # 3/6 = 0.5 >= lambda_d
    assert board.proposal.action is Action.DE_ESCALATE and board.proposal.level == 1


def test_boin_stops_at_the_maximum_sample_size_and_selects_the_mtd(boin_study, decider):
    _, actor = decider(study="ALLOCBN")
    cohort(boin_study, "B1")
    decide(boin_study, actor, "escalate")
    cohort(boin_study, "B2")
    decide(boin_study, actor, "escalate")
    cohort(boin_study, "B3", dlts=1)
    decide(boin_study, actor, "stay")
    cohort(boin_study, "B3b", dlts=1)  # 12 treated: the maximum
    board = escalation.board(db.session, boin_study)
    assert board.proposal.action is Action.DECLARE_MTD and board.proposal.mtd == 3
    assert "maximum of 12" in board.proposal.reason
    with pytest.raises(escalation.EscalationServiceError, match="maximum of 12"):
        escalation.assign_dose_level(db.session, ACTOR, add_subject(boin_study, "B-late"))


def test_a_study_without_escalation_or_dlt_item_is_refused_by_name(app, make_site):
    make_site("S01")
    study = load("allocation_randomized")
    with pytest.raises(escalation.EscalationServiceError, match="declares no dose escalation"):
        escalation.board(db.session, study)
