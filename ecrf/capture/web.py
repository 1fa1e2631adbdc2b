"""What the views of a subject share: the site-scoped lookup, the actor of a change and
whether the user may act at the subject's site."""

from __future__ import annotations

import dataclasses

from flask import abort, g
from flask_login import current_user

from ecrf import accounts
from ecrf.accounts import request_actor
from ecrf.capture import subjects
from ecrf.capture.models import Subject
from ecrf.core import db
from ecrf.core.audit import Actor


def subject_or_404(subject_key: str, action: str = "subjects.view") -> Subject:
    """The study's subject at a site where the user may do ``action``; 404 otherwise, so a
    subject of another site is indistinguishable from one that does not exist."""
    found = subjects.visible_subject(db.session, current_user, g.study, subject_key, action)
    if found is None:
        abort(404)
    return found


def actor_for(action: str, subject: Subject | None = None) -> Actor:
    """The signed-in user acting in ``action``'s role, at the subject's site if given."""
    actor = request_actor(action, g.study)
    return dataclasses.replace(actor, site_code=subject.site.code) if subject else actor


def may(action: str, subject: Subject) -> bool:
    """Whether the user may do ``action`` at the subject's site (controls shown or not)."""
    if not accounts.can(current_user, action, g.study):
        return False
    allowed = accounts.site_ids_for(current_user, action, g.study)
    return allowed is None or subject.site_id in allowed
