"""Data review: query lists and threads. Routes of the ``review`` blueprint.

Thin: parse, call a review service, commit or roll back once, render. Subjects and queries
are looked up through the user's sites, so those of another site are simply not found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ecrf import accounts, capture
from ecrf.accounts import Allow, User
from ecrf.accounts import register_route as register
from ecrf.capture import FormInstance, ItemValue, Subject, actor_for, may, subject_or_404
from ecrf.core import db, whole_number
from ecrf.core.web import error_text, say, transaction
from ecrf.crf import UnknownOidError
from ecrf.crf.validation import codes_for
from ecrf.crf.values import display
from ecrf.review import corrections, queries
from ecrf.review.labels import ORIGIN_LABELS, QUERY_STATUS_LABELS
from ecrf.review.models import Query
from ecrf.review.support import ReviewError
from ecrf.review.views.blueprint import STUDY, bp
from ecrf.review.views.blueprint import language as _language
from ecrf.studies import Site, StudySite, definition_for, naming_of

QUERY = STUDY + "/queries/<int:query_id>"

register("review.queries", Allow("subjects.view"))
register("review.query", Allow("subjects.view"))
register("review.query_new", Allow("queries.raise"))
register("review.query_answer", Allow("queries.answer"))
register("review.query_close", Allow("queries.close"))
register("review.query_reopen", Allow("queries.close"))
register("review.query_assign", Allow("queries.raise"))
register("review.query_comment", Allow("subjects.view"))

AGE_FILTERS = ("", "7", "14", "30", "60")


def _query_or_404(query_id: int) -> Query:
    query = queries.visible_query(db.session, current_user, g.study, query_id)
    if query is None:
        abort(404)
    return query


# --- lists ------------------------------------------------------------------------------------


@bp.get(STUDY + "/queries", endpoint="queries")
def queries_list(study_oid: str):
    args = request.args
    sites = list(db.session.scalars(accounts.scope_to_sites(
        select(Site).join(StudySite, StudySite.site_id == Site.id)
        .where(StudySite.study_id == g.study.id).order_by(Site.code), Site.id,
        accounts.site_ids_for(current_user, "subjects.view", g.study))))
    codes = {s.code for s in sites}
    site = args.get("site", "").strip().upper()
    status = args.get("status", "unclosed")
    age = args.get("age", "")
    assignee_arg = args.get("assignee", "")
    assignee: int | str | None = None
    if assignee_arg == "me":
        assignee = current_user.id
    elif assignee_arg == "none":
        assignee = "none"
    filters = {"site": site if site in codes else "",
               "status": status if status in (*QUERY_STATUS_LABELS, "unclosed", "all")
               else "unclosed",
               "age": age if age in AGE_FILTERS else "",
               "assignee": assignee_arg if assignee_arg in ("me", "none") else "",
               "origin": args.get("origin", "") if args.get("origin") in ORIGIN_LABELS else ""}
    rows = queries.list_queries(
        db.session, current_user, g.study, site=filters["site"] or None,
        status=None if filters["status"] == "all" else filters["status"],
        min_age_days=int(filters["age"]) if filters["age"] else None, assignee=assignee,
        origin=filters["origin"] or None)
    return render_template("review/queries.html", study=g.study, rows=rows, sites=sites,
                           filters=filters, status_labels=QUERY_STATUS_LABELS,
                           origin_labels=ORIGIN_LABELS, ages=AGE_FILTERS[1:])



# --- one query -------------------------------------------------------------------------------


@dataclasses.dataclass
class _ItemInfo:
    label: str
    value: str | None
    shown: str
    choices: list[tuple[str, str]]
    multiple: bool


def _item_info(query: Query) -> _ItemInfo | None:
    if not query.item_oid or query.form_instance_id is None:
        return None
    form = db.session.get(FormInstance, query.form_instance_id)
    definition = definition_for(form.study_version)
    try:
        item = definition.item(form.form_oid, query.item_oid)
    except UnknownOidError:
        return None
    value = db.session.scalar(select(ItemValue.value).where(
        ItemValue.form_instance_id == form.id, ItemValue.group_oid == query.group_oid,
        ItemValue.row == query.row, ItemValue.item_oid == query.item_oid))
    codes = codes_for(item, definition.codelists)
    language = _language()
    choices = [(c.code, c.label_in(language)) for c in codes.items] if codes else []
    return _ItemInfo(item.label_in(language), value, display(item, value, codes, language),
                     choices, item.type.value == "multiple_choice")


def render_query(query: Query, *, errors: dict | None = None, status: int = 200):
    subject = query.subject
    assignees = queries.site_answerers(db.session, g.study, subject.site_id) \
        if may("queries.raise", subject) else []
    return render_template(
        "review/query.html", study=g.study, subject=subject, query=query,
        path=_place(subject, query), item=_item_info(query),
        status_labels=QUERY_STATUS_LABELS, origin_labels=ORIGIN_LABELS,
        can_answer=may("queries.answer", subject), can_close=may("queries.close", subject),
        can_assign=may("queries.raise", subject), can_correct=may("data.enter", subject),
        assignees=assignees, errors=errors or {},
        posted=request.form if request.method == "POST" else {},
        locked_study=g.study.status == "locked"), status


@bp.get(QUERY)
def query(study_oid: str, query_id: int):
    return render_query(_query_or_404(query_id))


def _done(query: Query, message: str):
    flash(message, "success")
    return redirect(url_for("review.query", study_oid=g.study.oid, query_id=query.id))


def _refused(query: Query, field: str, exc: Exception):
    query = _query_or_404(query.id)
    return render_query(query, errors={field: error_text(exc)}, status=422)


@bp.post(QUERY + "/answer")
def query_answer(study_oid: str, query_id: int):
    query = _query_or_404(query_id)
    form = request.form
    text = form.get("text", "")
    multiple = form.get("multiple") == "1"
    correct = form.get("correct") == "1" if multiple else bool(form.get("value", "").strip())
    actor = actor_for("queries.answer", query.subject)
    try:
        with transaction():
            if correct and query.item_oid:
                raw = form.getlist("value") if multiple else form.get("value", "").strip()
                corrections.answer_with_correction(
                    db.session, actor, query, text,
                    corrections.Correction(raw, form.get("reason", "")))
            else:
                queries.answer(db.session, actor, query, text)
    except corrections.CorrectionRefused as exc:
        return render_query(_query_or_404(query_id), status=422, errors={
            "value": " ".join(say(p) for p in exc.problems) or error_text(exc)})
    except capture.StaleFormError:
        return render_query(_query_or_404(query_id), status=409, errors={
            "value": _("The form was saved by someone else meanwhile: check the current "
                       "value and submit again.")})
    except (ReviewError, capture.CaptureError) as exc:
        field = "text" if not (form.get("text") or "").strip() else "value"
        return _refused(query, field, exc)
    return _done(query, _("Your answer was recorded.") if not correct
                 else _("Your answer and the correction were recorded."))


def _act(query: Query, field: str, work: Callable[[], object], message: str):
    """Run one action on the thread in the request's transaction: go back to the query
    with ``message``, or show the refusal beside the control ``field``."""
    try:
        with transaction():
            work()
    except ReviewError as exc:
        return _refused(query, field, exc)
    return _done(query, message)


@bp.post(QUERY + "/close")
def query_close(study_oid: str, query_id: int):
    query = _query_or_404(query_id)
    return _act(query, "close", lambda: queries.close(
        db.session, actor_for("queries.close", query.subject), query,
        request.form.get("text")), _("The query is closed."))


@bp.post(QUERY + "/reopen")
def query_reopen(study_oid: str, query_id: int):
    query = _query_or_404(query_id)
    return _act(query, "reopen", lambda: queries.reopen(
        db.session, actor_for("queries.close", query.subject), query,
        request.form.get("text", "")), _("The query is open again."))


@bp.post(QUERY + "/comment")
def query_comment(study_oid: str, query_id: int):
    query = _query_or_404(query_id)
    return _act(query, "comment", lambda: queries.comment(
        db.session, actor_for("subjects.view", query.subject), query,
        request.form.get("text", "")), _("Your note was added."))


@bp.post(QUERY + "/assign")
def query_assign(study_oid: str, query_id: int):
    query = _query_or_404(query_id)
    chosen = request.form.get("assignee", "")
    assignee = db.session.get(User, whole_number(chosen)) if whole_number(chosen) else None
    if chosen and assignee is None:
        return render_query(query, errors={"assign": _("Choose a person from the list.")},
                            status=422)
    return _act(query, "assign", lambda: queries.assign(
        db.session, actor_for("queries.raise", query.subject), query, assignee),
        _("The query was assigned."))


# --- raising ------------------------------------------------------------------------------------


def _target_from(values) -> queries.QueryTarget:
    def number(name: str) -> int | None:
        text = (values.get(name) or "").strip()
        return whole_number(text)

    def text(name: str) -> str | None:
        return (values.get(name) or "").strip() or None

    return queries.QueryTarget(text("event"), number("repeat"), text("form"), text("group"),
                               number("row"), text("item"))


def _describe_target(subject: Subject, target: queries.QueryTarget) -> str:
    return _place(subject, target)


def _place(subject: Subject, target) -> str:
    """Where a query points, by labels: "TLS-001 · Induction · Haematology · Platelets"."""
    names = naming_of(subject.study_version)
    place = names.place(target.event_oid, target.repeat or 1, target.form_oid,
                        target.item_oid, target.row) if target.event_oid else ""
    return " · ".join(p for p in (subject.subject_key, place) if p)


@bp.route(STUDY + "/queries/new", methods=["GET", "POST"])
def query_new(study_oid: str):
    values = request.form if request.method == "POST" else request.args
    subject = subject_or_404((values.get("subject") or "").strip(), "queries.raise")
    target = _target_from(values)
    errors: dict[str, str] = {}
    if request.method == "POST":
        chosen = values.get("assignee", "")
        assignee = db.session.get(User, whole_number(chosen)) if whole_number(chosen) else None
        try:
            with transaction():
                created = queries.raise_query(db.session, actor_for("queries.raise", subject),
                                              subject, values.get("text", ""), target=target,
                                              assignee=assignee)
                created_id = created.id
        except ReviewError as exc:
            errors["text"] = error_text(exc)
        else:
            flash(_("Query #%(id)s was raised.", id=created_id), "success")
            back = values.get("next", "")
            if back.startswith("/") and not back.startswith("//"):
                return redirect(back)
            return redirect(url_for("review.query", study_oid=g.study.oid,
                                    query_id=created_id))
    return render_template(
        "review/query_new.html", study=g.study, subject=subject, target=target,
        described=_describe_target(subject, target), errors=errors, posted=values,
        assignees=queries.site_answerers(db.session, g.study, subject.site_id),
        next_url=values.get("next", "")), 422 if errors else 200
