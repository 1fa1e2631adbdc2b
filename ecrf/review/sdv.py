"""Source data verification at item level.

A monitor verifies single items or a whole form at once. Which items need SDV is the
study's choice: the text parameter ``sdv_scope`` is "all" (default) or "critical" (only
items marked ``critical: true`` in the CRFs); calculated items never need it, they are
derived. A verification is an ``SdvMark`` holding the value seen; any later change of
the value resets the mark (``handlers``), visibly on screen and in the audit trail
(``sdv.reset`` on the item's path, next to the change itself).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import (
    CTE,
    and_,
    case,
    distinct,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select, Subquery

from ecrf import accounts
from ecrf.accounts import User
from ecrf.capture import (
    FormInstance,
    GroupRow,
    ItemValue,
    Subject,
    event_instance,
    form_path,
    item_path,
)
from ecrf.core import audit, literal_table, utcnow
from ecrf.core.audit import Actor, AuditEvent
from ecrf.crf import ItemType, StudyDefinition
from ecrf.crf.validation import Key
from ecrf.crf.values import N_
from ecrf.review import locks
from ecrf.review.models import SdvMark, SdvSubjectCount
from ecrf.review.support import (
    ReviewError,
    check_allowed,
    clean_text,
    definition_of,
    live_values,
    record_review,
)
from ecrf.studies import Site, Study, StudyVersion, definition_for

__all__ = [
    "SCOPES", "FormSdv", "SdvError", "SdvProgress", "SubjectSdv", "form_status", "forms_status",
    "kept_counts", "kept_written", "scope_table", "items_in_scope", "needs_sdv", "progress",
    "subject_counts", "reset_for_change", "sdv_scope", "site_progress",
    "unverify",
    "verify_form", "verify_items",
]

SCOPES = ("all", "critical")

log = logging.getLogger(__name__)

# session.info: subjects whose kept counts this session rewrote (a view commits them).
KEPT_WRITTEN = "ecrf.sdv_kept_written"


class SdvError(ReviewError):
    """An SDV request that cannot be carried out."""


def sdv_scope(definition: StudyDefinition) -> str:
    """The study's choice of items needing SDV: "all" unless the parameter says so."""
    value = definition.parameter_values().get("sdv_scope")
    value = str(value).strip().lower() if value is not None else "all"
    return value if value in SCOPES else "all"


def items_in_scope(definition: StudyDefinition, form_oid: str) -> frozenset[str]:
    """OIDs of the form's items that need SDV."""
    critical_only = sdv_scope(definition) == "critical"
    return frozenset(i.oid for i in definition.form(form_oid).items
                     if i.type is not ItemType.CALCULATED and (i.critical or not critical_only))


def needs_sdv(values: Mapping[Key, str | None], in_scope: frozenset[str]) -> dict[Key, str]:
    """The entered values (blank ones have nothing to verify) of items in scope."""
    return {k: v for k, v in values.items() if v is not None and k[2] in in_scope}


@dataclass
class FormSdv:
    """SDV of one form: what needs it, what is verified, what was reset."""

    scope: str
    needed: dict[Key, str]
    marks: dict[Key, SdvMark]  # current marks, including items no longer in scope
    resets: dict[Key, SdvMark]  # the latest reset mark of items not verified now
    form_mark: SdvMark | None
    last_form_reset: SdvMark | None = None

    @property
    def verified(self) -> int:
        return sum(1 for k in self.needed if k in self.marks)

    @property
    def total(self) -> int:
        return len(self.needed)

    @property
    def pending(self) -> list[Key]:
        return [k for k in self.needed if k not in self.marks]

    @property
    def complete(self) -> bool:
        return self.total > 0 and not self.pending


def _marks(session: Session, form_ids: Iterable[int]) -> list[SdvMark]:
    ids = sorted(set(form_ids))
    if not ids:
        return []
    return list(session.scalars(select(SdvMark).where(SdvMark.form_instance_id.in_(ids))
                                .order_by(SdvMark.id)))


