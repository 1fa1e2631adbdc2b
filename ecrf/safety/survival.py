"""The survival endpoint a study declares (``survival`` in study.yaml), computed on demand.

``study_survival`` reads the stored values in two statements (the subjects, then every
value of the dates the block names) whatever the number of subjects, derives
each subject's time with ``ecrf.domain.survival`` and the Kaplan-Meier estimates with
``ecrf.domain.statistics.kaplan_meier``, per arm and pooled. Times are kept in days; the
estimates, the medians and the plot are in months (days / 30.4375). The dashboards'
panel and plot keep its result until the data change (``kept_study_survival``).

A subject enters the analysis once the origin anchor (randomisation) is recorded; a
subject never randomised is not listed. The cut-off is the block's date parameter (its
value in the study's latest version); without it every recorded date counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from dataclasses import dataclass, replace

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf import accounts
from ecrf.capture import GroupRow, ItemValue, Subject
from ecrf.core import (
    DashboardPanel,
    SurvivalCurve,
    add_panel,
    csv_cell,
    kaplan_meier_svg,
    utcnow,
)
from ecrf.crf import StudyDefinition
from ecrf.crf.definition import ItemKey, SurvivalDef
from ecrf.crf.scope import BUILTIN_ANCHOR
from ecrf.domain.statistics import KaplanMeier, kaplan_meier
from ecrf.domain.survival import REASON_LABELS, SurvivalTime, months, survival_time
from ecrf.safety.support import KeptResults
from ecrf.studies import Site, Study, definition_for, latest_version

POOLED = "All subjects"
UNASSIGNED = "Not assigned"


class SurvivalError(ValueError):
    """The study has no survival endpoint; the message says why."""


@dataclass(frozen=True)
class SubjectSurvival:
    subject_key: str
    site_code: str
    arm: str | None  # the arm code
    group: str  # the arm's name (UNASSIGNED without an arm)
    origin: dt.date | None
    time: SurvivalTime

    @property
    def reason_label(self) -> str:
        reason = self.time.reason
        return REASON_LABELS.get(reason, reason.replace("_", " "))


@dataclass(frozen=True)
class GroupSurvival:
    """One arm's (or the pooled) Kaplan-Meier estimate, in months."""

    label: str
    code: str | None  # the arm code; None for the pooled estimate
    km: KaplanMeier
    landmarks: tuple[tuple[int, float | None], ...]  # (month, S(month) or None: not reached)

    @property
    def censored(self) -> int:
        return self.km.censored


