"""Data review through the API: queries (list, read, raise, answer, comment, close,
reopen) and source data verification (verify, withdraw, progress).

Every operation calls the review services the screens call, with the same permission
names, site scoping (a query or subject of another site is simply not found: 404), lock
checks (a refusal because of a lock or a locked study is a 423) and audit rows. Texts are
bounded as on the screens (4000 characters for query messages, 2000 for an SDV reason):
a longer text is refused (422), never cut.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ecrf import review
from ecrf.accounts import Allow, User
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.bodies import body_of as _body
from ecrf.api.bodies import invalid as _invalid
from ecrf.api.bodies import no_nul as _no_nul
from ecrf.api.bodies import text_field as _text
from ecrf.api.common import (
    MAX_ID,
    encode_cursor,
    from_sort_time,
    iso,
    json_kind,
    page_of,
    paged,
    paging_args,
    sort_time,
    subject_or_404,
)
from ecrf.api.errors import ApiProblem
from ecrf.capture import EventInstance, FormInstance, Subject, actor_for, may
from ecrf.core import db, utcnow
from ecrf.core.web import keep_derived, say, transaction
from ecrf.review import Query
from ecrf.studies import Site, StudySite

register("api.queries", Allow("subjects.view"))
register("api.query", Allow("subjects.view"))
register("api.query_raise", Allow("queries.raise"))
register("api.query_answer", Allow("queries.answer"))
register("api.query_comment", Allow("subjects.view"))
register("api.query_close", Allow("queries.close"))
register("api.query_reopen", Allow("queries.close"))
register("api.query_assign", Allow("queries.raise"))
register("api.sdv_progress", Allow("subjects.view"))
register("api.subject_sdv", Allow("subjects.view"))
register("api.form_sdv", Allow("subjects.view"))
register("api.form_sdv_verify", Allow("sdv.perform"))
register("api.form_sdv_unverify", Allow("sdv.perform"))

STUDY = "/studies/<study_oid>"
QUERY = STUDY + "/queries/<int:query_id>"
SUBJECT = STUDY + "/subjects/<subject_key>"
FORM = SUBJECT + "/events/<event_oid>/<int:repeat>/forms/<form_oid>"

MAX_TEXT = 4000  # the screens' query text areas (and the service's bound)
MAX_REASON = 2000  # the screen's SDV reason field (and the service's bound)
MAX_OID = 64
QUERY_STATUSES = ("open", "answered", "closed")
STATUS_FILTERS = (*QUERY_STATUSES, "unclosed", "all")
ORIGINS = ("manual", "automatic")
_KEY = re.compile(r"([A-Z][A-Z0-9_]*)\.([0-9]{1,9})\.([A-Z][A-Z0-9_]*)")


# --- reading bodies and arguments ---------------------------------------------------------










def _number(data: dict, name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise _invalid(name, _("'%(field)s' must be a whole number from 1 to %(max)s.",
                               field=name, max=MAX_ID))
    return value


def _flag(data: dict, name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise _invalid(name, _("'%(field)s' must be true or false, not %(kind)s.",
                               field=name, kind=json_kind(value)))
    return value


def _choice_arg(name: str, choices: tuple[str, ...], default: str) -> str:
    text = request.args.get(name, "").strip()
    if not text:
        return default
    if text not in choices:
        raise ApiProblem(400, _("The query argument '%(name)s' must be one of %(choices)s "
                                "(got '%(value)s').", name=name, choices=", ".join(choices),
                                value=text[:40]))
    return text


def _text_arg(name: str) -> str | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    _no_nul(name, text)
    if len(text) > MAX_OID:
        raise ApiProblem(400, _("The query argument '%(name)s' is too long (at most "
                                "%(limit)s characters).", name=name, limit=MAX_OID))
    return text


# --- refusals -----------------------------------------------------------------------------


def _refusal(exc: review.ReviewError) -> ApiProblem:
    message = say(exc.message)
    if isinstance(exc, review.ReviewPermissionError):
        return ApiProblem(403, message)
    if isinstance(exc, review.LockError) or (isinstance(exc, review.QueryError)
                                             and g.study.status == "locked"):
        return ApiProblem(423, message)
    return ApiProblem(422, message)


def _forbid_unless(action: str, subject: Subject) -> None:
    if not may(action, subject):
        raise ApiProblem(403, _("Your roles in %(study)s do not allow this at site %(site)s "
                                "(it needs the permission '%(action)s').",
                                study=g.study.oid, site=subject.site.code, action=action))


# --- queries ------------------------------------------------------------------------------


def _query_or_404(query_id: int) -> Query:
    found = review.visible_query(db.session, current_user, g.study, query_id) \
        if query_id <= MAX_ID else None
    if found is None:
        raise ApiProblem(404, _("There is no query %(id)s in %(study)s at your sites.",
                                id=query_id, study=g.study.oid))
    return found


def _age(query: Query, now: dt.datetime) -> int:
    end = now if query.status != "closed" else query.status_changed_at
    return max(0, (end - query.created_at).days)


def _query_fields(query: Query, *, subject_key: str, site_code: str, question: str,
                  assignee: str | None, age_days: int, message_count: int) -> dict:
    return {
        "id": query.id, "subject_key": subject_key, "site_code": site_code,
        "status": query.status, "origin": query.origin,
        "event_oid": query.event_oid, "repeat": query.repeat, "form_oid": query.form_oid,
        "group_oid": query.group_oid, "row": query.row, "item_oid": query.item_oid,
        "check_oid": query.check_oid, "question": question, "assignee_name": assignee,
        "created_by": query.created_by, "created_at": iso(query.created_at),
        "status_changed_at": iso(query.status_changed_at), "age_days": age_days,
        "message_count": message_count,
        "url": url_for("api.query", study_oid=g.study.oid, query_id=query.id),
    }


def query_document(query: Query) -> dict:
    messages = sorted(query.messages, key=lambda m: m.id)
    subject = query.subject
    found = _query_fields(
        query, subject_key=subject.subject_key, site_code=subject.site.code,
        question=messages[0].text if messages else "",
        assignee=query.assignee.full_name if query.assignee else None,
        age_days=_age(query, utcnow()), message_count=len(messages))
    found["thread"] = [{"author": m.author, "role": m.role, "text": m.text, "at": iso(m.at),
                        "status_from": m.status_from, "status_to": m.status_to}
                       for m in messages]
    found["allowed"] = {"answer": may("queries.answer", subject),
                        "close": may("queries.close", subject),
                        "reopen": may("queries.close", subject)}
    return found


@bp.get(STUDY + "/queries", endpoint="queries")
def queries_list(study_oid: str):
    page, per_page, cursor = paging_args("queries", (str, int))
    before = (from_sort_time(cursor[0]), cursor[1]) if cursor is not None else None
    status = _choice_arg("status", STATUS_FILTERS, "unclosed")
    origin = _choice_arg("origin", ORIGINS, "") or None
    site = _text_arg("site")
    if site is not None:
        site = site.upper()
        if site not in _site_codes():
            raise ApiProblem(400, _("There is no site %(site)s in %(study)s.", site=site,
                                    study=g.study.oid))
    subject_key = _text_arg("subject")
    subject_id = subject_or_404(subject_key, "subjects.view").id if subject_key else None
    filters = {"site": site, "status": None if status == "all" else status,
               "subject_id": subject_id, "origin": origin, "form_oid": _text_arg("form")}
    total = review.count_queries(db.session, current_user, g.study, **filters)
    rows = review.list_queries(db.session, current_user, g.study, **filters,
                               limit=per_page + 1, before=before,
                               offset=0 if page is None else (page - 1) * per_page)
    items = [_query_fields(r.query, subject_key=r.subject_key, site_code=r.site_code,
                           question=r.question, assignee=r.assignee_name,
                           age_days=r.age_days, message_count=r.messages)
             for r in rows[:per_page]]
    last = rows[per_page - 1].query if len(rows) > per_page else None
    return page_of(items, page=page, per_page=per_page, total=total,
                   next_cursor=encode_cursor("queries", (sort_time(last.created_at), last.id))
                   if last else None)


def _site_codes() -> set[str]:
    return set(db.session.scalars(select(Site.code).join(
        StudySite, StudySite.site_id == Site.id).where(StudySite.study_id == g.study.id)))


@bp.get(QUERY, endpoint="query")
def query_read(study_oid: str, query_id: int):
    return query_document(_query_or_404(query_id))


@bp.post(STUDY + "/queries", endpoint="query_raise")
def query_raise(study_oid: str):
    data = _body({"subject_key", "text", "event_oid", "repeat", "form_oid", "group_oid",
                  "row", "item_oid", "assignee"})
    key = data.get("subject_key")
    if not isinstance(key, str) or not key.strip():
        raise _invalid("subject_key", _("'subject_key' is required: the subject the query "
                                        "is about."))
    _no_nul("subject_key", key)
    text = _text(data, "text", MAX_TEXT)
    oids = {}
    for name in ("event_oid", "form_oid", "group_oid", "item_oid"):
        oids[name] = _text(data, name, MAX_OID)
        oids[name] = oids[name].strip() or None if oids[name] is not None else None
    repeat, row = _number(data, "repeat"), _number(data, "row")
    assignee_name = _text(data, "assignee", MAX_OID)
    subject = subject_or_404(key.strip()[:MAX_OID], "subjects.view")
    _forbid_unless("queries.raise", subject)
    assignee = None
    if assignee_name:
        assignee = db.session.scalar(select(User).where(User.username == assignee_name))
        if assignee is None:
            raise _invalid("assignee", _("There is no user '%(name)s'.",
                                         name=assignee_name[:40]))
    target = review.QueryTarget(oids["event_oid"], repeat, oids["form_oid"],
                                oids["group_oid"], row, oids["item_oid"])
    try:
        with transaction():
            created = review.raise_query(db.session, actor_for("queries.raise", subject),
                                         subject, text or "", target=target,
                                         assignee=assignee)
            created_id = created.id
    except review.ReviewError as exc:
        raise _refusal(exc) from None
    document = query_document(_query_or_404(created_id))
    return document, 201, {"Location": document["url"]}


def _act(query_id: int, action: str, work, *, required: bool = True):
    query = _query_or_404(query_id)
    data = _body({"text"})
    text = _text(data, "text", MAX_TEXT)
    if required and text is None:
        raise _invalid("text", _("'text' is required."))
    _forbid_unless(action, query.subject)
    try:
        with transaction():
            work(actor_for(action, query.subject), query, text)
    except review.ReviewError as exc:
        raise _refusal(exc) from None
    return query_document(_query_or_404(query_id))


@bp.post(QUERY + "/answer", endpoint="query_answer")
def query_answer(study_oid: str, query_id: int):
    return _act(query_id, "queries.answer", lambda actor, query, text: review.answer_query(
        db.session, actor, query, text))


@bp.post(QUERY + "/comment", endpoint="query_comment")
def query_comment(study_oid: str, query_id: int):
    return _act(query_id, "subjects.view", lambda actor, query, text: review.comment_query(
        db.session, actor, query, text))


@bp.post(QUERY + "/close", endpoint="query_close")
def query_close(study_oid: str, query_id: int):
    return _act(query_id, "queries.close", lambda actor, query, text: review.close_query(
        db.session, actor, query, text), required=False)


@bp.post(QUERY + "/reopen", endpoint="query_reopen")
def query_reopen(study_oid: str, query_id: int):
    return _act(query_id, "queries.close", lambda actor, query, text: review.reopen_query(
        db.session, actor, query, text))


@bp.post(QUERY + "/assign", endpoint="query_assign")
def query_assign(study_oid: str, query_id: int):
    query = _query_or_404(query_id)
    data = _body({"assignee"})
    if "assignee" not in data:
        raise _invalid("assignee", _("'assignee' is required: a username, or null to give "
                                     "the query to the site as a whole."))
    name = _text(data, "assignee", MAX_OID)
    _forbid_unless("queries.raise", query.subject)
    assignee = None
    if name is not None and name.strip():
        assignee = db.session.scalar(select(User).where(User.username == name.strip()))
        if assignee is None:
            raise _invalid("assignee", _("There is no user '%(name)s'.", name=name[:40]))
    try:
        with transaction():
            review.assign_query(db.session, actor_for("queries.raise", query.subject), query,
                                assignee)
    except review.ReviewError as exc:
        problem = _refusal(exc)
        if problem.status == 422:
            problem = _invalid("assignee", problem.message)
        raise problem from None
    return query_document(_query_or_404(query_id))


# --- source data verification ---------------------------------------------------------------


def _percent(verified: int, total: int) -> int:
    return 100 if not total else int(100 * verified / total)


def _form_instance(subject: Subject, event_oid: str, repeat: int, form_oid: str
                   ) -> FormInstance:
    found = None
    if repeat <= MAX_ID:
        found = db.session.scalar(
            select(FormInstance).join(EventInstance,
                                      EventInstance.id == FormInstance.event_instance_id)
            .where(EventInstance.subject_id == subject.id, EventInstance.event_oid == event_oid,
                   EventInstance.repeat == repeat, FormInstance.form_oid == form_oid))
    if found is None:
        raise ApiProblem(404, _("%(subject)s has no data in form %(form)s of event "
                                "%(event)s (%(repeat)s).", subject=subject.subject_key,
                                form=form_oid[:MAX_OID], event=event_oid[:MAX_OID],
                                repeat=repeat))
    return found


def _key_text(group: str | None, row: int | None, item: str | None) -> str:
    return f"{group}.{row}.{item}"


def sdv_document(subject: Subject, form: FormInstance) -> dict:
    state = review.sdv_form_status(db.session, form)
    event = form.event
    keys = list(state.needed) + [k for k in state.marks if k not in state.needed]
    items = []
    for key in keys:
        mark, reset = state.marks.get(key), state.resets.get(key)
        items.append({
            "item": _key_text(*key), "needed": key in state.needed,
            "value": state.needed.get(key), "verified": mark is not None,
            "verified_by": mark.verified_by if mark else None,
            "verified_at": iso(mark.verified_at) if mark else None,
            "verified_value": mark.verified_value if mark else None,
            "last_reset_at": iso(reset.reset_at) if reset else None,
            "last_reset_reason": reset.reset_reason if reset else None})
    mark = state.form_mark
    return {"study_oid": g.study.oid, "subject_key": subject.subject_key,
            "event_oid": event.event_oid, "repeat": event.repeat, "form_oid": form.form_oid,
            "scope": state.scope, "total": state.total, "verified": state.verified,
            "pending": [_key_text(*k) for k in state.pending], "complete": state.complete,
            "form_verified": mark is not None,
            "form_verified_by": mark.verified_by if mark else None,
            "form_verified_at": iso(mark.verified_at) if mark else None,
            "items": items}


def _sdv_keys(data: dict) -> list[tuple[str, int, str]] | None:
    """The items named (None: the whole form), exactly one of ``items`` and ``whole_form``."""
    whole = _flag(data, "whole_form")
    given = data.get("items")
    if whole == (given is not None):
        raise _invalid("items", _("Send either 'items' (a list of GROUP.ROW.ITEM) or "
                                  "'whole_form': true."))
    if whole:
        return None
    if not isinstance(given, list) or not given:
        raise _invalid("items", _("'items' must be a non-empty list of GROUP.ROW.ITEM."))
    if len(given) > 1000:
        raise _invalid("items", _("'items' names at most 1000 items."))
    keys = []
    for index, text in enumerate(given):
        match = _KEY.fullmatch(text) if isinstance(text, str) and len(text) <= 200 else None
        if match is None:
            if isinstance(text, str):
                _no_nul(f"items.{index}", text)
            raise _invalid(f"items.{index}", _("'%(value)s' is not GROUP.ROW.ITEM (e.g. "
                                               "VS.1.WEIGHT).", value=str(text)[:60]))
        keys.append((match[1], int(match[2]), match[3]))
    return keys


def _sdv_target(subject_key: str, event_oid: str, repeat: int, form_oid: str,
                action: str) -> tuple[Subject, FormInstance]:
    subject = subject_or_404(subject_key, action)
    return subject, _form_instance(subject, event_oid, repeat, form_oid)


@bp.get(FORM + "/sdv", endpoint="form_sdv")
def form_sdv(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject, form = _sdv_target(subject_key, event_oid, repeat, form_oid, "subjects.view")
    return sdv_document(subject, form)


@bp.post(FORM + "/sdv/verify", endpoint="form_sdv_verify")
def form_sdv_verify(study_oid: str, subject_key: str, event_oid: str, repeat: int,
                    form_oid: str):
    subject, form = _sdv_target(subject_key, event_oid, repeat, form_oid, "sdv.perform")
    keys = _sdv_keys(_body({"items", "whole_form"}))
    actor = actor_for("sdv.perform", subject)
    try:
        with transaction():
            if keys is None:
                made = review.sdv_verify_form(db.session, actor, form)
            else:
                made = review.sdv_verify_items(db.session, actor, form, keys)
    except review.ReviewError as exc:
        raise _refusal(exc) from None
    document = sdv_document(subject, form)
    document["changed"] = len(made)
    return document


@bp.post(FORM + "/sdv/unverify", endpoint="form_sdv_unverify")
def form_sdv_unverify(study_oid: str, subject_key: str, event_oid: str, repeat: int,
                      form_oid: str):
    subject, form = _sdv_target(subject_key, event_oid, repeat, form_oid, "sdv.perform")
    data = _body({"items", "whole_form", "reason"})
    keys = _sdv_keys(data)
    reason = _text(data, "reason", MAX_REASON)
    if reason is None:
        raise _invalid("reason", _("'reason' is required: why the verification is "
                                   "withdrawn."))
    if keys is None:
        keys = list(review.sdv_form_status(db.session, form).marks)
    actor = actor_for("sdv.perform", subject)
    try:
        with transaction():
            reset = review.sdv_unverify(db.session, actor, form, keys, reason)
    except review.ReviewError as exc:
        raise _refusal(exc) from None
    document = sdv_document(subject, form)
    document["changed"] = len(reset)
    return document


def _subject_progress(row: review.SubjectSdv) -> dict:
    return {"subject_key": row.subject_key, "site_code": row.site_code, "total": row.total,
            "verified": row.verified, "pending": row.pending, "percent": row.percent,
            "forms_pending": row.forms_pending,
            "url": url_for("api.subject_sdv", study_oid=g.study.oid,
                           subject_key=row.subject_key)}


@bp.get(STUDY + "/sdv", endpoint="sdv_progress")
def sdv_progress(study_oid: str):
    site = _text_arg("site")
    pending = _choice_arg("pending", ("true", "false"), "false") == "true"
    result = review.sdv_progress(db.session, current_user, g.study)
    keep_derived(review.sdv_kept_written(db.session))
    if site is not None and site.upper() not in _site_codes():
        raise ApiProblem(400, _("There is no site %(site)s in %(study)s.", site=site,
                                study=g.study.oid))
    subjects = [s for s in result.subjects
                if (site is None or s.site_code == site.upper()) and (not pending or s.pending)]
    found = paged("sdv", subjects, key=lambda s: (s.site_code, s.subject_key),
                  shape=(str, str), render=_subject_progress)
    return {"study_oid": g.study.oid, "verified": result.verified, "total": result.total,
            "percent": _percent(result.verified, result.total),
            "sites": [{"site_code": code, "verified": v, "total": t,
                       "percent": _percent(v, t)} for code, (v, t) in result.by_site.items()],
            "subjects": found}


@bp.get(SUBJECT + "/sdv", endpoint="subject_sdv")
def subject_sdv(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "subjects.view")
    result = review.sdv_site_progress(db.session, g.study, {subject.site_id},
                                      subject_ids=[subject.id])
    keep_derived(review.sdv_kept_written(db.session))
    row = result.subjects[0]
    forms = list(db.session.scalars(select(FormInstance).where(
        FormInstance.subject_id == subject.id).order_by(FormInstance.id)))
    states = review.sdv_forms_status(db.session, forms)
    return {**_subject_progress(row), "forms": [{
        "event_oid": f.event.event_oid, "repeat": f.event.repeat, "form_oid": f.form_oid,
        "total": states[f.id].total, "verified": states[f.id].verified,
        "complete": states[f.id].complete, "form_verified": states[f.id].form_mark is not None,
        "url": url_for("api.form_sdv", study_oid=g.study.oid, subject_key=subject.subject_key,
                       event_oid=f.event.event_oid, repeat=f.event.repeat,
                       form_oid=f.form_oid)} for f in forms]}