def form_status(session: Session, form: FormInstance) -> FormSdv:
    """The SDV state of a form, in two statements."""
    return forms_status(session, [form])[form.id]


def forms_status(session: Session, forms: Iterable[FormInstance]) -> dict[int, FormSdv]:
    """The SDV state of several forms (a subject's casebook), in two statements."""
    forms = list(forms)
    values = live_values(session, [f.id for f in forms])
    found: dict[int, FormSdv] = {}
    for form in forms:
        definition = definition_of(form)
        needed = needs_sdv(values.get(form.id, {}), items_in_scope(definition, form.form_oid))
        found[form.id] = FormSdv(sdv_scope(definition), needed, {}, {}, None)
    for mark in _marks(session, found):
        state = found[mark.form_instance_id]
        if mark.item_oid is None:
            if mark.current:
                state.form_mark = mark
            else:
                state.last_form_reset = mark
            continue
        key = (mark.group_oid, mark.row, mark.item_oid)
        if mark.current:
            state.marks[key] = mark
            state.resets.pop(key, None)
        elif key not in state.marks:
            state.resets[key] = mark
    return found


def _guard(session: Session, actor: Actor, form: FormInstance) -> Subject:
    audit.bind_actor(session, actor)
    subject = form.event.subject
    check_allowed(session, actor, "sdv.perform", subject.study, subject.site_id)
    # The lock every save of the event takes first: a save running now commits before the
    # values and marks are read below, and a save after this sees the marks made here (its
    # reset of changed values cannot miss them).
    event_instance(session, subject, form.event.event_oid, form.event.repeat, lock=True)
    locks.ensure_review_allowed(session, subject, form.id, what="SDV")
    return subject


def _new_mark(session: Session, actor: Actor, subject: Subject, form: FormInstance,
              key: Key | None, value: str | None) -> SdvMark:
    mark = SdvMark(subject_id=subject.id, form_instance_id=form.id,
                   group_oid=key[0] if key else None, row=key[1] if key else None,
                   item_oid=key[2] if key else None, verified_value=value,
                   verified_by_id=actor.user_id, verified_by=actor.username,
                   verified_at=utcnow())
    session.add(mark)
    return mark


def verify_items(session: Session, actor: Actor, form: FormInstance, keys: Iterable[Key]
                 ) -> list[SdvMark]:
    """Mark items as verified against source; items already verified are left as they are."""
    subject = _guard(session, actor, form)
    state = form_status(session, form)
    values = live_values(session, [form.id]).get(form.id, {})
    event = form.event
    made = []
    for key in dict.fromkeys(keys):
        value = values.get(key)
        if value is None:
            raise SdvError(N_("%(item)s (row %(row)s) has no value to verify."), item=key[2],
                           row=key[1])
        if key in state.marks:
            continue
        made.append(_new_mark(session, actor, subject, form, key, value))
        record_review(session, actor, "sdv.verified", subject,
                      item_path(subject, event.event_oid, event.repeat, form.form_oid, key),
                      old="unverified", new="verified", details={"value": value})
    session.flush()
    return made


def verify_form(session: Session, actor: Actor, form: FormInstance) -> list[SdvMark]:
    """Verify every entered item of the form that needs SDV, and the form as a whole."""
    subject = _guard(session, actor, form)
    state = form_status(session, form)
    if not state.needed:
        raise SdvError(N_("%(form)s has no entered value that needs SDV."), form=form.form_oid)
    made = verify_items(session, actor, form, state.pending)
    if state.form_mark is None:
        _new_mark(session, actor, subject, form, None, None)
        event = form.event
        record_review(session, actor, "sdv.form_verified", subject,
                      form_path(subject, event.event_oid, event.repeat, form.form_oid),
                      old="unverified", new="verified",
                      details={"items": len(state.needed), "newly_verified": len(made)})
    session.flush()
    return made