@dataclass
class StudySurvival:
    study: Study
    definition: StudyDefinition
    spec: SurvivalDef
    cutoff: dt.date | None
    computed_at: dt.datetime
    subjects: list[SubjectSurvival]  # in the analysis
    excluded: list[SubjectSurvival]  # origin recorded but left out (with the reason)
    groups: list[GroupSurvival]  # each arm with subjects, then the pooled estimate

    @property
    def problems(self) -> list[tuple[str, str]]:
        """(subject, problem) for every data problem found."""
        return [(s.subject_key, p) for s in [*self.subjects, *self.excluded]
                for p in s.time.problems]

    def at_risk_times(self) -> list[int]:
        """Months for the numbers-at-risk table: every ``at_risk_every`` months up to the
        longest follow-up."""
        step = self.spec.at_risk_every
        longest = max((s.time.months or 0 for s in self.subjects), default=0.0)
        last = int(longest // step + 1) * step
        return list(range(0, last + 1, step))

    def summary(self) -> list[dict]:
        """Per group: n, events, censored, median and its 95 % CI, landmarks (months)."""
        rows = []
        for group in self.groups:
            km = group.km
            rows.append({
                "group": group.label, "arm": group.code or "", "n": km.n, "events": km.events, "censored": km.censored,
                "median_months": _round(km.median), "median_ci_low": _round(km.median_low),
                "median_ci_high": _round(km.median_high),
                **{f"survival_{m}m": _round(v, 3) for m, v in group.landmarks}})
        return rows

    @property
    def rule(self) -> str:
        """The endpoint's rule in words."""
        spec = self.spec
        censor = "".join(f", at {name.replace('_', ' ')}" for name in spec.censor_at)
        cut = f"; administrative censoring at the cut-off {self.cutoff}" if self.cutoff else ""
        return (f"{spec.name}: time from {spec.origin.replace('_', ' ')} to "
                f"{spec.event.replace('_', ' ')}; censored at the last date known alive"
                f"{censor}{cut}")

    def subject_rows(self) -> list[dict]:
        rows = []
        for s in [*self.subjects, *self.excluded]:
            t = s.time
            rows.append({
                "subject": s.subject_key, "site": s.site_code, "arm": s.arm or "",
                "origin": _iso(s.origin), "end": _iso(t.end),
                "days": "" if t.days is None else t.days,
                "months": "" if t.months is None else f"{t.months:.2f}",
                "status": ("event" if t.event else "censored") if t.included else "excluded",
                "reason": (self.spec.event.replace("_", " ") if t.event else s.reason_label)
                if t.included else t.excluded_because,
                "problems": "; ".join(t.problems)})
        return rows

    def csv(self) -> str:
        rows = self.subject_rows()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        columns = ["subject", "site", "arm", "origin", "end", "days", "months", "status",
                   "reason", "problems"]
        writer.writerow(columns)
        for row in rows:
            writer.writerow([csv_cell(row[c]) for c in columns])
        return out.getvalue()

    def curves(self) -> list[SurvivalCurve]:
        times = self.at_risk_times()
        return [SurvivalCurve(g.label, g.km.steps, g.km.censor_times,
                              [g.km.at_risk(t) for t in times], pooled=g.code is None,
                              short=g.code or "All")
                for g in self.groups]

    def plot_svg(self, *, x_label: str = "Months from randomisation",
                 y_label: str = "Survival probability",
                 at_risk_title: str = "Number at risk", title: str = "") -> str:
        """The Kaplan-Meier plot by arm and pooled, with the numbers at risk (SVG)."""
        return kaplan_meier_svg(self.curves(), at_risk_times=self.at_risk_times(),
                                x_label=x_label, y_label=y_label,
                                at_risk_title=at_risk_title, title=title)

    def as_json(self) -> dict:
        return {"study": self.study.oid, "endpoint": self.spec.name,
                "computed_at": self.computed_at.isoformat(timespec="seconds"),
                "cutoff": _iso(self.cutoff) or None, "unit": "months",
                "days_per_month": 30.4375, "summary": self.summary(),
                "at_risk": {"months": self.at_risk_times(),
                            "groups": {g.code or "All": [g.km.at_risk(t)
                                                         for t in self.at_risk_times()]
                                       for g in self.groups}},
                "subjects": self.subject_rows()}


def _round(value: float | None, places: int = 1) -> float | None:
    return None if value is None else round(value, places)


def _iso(day: dt.date | None) -> str:
    return day.isoformat() if day else ""


def has_survival(definition: StudyDefinition) -> bool:
    return getattr(definition, "survival", None) is not None


def has_survival_study(session: Session, study: Study) -> bool:
    """Whether the study's latest definition declares a survival endpoint."""
    version = latest_version(session, study)
    return version is not None and has_survival(definition_for(version))


def _date(value: object) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _anchor_key(definition: StudyDefinition, name: str) -> ItemKey | None:
    return None if name == BUILTIN_ANCHOR else definition.anchors.get(name)


def _landmark(km: KaplanMeier, month: int) -> float | None:
    """S(month); None when no subject is followed that long and the curve is not at 0."""
    if km.at_risk(month) == 0 and not (km.steps and km.steps[-1][1] == 0.0):
        return None
    return km.survival_at(month)


def study_survival(session: Session, study: Study, site_ids: set[int] | None, *,
                   now: dt.datetime | None = None) -> StudySurvival:
    """Every randomised subject's survival time and the estimates, computed now."""
    version = latest_version(session, study)
    if version is None:
        raise SurvivalError(f"{study.name} has no loaded study definition")
    definition = definition_for(version)
    spec = definition.survival
    if spec is None:
        raise SurvivalError(f"{study.name} has no survival endpoint: its study definition "
                            f"declares no survival block (see forms/README.md)")
    cutoff = _date(definition.parameter_values().get(spec.cutoff)) if spec.cutoff else None
    people = select(Subject.id, Subject.subject_key, Site.code, Subject.arm,
                    Subject.enrolled_on).join(Site, Site.id == Subject.site_id).where(
        Subject.study_id == study.id).order_by(Subject.subject_key)
    if site_ids is not None:
        people = people.where(Subject.site_id.in_(site_ids or {-1}))
    found = session.execute(people).all()
    roles: dict[ItemKey, set[str]] = defaultdict(set)
    for role, name in [("origin", spec.origin), ("event", spec.event),
                       *[(f"censor:{n}", n) for n in spec.censor_at]]:
        key = _anchor_key(definition, name)
        if key is not None:
            roles[key].add(role)
    for key in spec.last_known_alive:
        roles[key].add("alive")
    values: dict[int, dict[str, list[dt.date]]] = defaultdict(lambda: defaultdict(list))
    if found and roles:
        stmt = (select(ItemValue.subject_id, ItemValue.form_oid, ItemValue.item_oid,
                       ItemValue.value, ItemValue.value_date, ItemValue.value_datetime)
                .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                          GroupRow.group_oid == ItemValue.group_oid,
                                          GroupRow.row == ItemValue.row))
                .join(Subject, Subject.id == ItemValue.subject_id)
                .where(Subject.study_id == study.id,
                       ItemValue.form_oid.in_(sorted({f for f, _ in roles})),
                       ItemValue.item_oid.in_(sorted({i for _, i in roles})),
                       ItemValue.value.is_not(None), GroupRow.removed_at.is_(None)))
        for sid, form, item, text, day, moment in session.execute(stmt):
            date = day or (moment.date() if moment else None) or _date(text)
            if date is None:
                continue
            for role in roles.get((form, item), ()):
                values[sid][role].append(date)
    arm_names = {arm.code: arm.name for arm in definition.arms}
    included: list[SubjectSurvival] = []
    excluded: list[SubjectSurvival] = []
    for sid, key, code, arm, enrolled in found:
        dates = values.get(sid, {})

        def first(role: str, dates=dates) -> dt.date | None:
            return min(dates[role]) if dates.get(role) else None

        def anchor(name: str, role: str, first=first, enrolled=enrolled) -> dt.date | None:
            return enrolled if name == BUILTIN_ANCHOR else first(role)

        origin = anchor(spec.origin, "origin")
        if origin is None:
            continue  # never randomised: not in the analysis
        time = survival_time(origin, anchor(spec.event, "event"), dates.get("alive", ()),
                             {n: anchor(n, f"censor:{n}") for n in spec.censor_at}, cutoff)
        group = arm_names.get(arm, arm) if arm else UNASSIGNED
        row = SubjectSurvival(key, code, arm, group or UNASSIGNED, origin, time)
        (included if time.included else excluded).append(row)
    groups: list[GroupSurvival] = []
    if spec.by == "arm":
        present = {s.arm or "" for s in included}
        codes = [a.code for a in definition.arms]
        for code in [c for c in codes if c in present] + sorted(present - set(codes)):
            members = [s for s in included if (s.arm or "") == code]
            groups.append(_estimate(members[0].group, code or "NA", members, spec))
    groups.append(_estimate(POOLED, None, included, spec))
    return StudySurvival(study, definition, spec, cutoff, now or utcnow(), included,
                         excluded, groups)


