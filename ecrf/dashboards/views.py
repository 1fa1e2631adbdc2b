"""Role dashboards at /studies/<study_oid>/dashboard, and the sponsor's enrolment chart.

The board shown is chosen by the user's role in the study (one holding several roles may
switch with ``?role=ROLE``). The enrolment chart is a server-drawn SVG: no script, no
external asset, and its numbers are also given as a table beside it.
"""

from __future__ import annotations

import datetime as dt
import math
from xml.sax.saxutils import escape

from flask import Blueprint, Response, abort, g, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import capture
from ecrf.accounts import ROLE_LABELS, Allow, Role
from ecrf.accounts import register_route as register
from ecrf.capture import SUBJECT_LABELS, VISIT_LABELS
from ecrf.core import db
from ecrf.core.web import keep_derived, store_derived
from ecrf.dashboards import boards as dashboards
from ecrf.review import ORIGIN_LABELS, QUERY_STATUS_LABELS, sdv_kept_written

bp = Blueprint("dashboards", __name__)

register("dashboards.dashboard", Allow("study.view"))
register("dashboards.enrolment_svg", Allow("aggregate.view"))

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")


@bp.get("/studies/<study_oid>/dashboard")
def dashboard(study_oid: str):
    study = g.study
    role = dashboards.choose_role(current_user, study, request.args.get("role"))
    if role is None:
        abort(403)
    if role in (Role.INVESTIGATOR, Role.COORDINATOR, Role.DATA_MANAGER):
        # Visit statuses depend on today's date.
        store_derived(lambda: capture.refresh_stale(db.session, study))
    if role is Role.INVESTIGATOR:
        board = dashboards.investigator(db.session, current_user, study)
    elif role is Role.COORDINATOR:
        board = dashboards.coordinator(db.session, current_user, study)
    elif role is Role.MONITOR:
        board = dashboards.monitor(db.session, current_user, study)
    elif role is Role.DATA_MANAGER:
        board = dashboards.data_manager(db.session, current_user, study)
    else:
        board = dashboards.sponsor(db.session, study)
    keep_derived(sdv_kept_written(db.session))  # subjects' SDV counts counted again
    return render_template(
        f"dashboards/{role.value}.html", study=study, role=role, board=board,
        roles=[(r, ROLE_LABELS[r]) for r in dashboards.held_roles(current_user, study)],
        panels=dashboards.panels(db.session, current_user, study, role),
        role_label=ROLE_LABELS[role], query_labels=QUERY_STATUS_LABELS,
        origin_labels=ORIGIN_LABELS, buckets=dashboards.AGE_BUCKETS,
        visit_labels=VISIT_LABELS, subject_labels=SUBJECT_LABELS)


@bp.get("/studies/<study_oid>/dashboard/enrolment.svg")
def enrolment_svg(study_oid: str):
    series = dashboards.enrolment_series(db.session, g.study)
    svg = enrolment_chart(series, title=_("Enrolment by site over time"),
                          empty=_("No subject enrolled yet."))
    return Response(svg, mimetype="image/svg+xml")


def enrolment_chart(series: dict[str, list[tuple[dt.date, int]]], *, title: str,
                    empty: str) -> str:
    """Cumulative enrolment per site as a line chart (SVG text, attributes only)."""
    width, height = 760, 340
    left, right, top, bottom = 52, 150, 36, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-labelledby="chart-title">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
             f'<text x="{left}" y="22" font-family="sans-serif" font-size="15" '
             f'fill="#212529">{escape(title)}</text>']
    months = next((pts for pts in series.values() if pts), [])
    if not months:
        parts.append(f'<text x="{left}" y="{top + plot_h // 2}" font-family="sans-serif" '
                     f'font-size="13" fill="#6c757d">{escape(empty)}</text></svg>')
        return "".join(parts)
    top_value = max(total for pts in series.values() for _month, total in pts) or 1
    step = max(1, math.ceil(top_value / 5))
    y_max = step * math.ceil(top_value / step)
    count = len(months)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(value: int) -> float:
        return top + plot_h - plot_h * value / y_max

    for tick in range(0, y_max + 1, step):
        parts.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" '
                     f'y2="{y(tick):.1f}" stroke="#dee2e6" stroke-width="1"/>')
        parts.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'font-family="sans-serif" font-size="11" fill="#495057">{tick}</text>')
    every = max(1, math.ceil(count / 8))
    for i, (month, _total) in enumerate(months):
        if i % every == 0 or i == count - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
                         f'font-family="sans-serif" font-size="11" fill="#495057">'
                         f'{month:%Y-%m}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
                 f'y2="{top + plot_h}" stroke="#495057" stroke-width="1"/>')
    for n, (code, points) in enumerate(sorted(series.items())):
        colour = PALETTE[n % len(PALETTE)]
        if points:
            line = " ".join(f"{x(i):.1f},{y(total):.1f}"
                            for i, (_month, total) in enumerate(points))
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                         f'stroke-width="2.5"/>')
        final = points[-1][1] if points else 0
        legend_y = top + 14 + 20 * n
        parts.append(f'<line x1="{left + plot_w + 16}" y1="{legend_y - 4}" '
                     f'x2="{left + plot_w + 36}" y2="{legend_y - 4}" stroke="{colour}" '
                     f'stroke-width="3"/>')
        parts.append(f'<text x="{left + plot_w + 42}" y="{legend_y}" font-family="sans-serif" '
                     f'font-size="12" fill="#212529">{escape(code)}: {final}</text>')
    parts.append("</svg>")
    return "".join(parts)