def unverify(session: Session, actor: Actor, form: FormInstance, keys: Iterable[Key],
             reason: str) -> list[SdvMark]:
    """Withdraw verifications (a monitor's mistake), with a reason."""
    _guard(session, actor, form)
    reason = clean_text(reason, 2000)
    if not reason:
        raise SdvError(N_("Give the reason for withdrawing the verification."))
    wanted = set(keys)
    return _reset(session, actor, form, lambda key: reason if key in wanted else None,
                  form_reason=reason if wanted else None)


def reset_for_change(session: Session, actor: Actor, form: FormInstance,
                     changes: Mapping[Key, tuple[str | None, str | None]],
                     removed_rows: Iterable[tuple[str, int]] = ()) -> list[SdvMark]:
    """A save changed values or removed rows: their verifications no longer hold."""
    removed = set(removed_rows)
    if not changes and not removed:
        return []

    def why(key: Key) -> str | None:
        if key in changes:
            old, new = changes[key]
            return (f"value changed from {old if old is not None else '(blank)'} to "
                    f"{new if new is not None else '(blank)'}")
        if (key[0], key[1]) in removed:
            return f"row {key[1]} of {key[0]} removed"
        return None

    names = ", ".join(k[2] for k in changes) or ", ".join(f"{g}[{r}]" for g, r in removed)
    return _reset(session, actor, form, why, form_reason=f"form changed after SDV ({names})")


def standing_marks(form_instance_id: int):
    """The condition of the form's verifications not reset."""
    return and_(SdvMark.form_instance_id == form_instance_id, SdvMark.reset_at.is_(None))


def _reset(session: Session, actor: Actor, form: FormInstance, why, *,
           form_reason: str | None) -> list[SdvMark]:
    subject = form.event.subject
    event = form.event
    now = utcnow()
    reset = []
    current = session.scalars(select(SdvMark).where(standing_marks(form.id)))
    for mark in current:
        if mark.item_oid is None:
            reason = form_reason
            path = form_path(subject, event.event_oid, event.repeat, form.form_oid)
        else:
            key = (mark.group_oid, mark.row, mark.item_oid)
            reason = why(key)
            path = item_path(subject, event.event_oid, event.repeat, form.form_oid, key)
        if reason is None:
            continue
        mark.reset_at, mark.reset_reason = now, reason
        reset.append(mark)
        record_review(session, actor, "sdv.reset", subject, path, old="verified",
                      new="unverified", reason=reason,
                      details={"verified_by": mark.verified_by,
                               "verified_at": mark.verified_at})
    session.flush()
    return reset


# --- progress ---------------------------------------------------------------------------------


@dataclass
class SubjectSdv:
    subject_id: int
    subject_key: str
    site_code: str
    total: int = 0
    verified: int = 0
    forms_pending: int = 0  # forms with an item still to verify

    @property
    def pending(self) -> int:
        return self.total - self.verified

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.verified / self.total)


@dataclass
class SdvProgress:
    subjects: list[SubjectSdv]  # the page of subjects asked for (all of them by default)
    by_site: dict[str, tuple[int, int]]  # site code -> (verified, total)
    subject_count: int = 0  # subjects in the sites and subjects asked for
    pending_count: int = 0  # of which with items to verify

    @property
    def total(self) -> int:
        return sum(t for _, t in self.by_site.values())

    @property
    def verified(self) -> int:
        return sum(v for v, _ in self.by_site.values())


def _scope_rows(session: Session, study: Study,
                definitions: Mapping[int, StudyDefinition] | None
                ) -> tuple[tuple[str, ...], list[tuple[int | str, ...]]]:
    if definitions is None:
        definitions = {v.id: definition_for(v) for v in session.scalars(
            select(StudyVersion).where(StudyVersion.study_id == study.id))}
    per_version = {version_id: sorted(
        (form_oid, item_oid) for form_oid in definition.forms
        for item_oid in items_in_scope(definition, form_oid))
        for version_id, definition in sorted(definitions.items())}
    pairs = {tuple(rows) for rows in per_version.values()}
    if len(pairs) == 1:
        return ("form_oid", "item_oid"), list(next(iter(pairs)))
    return ("version_id", "form_oid", "item_oid"), [
        (version_id, form_oid, item_oid)
        for version_id, rows in per_version.items() for form_oid, item_oid in rows]


