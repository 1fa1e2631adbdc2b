"""What review's operations share: errors, permission checks at a subject's site, audit
rows of review actions, and the live values of forms read in one statement."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf import accounts
from ecrf.accounts import User
from ecrf.capture import FormInstance, GroupRow, ItemValue, Subject
from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinition
from ecrf.crf.validation import Key
from ecrf.crf.values import N_, Message
from ecrf.studies import Study, definition_for

REVIEW = "review"
MAX_TEXT = 4000

# Words for the actions named in permission refusals.
ACTION_WORDS = {
    "queries.raise": N_("raise queries"),
    "queries.answer": N_("answer queries"),
    "queries.close": N_("close or reopen queries"),
    "sdv.perform": N_("verify source data"),
    "data.sign": N_("sign data"),
    "data.lock": N_("lock or unlock data"),
    "subjects.view": N_("see this subject"),
}


class ReviewError(ValueError):
    """A review request that cannot be carried out; ``message`` says why (translatable)."""

    def __init__(self, template: str, **params) -> None:
        self.message = Message(template, params)
        super().__init__(str(self.message))


class ReviewPermissionError(ReviewError):
    """The user's roles do not allow this action on this subject (role or site)."""


def user_of(session: Session, actor: Actor) -> User | None:
    return session.get(User, actor.user_id) if actor.user_id is not None else None


def check_allowed(session: Session, actor: Actor, action: str, study: Study,
                  site_id: int | None) -> User | None:
    """The acting user, once their grants allow ``action`` at ``site_id`` of ``study``.

    An actor without a user id is the operator at the command line (or the system
    reacting to a save), who acts with the server's authority.
    """
    if actor.user_id is None:
        return None
    user = user_of(session, actor)
    what = ACTION_WORDS.get(action, action)
    if user is None or not user.active or not accounts.can(user, action, study):
        raise ReviewPermissionError(N_("Your roles in %(study)s do not allow you to %(what)s."),
                                    study=study.oid, what=what)
    allowed = accounts.site_ids_for(user, action, study)
    if site_id is not None and allowed is not None and site_id not in allowed:
        raise ReviewPermissionError(N_("You may %(what)s only at your own sites."), what=what)
    return user


def clean_text(text: str | None, limit: int = MAX_TEXT) -> str:
    """``text`` trimmed; refused when longer than ``limit`` (never cut)."""
    text = (text or "").strip()
    if len(text) > limit:
        raise ReviewError(N_("The text is %(n)s characters long; at most %(limit)s are "
                             "allowed."), n=len(text), limit=limit)
    return text


def subject_path(subject: Subject) -> str:
    return f"{subject.study.oid}/{subject.subject_key}"


def record_review(session: Session, actor: Actor, action: str, subject: Subject,
                  path: str | None, *, old=None, new=None, reason: str | None = None,
                  details: dict | None = None) -> None:
    audit.record(session, actor, action, category=REVIEW, study_oid=subject.study.oid,
                 site_code=subject.site.code, subject_key=subject.subject_key,
                 path=path or subject_path(subject), old_value=old, new_value=new,
                 reason=reason, study_version=subject.study_version.label, details=details)


def definition_of(form_instance: FormInstance) -> StudyDefinition:
    return definition_for(form_instance.study_version)


def live_values(session: Session, form_instance_ids: Iterable[int]
                ) -> dict[int, dict[Key, str | None]]:
    """Stored values of each form, without those of removed rows, in one statement."""
    ids = sorted(set(form_instance_ids))
    found: dict[int, dict[Key, str | None]] = defaultdict(dict)
    if not ids:
        return found
    stmt = (select(ItemValue.form_instance_id, ItemValue.group_oid, ItemValue.row,
                   ItemValue.item_oid, ItemValue.value)
            .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                      GroupRow.group_oid == ItemValue.group_oid,
                                      GroupRow.row == ItemValue.row))
            .where(ItemValue.form_instance_id.in_(ids), GroupRow.removed_at.is_(None)))
    for fid, group, row, item, value in session.execute(stmt):
        found[fid][(group, row, item)] = value
    return found


def boolean_parameter(definition: StudyDefinition, name: str, default: bool) -> bool:
    value = definition.parameter_values().get(name)
    return default if value is None else bool(value)
