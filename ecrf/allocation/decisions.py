"""Signed dose-escalation decisions on the current proposal.

A data manager or investigator re-enters their password as an electronic signature
(21 CFR 11.200, meaning "approval"). Decisions may be as cautious as the person wishes
(stay, de-escalate, stop) but never bolder than the rule: escalating needs an escalate
proposal, declaring the MTD a declare-MTD proposal.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy.orm import Session

from ecrf import accounts
from ecrf.accounts import User, verify_password
from ecrf.allocation.escalation import Board, EscalationServiceError, board, lock_study
from ecrf.allocation.models import EscalationDecision
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.domain.escalation import Action
from ecrf.studies import Study

SIGNATURE_MEANING = "approval"
DECISIONS = ("escalate", "stay", "de-escalate", "declare_mtd", "stop")


class SignatureError(EscalationServiceError):
    """The password did not match. The failure was recorded: the caller must commit."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


def _counts_snapshot(state: Board) -> str:
    return json.dumps([{"level": r.level, "treated": r.state.treated,
                        "evaluable": r.state.evaluable, "dlts": r.state.dlts,
                        "replacements": r.replacements} for r in state.levels])


def _next_level(state: Board, action: str) -> tuple[int | None, int | None]:
    """(next level, MTD) of an allowed action."""
    current, proposal = state.current_level, state.proposal
    numbers = [r.level for r in state.levels]
    if action == "escalate":
        return proposal.level, None
    if action == "stay":
        return current, None
    if action == "de-escalate":
        if proposal.action is Action.DE_ESCALATE:
            return proposal.level, None
        return numbers[numbers.index(current) - 1], None
    if action == "declare_mtd":
        return None, proposal.mtd
    return None, None


def _refusal(state: Board, action: str) -> str:
    proposal = state.proposal
    if action == "declare_mtd":
        return f"the rule does not allow declaring the MTD now: {proposal.reason}"
    if action == "escalate":
        return f"the rule does not allow escalating now: {proposal.reason}"
    if action == "stay" and proposal.action is Action.ENROL:
        return f"the current cohort is not complete: {proposal.reason}"
    if action == "stay":
        return f"staying at level {state.current_level} is not allowed: {proposal.reason}"
    if proposal.action is Action.STOP_NO_MTD:
        return f"the rule says stop: {proposal.reason}"
    return f"level {state.current_level} is the lowest level: there is no level below"


def record_decision(session: Session, actor: Actor, study: Study, *, action: str,
                    reason: str, password: str, lockout_threshold: int, lockout_minutes: int,
                    today: dt.date | None = None) -> EscalationDecision:
    """Record a signed decision on the current proposal; flushes.

    The password is re-entered as an electronic signature (21 CFR 11.200). A wrong one is
    counted toward lockout and audited, then SignatureError is raised: commit it.
    """
    audit.bind_actor(session, actor)
    if action not in DECISIONS:
        raise EscalationServiceError(f"unknown decision {action!r}: use one of "
                                     f"{', '.join(DECISIONS)}")
    reason = (reason or "").strip()
    if not reason:
        raise EscalationServiceError("a reason is required for an escalation decision")
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None or not accounts.can(user, "escalation.decide", study):
        raise EscalationServiceError("only a data manager or an investigator of the study "
                                     "can decide on dose escalation")
    now = utcnow()
    if accounts.signing_locked_out(session, user, now):
        raise SignatureError("your account is locked after repeated wrong passwords",
                             locked=True)
    if not verify_password(user.password_hash, password or ""):
        locked = accounts.failed_signature(session, user, actor, threshold=lockout_threshold,
                                           minutes=lockout_minutes, now=now)
        raise SignatureError("the password is not correct: the decision was not recorded",
                             locked=locked)
    user.failed_logins = 0
    lock_study(session, study)
    state = board(session, study, today=today)
    if state.current_level is None:
        closed = state.closed_by
        raise EscalationServiceError(f"the escalation is closed: {closed.action.replace('_', ' ')} "
                                     f"on {closed.decided_at:%Y-%m-%d} by {closed.signer_name}")
    if action not in state.allowed:
        raise EscalationServiceError(_refusal(state, action))
    next_level, mtd = _next_level(state, action)
    decision = EscalationDecision(
        study_id=study.id, level=state.current_level, action=action, next_level=next_level,
        mtd_level=mtd, proposed_action=state.proposal.action.value,
        proposal=state.proposal.reason, counts=_counts_snapshot(state), reason=reason,
        decided_by_id=user.id, decided_by=user.username, signer_name=user.full_name,
        decided_role=actor.role, decided_at=now, signature_meaning=SIGNATURE_MEANING)
    audit.record(session, actor, "escalation.decided", category="allocation",
                 study_oid=study.oid, path=f"{study.oid}/dose_escalation",
                 old_value=state.current_level, new_value=next_level, reason=reason,
                 details={"action": action, "proposed": state.proposal.action.value,
                          "proposal": state.proposal.reason, "mtd": mtd,
                          "signed_by": user.full_name, "meaning": SIGNATURE_MEANING,
                          "counts": json.loads(decision.counts)})
    session.add(decision)
    session.flush()
    return decision