def scope_table(session: Session, study: Study,
                definitions: Mapping[int, StudyDefinition] | None = None) -> CTE | None:
    """The items needing SDV, as a table of literal rows to join item values with, or None
    if no item needs SDV. Built from each version's definition (given, or loaded in one
    statement: a study has few). When every version has the same items in scope (one
    version, or versions that did not change them), the rows are (form_oid, item_oid)
    and the counts need not read each value's form for its version; otherwise they are
    (version_id, form_oid, item_oid)."""
    return literal_table("sdv_scope", *_scope_rows(session, study, definitions))


def subject_counts(study: Study, scope: CTE | None, *, forms_pending: bool = False,
                   subject_ids: Iterable[int] | Select | ColumnElement | None = None):
    """Subquery of SDV counts per subject with entered values needing SDV: subject_id,
    total (values), verified (values with a current mark), forms_pending (forms with a
    value still to verify; 0 unless asked, as it costs a sort of the values counted).
    Subjects with nothing to verify are absent; ``subject_ids`` (ids, or a select of
    them) restricts the count to those subjects. One pass over the study's values: the
    scope and the removed rows (a few, read through their partial index) are hashed, the
    current marks joined by hash. Given a column of an enclosing query instead (a
    subject id of the study), the count is a LATERAL subquery of that subject's values,
    read through their index (PostgreSQL)."""
    mark = and_(SdvMark.form_instance_id == ItemValue.form_instance_id,
                SdvMark.group_oid == ItemValue.group_oid, SdvMark.row == ItemValue.row,
                SdvMark.item_oid == ItemValue.item_oid, SdvMark.reset_at.is_(None))
    removed = select(GroupRow.form_instance_id, GroupRow.group_oid, GroupRow.row).where(
        GroupRow.removed_at.is_not(None))
    pending = (func.count(distinct(case((SdvMark.id.is_(None), ItemValue.form_instance_id),
                                        else_=None))) if forms_pending
               else literal_column("0"))
    stmt = (select(ItemValue.subject_id.label("subject_id"),
                   func.count(ItemValue.id).label("total"),
                   func.count(SdvMark.id).label("verified"),
                   pending.label("forms_pending"))
            .outerjoin(SdvMark, mark)
            .where(ItemValue.value.is_not(None),
                   tuple_(ItemValue.form_instance_id, ItemValue.group_oid, ItemValue.row)
                   .not_in(removed)))
    one = isinstance(subject_ids, ColumnElement)
    if one:
        stmt = stmt.where(ItemValue.subject_id == subject_ids)
    elif isinstance(subject_ids, Select):
        stmt = stmt.where(ItemValue.subject_id.in_(subject_ids))
    elif subject_ids is not None:
        stmt = stmt.where(ItemValue.subject_id.in_(sorted(set(subject_ids)) or [-1]))
    if scope is None:
        stmt = stmt.where(false())
    elif "version_id" in scope.c:  # the scope holds this study's versions only
        stmt = stmt.join(FormInstance, FormInstance.id == ItemValue.form_instance_id).where(
            tuple_(FormInstance.study_version_id, ItemValue.form_oid, ItemValue.item_oid)
            .in_(select(scope)))
    else:
        stmt = stmt.where(tuple_(ItemValue.form_oid, ItemValue.item_oid).in_(select(scope)))
        if not one:
            stmt = stmt.where(ItemValue.subject_id.in_(select(Subject.id).where(
                Subject.study_id == study.id)))
    stmt = stmt.group_by(ItemValue.subject_id)
    return stmt.lateral("sdv_subject") if one else stmt.subquery("sdv_subjects")