def _estimate(label: str, code: str | None, subjects: list[SubjectSurvival],
              spec: SurvivalDef) -> GroupSurvival:
    km = kaplan_meier([months(s.time.days or 0) for s in subjects],
                      [s.time.event for s in subjects])
    return GroupSurvival(label, code, km, tuple((m, _landmark(km, m)) for m in spec.landmarks))


_KEPT: KeptResults[StudySurvival] = KeptResults()


def kept_study_survival(session: Session, study: Study, site_ids: set[int] | None
                        ) -> StudySurvival:
    """``study_survival`` computed once per state of the data: the result is kept (per
    process, ``KeptResults``) until the audit chain moves, which every audited change
    does in its own transaction, or the day changes. The dashboards' panel and plot read
    it in one statement while nothing changes, whatever the number of subjects."""
    kept = _KEPT.get(session, (study.id, None if site_ids is None else frozenset(site_ids),
                               utcnow().date()),
                     lambda: study_survival(session, study, site_ids))
    return replace(kept, study=study)


def dashboard_survival(session: Session, user, study: Study) -> StudySurvival | None:
    """The dashboard panel's data: the estimates at the user's sites, or None for a study
    without a survival endpoint (the panel then shows nothing)."""
    try:
        return kept_study_survival(session, study,
                                   accounts.site_ids_for(user, "survival.view", study))
    except SurvivalError:
        return None


SURVIVAL_PANEL = DashboardPanel("safety.survival", frozenset({"data_manager", "sponsor_viewer"}),
                                "safety/_dashboard_survival.html", dashboard_survival)


def register() -> None:
    """Add the survival panel to the data manager's and sponsor's dashboards."""
    add_panel(SURVIVAL_PANEL)
