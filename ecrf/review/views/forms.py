"""Review of a form and of a subject (values, SDV, queries, signatures, locks), SDV
progress and the study's locks. Routes of the ``review`` blueprint (signing: ``sign``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from flask import (
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ecrf import capture
from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.capture import (
    FORM_STATUS_LABELS,
    EventInstance,
    FormInstance,
    Subject,
    actor_for,
    may,
    subject_or_404,
)
from ecrf.core import db, whole_number
from ecrf.core.web import error_text, keep_derived, say, transaction
from ecrf.crf import FormDef, ItemDef
from ecrf.crf.validation import Key, codes_for
from ecrf.crf.values import display
from ecrf.review import locks, queries, sdv, signatures
from ecrf.review.labels import ORIGIN_LABELS, QUERY_STATUS_LABELS
from ecrf.review.models import Lock, LockScope, Query, SdvMark
from ecrf.review.support import ReviewError
from ecrf.review.views.blueprint import STUDY, bp
from ecrf.review.views.blueprint import language as _language
from ecrf.studies import STUDY_STATUS_LABELS, Site, StudySite, definition_for

SUBJECT = STUDY + "/subjects/<subject_key>"
FORM = SUBJECT + "/events/<event_oid>/<int:repeat>/forms/<form_oid>"

register("review.form", Allow("subjects.view"))
register("review.form_sdv", Allow("sdv.perform"))
register("review.form_lock", Allow("data.lock"))
register("review.subject", Allow("subjects.view"))
register("review.subject_lock", Allow("data.lock"))
register("review.sdv_progress", Allow("subjects.view"))
register("review.locks", Allow("data.lock"))
register("review.study_status", Allow("data.lock"))
register("review.site_lock", Allow("data.lock"))
register("review.unlock", Allow("data.lock"))



def _key_text(key: Key) -> str:
    return f"{key[0]}:{key[1]}:{key[2]}"


def _parse_key(text: str) -> Key | None:
    parts = text.split(":")
    if len(parts) != 3 or whole_number(parts[1]) is None:
        return None
    return parts[0], int(parts[1]), parts[2]


def review_url(subject: Subject, event_oid: str, repeat: int, form_oid: str) -> str:
    return url_for("review.form", study_oid=subject.study.oid, subject_key=subject.subject_key,
                   event_oid=event_oid, repeat=repeat, form_oid=form_oid)


# --- form review -------------------------------------------------------------------------------


@dataclass
class ItemRow:
    key: Key
    item: ItemDef
    label: str
    shown: str
    needed: bool
    mark: SdvMark | None
    reset: SdvMark | None
    queries: list[Query] = field(default_factory=list)

    @property
    def name(self) -> str:
        return _key_text(self.key)


def _item_rows(form: FormDef, opened: capture.OpenForm, state: sdv.FormSdv | None,
               by_item: dict[Key, list[Query]]) -> list[tuple[str, int | None, list[ItemRow]]]:
    language = _language()
    codelists = opened.definition.codelists
    sections = []
    for group in form.groups:
        numbers = opened.rows.get(group.oid, ()) if group.repeating else (1,)
        for number in numbers:
            items = []
            for item in group.items:
                key = (group.oid, number, item.oid)
                value = opened.values.get(key)
                items.append(ItemRow(
                    key, item, item.label_in(language),
                    display(item, value, codes_for(item, codelists), language),
                    bool(state and key in state.needed), state.marks.get(key) if state else None,
                    state.resets.get(key) if state else None, by_item.get(key, [])))
            title = group.label or (form.name_in(language) if len(form.groups) == 1
                                    else group.oid)
            sections.append((title, number if group.repeating else None, items))
    return sections


def _render_form(subject: Subject, event_oid: str, repeat: int, form_oid: str, *,
                 errors: dict | None = None, status: int = 200):
    try:
        opened = capture.load_form(db.session, subject, event_oid, repeat, form_oid)
    except capture.NotFoundError:
        abort(404)
    except capture.EventStateError as exc:
        flash(say(exc.message), "warning")
        return redirect(url_for("review.subject", study_oid=g.study.oid,
                                subject_key=subject.subject_key))
    instance = opened.instance
    state = sdv.form_status(db.session, instance) if instance else None
    found = queries.queries_for_forms(db.session, [instance.id]).get(instance.id, []) \
        if instance else []
    by_item: dict[Key, list[Query]] = defaultdict(list)
    for query in found:
        if query.item_oid:
            by_item[(query.group_oid, query.row, query.item_oid)].append(query)
    definition = definition_for(subject.study_version)
    lock = locks.lock_state(db.session, subject, instance.id if instance else None)
    return render_template(
        "review/form.html", study=g.study, subject=subject, event_oid=event_oid,
        repeat=repeat, form_oid=form_oid, event_name=definition.event_name_in(event_oid, _language()),
        form_name=opened.form.name_in(_language()), instance=instance,
        sections=_item_rows(opened.form, opened, state, by_item), sdv_state=state,
        form_queries=[q for q in found if not q.item_oid], lock=lock,
        lock_message=say(lock.message) if lock.message else None,
        signatures=signatures.signatures_of(db.session, subject, form=instance)
        if instance else [],
        can_sdv=may("sdv.perform", subject) and instance is not None,
        can_raise=may("queries.raise", subject), can_sign=may("data.sign", subject),
        can_lock=may("data.lock", subject), can_enter=may("data.enter", subject),
        status_labels=FORM_STATUS_LABELS, query_labels=QUERY_STATUS_LABELS,
        errors=errors or {}, posted=request.form if request.method == "POST" else {},
        this_url=review_url(subject, event_oid, repeat, form_oid),
        form_locked=lock.lock is not None and lock.lock.scope == "form",
    ), status


@bp.get(FORM + "/review")
def form(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    return _render_form(subject_or_404(subject_key), event_oid, repeat, form_oid)


def _form_instance(subject: Subject, event_oid: str, repeat: int, form_oid: str
                   ) -> FormInstance:
    found = db.session.scalar(
        select(FormInstance).join(EventInstance,
                                  EventInstance.id == FormInstance.event_instance_id)
        .where(EventInstance.subject_id == subject.id, EventInstance.event_oid == event_oid,
               EventInstance.repeat == repeat, FormInstance.form_oid == form_oid))
    if found is None:
        abort(404)
    return found


@bp.post(FORM + "/review/sdv")
def form_sdv(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject = subject_or_404(subject_key, "sdv.perform")
    instance = _form_instance(subject, event_oid, repeat, form_oid)
    action = request.form.get("action", "")
    keys = [k for k in (_parse_key(t) for t in request.form.getlist("item")) if k]
    actor = actor_for("sdv.perform", subject)
    try:
        with transaction():
            if action == "verify_form":
                made = sdv.verify_form(db.session, actor, instance)
                message = _("The form is verified (%(n)s item(s) newly verified).", n=len(made))
            elif action == "verify" and keys:
                made = sdv.verify_items(db.session, actor, instance, keys)
                message = _("%(n)s item(s) verified.", n=len(made))
            elif action == "unverify" and keys:
                reset = sdv.unverify(db.session, actor, instance, keys,
                                     request.form.get("reason", ""))
                message = _("%(n)s verification(s) withdrawn.", n=len(reset))
            else:
                raise ReviewError(_("Select the items to verify, or verify the whole form."))
    except ReviewError as exc:
        return _render_form(subject, event_oid, repeat, form_oid, status=422,
                            errors={"sdv": error_text(exc)})
    flash(message, "success")
    return redirect(review_url(subject, event_oid, repeat, form_oid) + "#sdv")


@bp.post(FORM + "/review/lock")
def form_lock(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject = subject_or_404(subject_key, "data.lock")
    instance = _form_instance(subject, event_oid, repeat, form_oid)
    actor = actor_for("data.lock", subject)
    reason = request.form.get("reason", "")
    try:
        with transaction():
            if request.form.get("action") == "unlock":
                lock = locks.current_lock(db.session, LockScope.FORM,
                                          form_instance_id=instance.id)
                if lock is None:
                    raise ReviewError(_("This form is not locked."))
                locks.unlock(db.session, actor, lock, reason)
                message = _("The form is unlocked.")
            else:
                locks.lock_form(db.session, actor, instance, reason)
                message = _("The form is locked: its data can no longer be changed.")
    except ReviewError as exc:
        return _render_form(subject, event_oid, repeat, form_oid, status=422,
                            errors={"lock": error_text(exc)})
    flash(message, "success")
    return redirect(review_url(subject, event_oid, repeat, form_oid))


# --- subject review ------------------------------------------------------------------------------


def _render_subject(subject: Subject, *, errors: dict | None = None, status: int = 200):
    definition = definition_for(subject.study_version)
    events = list(db.session.scalars(select(EventInstance).where(
        EventInstance.subject_id == subject.id).order_by(EventInstance.id)))
    forms = list(db.session.scalars(select(FormInstance).where(
        FormInstance.subject_id == subject.id).order_by(FormInstance.id)))
    sdv_states = sdv.forms_status(db.session, forms)
    by_form = queries.queries_for_forms(db.session, [f.id for f in forms])
    subject_queries = queries.list_queries(db.session, current_user, g.study,
                                           subject_id=subject.id, status="unclosed")
    all_signatures = signatures.signatures_of(db.session, subject)
    valid = {(s.scope, s.event_instance_id, s.form_instance_id) for s in all_signatures
             if s.valid}
    language = _language()
    rows = []
    forms_by_event: dict[int, list[FormInstance]] = defaultdict(list)
    for form_instance in forms:
        forms_by_event[form_instance.event_instance_id].append(form_instance)
    for event in events:
        try:
            name = definition.event_name_in(event.event_oid, language)
        except Exception:  # an event of an older version
            name = event.event_oid
        for form_instance in forms_by_event.get(event.id, []):
            form_def = definition_for(form_instance.study_version).form(form_instance.form_oid)
            found = by_form.get(form_instance.id, [])
            rows.append({
                "event": event, "event_name": name, "form": form_instance,
                "form_name": form_def.name_in(language), "sdv": sdv_states[form_instance.id],
                "open": sum(1 for q in found if q.status == "open"),
                "answered": sum(1 for q in found if q.status == "answered"),
                "signed": ("form", event.id, form_instance.id) in valid
                or ("event", event.id, None) in valid or ("casebook", None, None) in valid,
                "url": review_url(subject, event.event_oid, event.repeat, form_instance.form_oid),
            })
    lock = locks.lock_state(db.session, subject)
    subject_lock = locks.current_lock(db.session, LockScope.SUBJECT, subject_id=subject.id)
    return render_template(
        "review/subject.html", study=g.study, subject=subject, rows=rows, events=events,
        subject_queries=subject_queries, signatures=all_signatures, lock=lock,
        lock_message=say(lock.message) if lock.message else None, subject_lock=subject_lock,
        can_sign=may("data.sign", subject), can_lock=may("data.lock", subject),
        can_raise=may("queries.raise", subject), status_labels=FORM_STATUS_LABELS,
        query_labels=QUERY_STATUS_LABELS, origin_labels=ORIGIN_LABELS, errors=errors or {},
        posted=request.form if request.method == "POST" else {}), status


@bp.get(SUBJECT + "/review")
def subject(study_oid: str, subject_key: str):
    return _render_subject(subject_or_404(subject_key))


@bp.post(SUBJECT + "/lock")
def subject_lock(study_oid: str, subject_key: str):
    found = subject_or_404(subject_key, "data.lock")
    actor = actor_for("data.lock", found)
    reason = request.form.get("reason", "")
    try:
        with transaction():
            if request.form.get("action") == "unlock":
                lock = locks.current_lock(db.session, LockScope.SUBJECT, subject_id=found.id)
                if lock is None:
                    raise ReviewError(_("This subject is not locked."))
                locks.unlock(db.session, actor, lock, reason)
                message = _("The subject is unlocked.")
            else:
                locks.lock_subject(db.session, actor, found, reason)
                message = _("The subject is locked: none of its data can be changed.")
    except ReviewError as exc:
        return _render_subject(found, status=422, errors={"lock": error_text(exc)})
    flash(message, "success")
    return redirect(url_for("review.subject", study_oid=g.study.oid,
                            subject_key=found.subject_key))


# --- SDV progress and locks ----------------------------------------------------------------------


SDV_PAGE = 100  # subjects per page of the SDV progress


@bp.get(STUDY + "/sdv")
def sdv_progress(study_oid: str):
    pending = request.args.get("pending") == "1"
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 10**6)
    result = sdv.progress(db.session, current_user, g.study, pending_only=pending,
                          limit=SDV_PAGE, offset=(page - 1) * SDV_PAGE)
    keep_derived(sdv.kept_written(db.session))
    count = result.pending_count if pending else result.subject_count
    return render_template("review/sdv.html", study=g.study, progress=result,
                           subjects=result.subjects, pending=pending, page=page,
                           pages=max(1, -(-count // SDV_PAGE)))


def _render_locks(*, errors: dict | None = None, status: int = 200):
    active = locks.active_locks(db.session, g.study)
    sites = list(db.session.scalars(select(Site).join(StudySite, StudySite.site_id == Site.id)
                                    .where(StudySite.study_id == g.study.id)
                                    .order_by(Site.code)))
    transitions = [name for name, (sources, _target) in locks.STUDY_TRANSITIONS.items()
                   if g.study.status in sources]
    return render_template(
        "review/locks.html", study=g.study, locks=active, sites=sites,
        transitions=transitions, describe=lambda lock: say(locks.describe(lock)),
        status_labels=STUDY_STATUS_LABELS, errors=errors or {},
        posted=request.form if request.method == "POST" else {}), status


@bp.get(STUDY + "/locks", endpoint="locks")
def locks_page(study_oid: str):
    return _render_locks()


@bp.post(STUDY + "/locks/study")
def study_status(study_oid: str):
    transition = request.form.get("transition", "")
    try:
        with transaction():
            locks.change_study_status(db.session, actor_for("data.lock"), g.study, transition,
                                      request.form.get("reason", ""))
    except ReviewError as exc:
        return _render_locks(errors={"study": error_text(exc)}, status=422)
    flash(_("The study is now %(status)s.", status=STUDY_STATUS_LABELS[g.study.status]),
          "success")
    return redirect(url_for("review.locks", study_oid=g.study.oid))


@bp.post(STUDY + "/locks/site")
def site_lock(study_oid: str):
    code = request.form.get("site", "").strip().upper()
    site = db.session.scalar(select(Site).where(Site.code == code))
    try:
        with transaction():
            if site is None:
                raise ReviewError(_("Choose a site."))
            locks.lock_site(db.session, actor_for("data.lock"), g.study, site,
                            request.form.get("reason", ""))
    except ReviewError as exc:
        return _render_locks(errors={"site": error_text(exc)}, status=422)
    flash(_("Site %(site)s is locked.", site=site.code), "success")
    return redirect(url_for("review.locks", study_oid=g.study.oid))


@bp.post(STUDY + "/locks/<int:lock_id>/unlock")
def unlock(study_oid: str, lock_id: int):
    lock = db.session.get(Lock, lock_id)
    if lock is None or lock.study_id != g.study.id:
        abort(404)
    try:
        with transaction():
            locks.unlock(db.session, actor_for("data.lock"), lock, request.form.get("reason", ""))
    except ReviewError as exc:
        return _render_locks(errors={f"unlock-{lock_id}": error_text(exc)}, status=422)
    flash(_("The lock was released."), "success")
    return redirect(url_for("review.locks", study_oid=g.study.oid))