def kept_counts(session: Session, study: Study,
                definitions: Mapping[int, StudyDefinition] | None = None) -> Subquery:
    """``subject_counts`` of every subject of the study (forms_pending included), read
    from the counts kept per subject (``SdvSubjectCount``): a subject is counted again
    only when its audit trail has a row past the one its kept counts saw (every change
    to its values, marks, rows, version or an import writes one) or when the items in
    scope changed. One statement whatever the number of subjects to count again (after
    the versions' definitions unless given): it reads each subject's latest audit seq
    (one index probe), counts the subjects whose kept row no longer holds and upserts
    their rows with that seq, all in one snapshot, in a savepoint of its own. The rows
    are derived data, not part of the record: the page that asked keeps them by
    committing (``kept_written`` tells whether it wrote any). Should the upsert fail
    (another request writing the same rows), the counts are computed afresh instead."""
    names, rows = _scope_rows(session, study, definitions)
    scope = literal_table("sdv_scope", names, rows)
    digest = hashlib.sha256(repr((names, rows)).encode()).hexdigest()
    kept = SdvSubjectCount
    latest = (select(AuditEvent.seq)
              .where(AuditEvent.study_oid == study.oid,
                     AuditEvent.subject_key == Subject.subject_key)
              .order_by(AuditEvent.seq.desc()).limit(1).correlate(Subject).scalar_subquery())
    seen = (select(Subject.id.label("id"), func.coalesce(latest, 0).label("seq"),
                   kept.audit_seq.label("kept_seq"), kept.scope.label("kept_scope"))
            .outerjoin(kept, kept.subject_id == Subject.id)
            .where(Subject.study_id == study.id).cte("sdv_seen"))
    stale = (select(seen.c.id, seen.c.seq)
             .where(or_(seen.c.kept_seq.is_(None), seen.c.kept_seq != seen.c.seq,
                        seen.c.kept_scope != digest)).cte("sdv_stale"))
    postgres = session.get_bind().dialect.name == "postgresql"
    # PostgreSQL counts each subject through its values' index (LATERAL): a hash of the
    # study's values would cost a pass over all of them for one subject changed.
    counts = subject_counts(study, scope, forms_pending=True,
                            subject_ids=stale.c.id if postgres else select(stale.c.id))
    fresh = (select(stale.c.id, func.coalesce(counts.c.total, 0),
                    func.coalesce(counts.c.verified, 0),
                    func.coalesce(counts.c.forms_pending, 0), stale.c.seq, literal(digest))
             .outerjoin(counts, true() if postgres else counts.c.subject_id == stale.c.id)
             # SQLite reads ON CONFLICT after a SELECT without WHERE as a join constraint.
             .where(stale.c.id.is_not(None))
             .order_by(stale.c.id))  # rows locked in one order by concurrent upserts
    dialect = postgresql if postgres else sqlite
    columns = ("subject_id", "total", "verified", "forms_pending", "audit_seq", "scope")
    insert = dialect.insert(kept).from_select(columns, fresh)
    upsert = insert.on_conflict_do_update(
        index_elements=[kept.subject_id],
        set_={name: insert.excluded[name] for name in columns[1:]},
    ).returning(kept.subject_id)  # SQLite gives no row count for a WITH ... INSERT
    try:
        with session.begin_nested():
            if postgres:  # the per-subject estimates would have the statement compiled
                session.execute(text("SET LOCAL jit = off"))
            written = len(session.connection().execute(upsert).all())
    except DBAPIError:
        log.warning("kept SDV counts not written; counting afresh", exc_info=True)
        return subject_counts(study, scope, forms_pending=True)
    if written:
        session.info[KEPT_WRITTEN] = session.info.get(KEPT_WRITTEN, 0) + written
    return (select(kept.subject_id.label("subject_id"), kept.total.label("total"),
                   kept.verified.label("verified"),
                   kept.forms_pending.label("forms_pending"))
            .subquery("sdv_subjects"))


def kept_written(session: Session) -> int:
    """How many subjects' kept SDV counts this session rewrote since last asked (their
    rows are committed by the page that asked, or rolled back with it)."""
    return session.info.pop(KEPT_WRITTEN, 0)


def progress(session: Session, user: User, study: Study, *,
             subject_ids: Iterable[int] | None = None, pending_only: bool = False,
             limit: int | None = None, offset: int = 0) -> SdvProgress:
    """SDV progress per subject and per site over the subjects the user may see; two
    statements whatever the number of subjects (``site_progress``)."""
    return site_progress(session, study, accounts.site_ids_for(user, "subjects.view", study),
                         subject_ids=subject_ids, pending_only=pending_only, limit=limit,
                         offset=offset)


def site_progress(session: Session, study: Study, allowed: set[int] | None, *,
                  subject_ids: Iterable[int] | None = None, pending_only: bool = False,
                  limit: int | None = None, offset: int = 0) -> SdvProgress:
    """SDV progress at the given sites (None: every site): the totals by site over every
    subject, and the subjects (those with items to verify if ``pending_only``) ordered by
    site and key, ``limit`` of them from ``offset`` (None: all; 0: none). Read in one
    statement (window totals by site beside the page of subjects) from the counts kept
    per subject (``kept_counts``: the versions' definitions, then the upsert of the
    subjects changed since), whatever the number of subjects."""
    counts = kept_counts(session, study)
    total = func.coalesce(counts.c.total, 0)
    verified = func.coalesce(counts.c.verified, 0)
    pending = case((total > verified, 1), else_=0)
    listed = pending if pending_only else literal_column("1")
    order = (Site.code, Subject.subject_key, Subject.id)
    people = (select(Subject.id.label("id"), Subject.subject_key.label("key"),
                     Site.code.label("code"), total.label("total"),
                     verified.label("verified"),
                     func.coalesce(counts.c.forms_pending, 0).label("forms_pending"),
                     func.sum(verified).over(partition_by=Site.code).label("site_verified"),
                     func.sum(total).over(partition_by=Site.code).label("site_total"),
                     func.count().over(partition_by=Site.code).label("site_subjects"),
                     func.sum(pending).over(partition_by=Site.code).label("site_pending"),
                     func.row_number().over(partition_by=Site.code, order_by=order[1:])
                     .label("site_rank"),
                     listed.label("listed"),
                     func.sum(listed).over(order_by=order, rows=(None, 0)).label("position"))
              .join(Site, Site.id == Subject.site_id)
              .outerjoin(counts, counts.c.subject_id == Subject.id)
              .where(Subject.study_id == study.id))
    people = accounts.scope_to_sites(people, Subject.site_id, allowed)
    if subject_ids is not None:
        people = people.where(Subject.id.in_(sorted(set(subject_ids)) or [-1]))
    rows = people.subquery("sdv_people")
    shown = rows.c.listed == 1
    if offset:
        shown = and_(shown, rows.c.position > offset)
    if limit is not None:
        shown = and_(shown, rows.c.position <= (offset or 0) + limit)
    by_site, subject_count, pending_count, subjects = {}, 0, 0, []
    for row in session.execute(select(rows).where(or_(rows.c.site_rank == 1, shown))
                               .order_by(rows.c.code, rows.c.key, rows.c.id)):
        if row.site_rank == 1:
            by_site[row.code] = (int(row.site_verified or 0), int(row.site_total or 0))
            subject_count += row.site_subjects
            pending_count += int(row.site_pending or 0)
        if row.listed == 1 and (limit is None or offset < row.position <= offset + limit):
            subjects.append(SubjectSdv(row.id, row.key, row.code, int(row.total),
                                       int(row.verified), int(row.forms_pending)))
    return SdvProgress(subjects, by_site, subject_count, pending_count)
