"""Demo safety data: daily blood counts to day 42 for the UCMSC-Exo subjects (nadirs,
recoveries, one without neutrophil recovery, transfusions, a febrile neutropenia episode),
their AEs (one SAE, one DLT candidate) with decisions on the graded-lab prompts, and AEs
in both arms of DEXAML-03.

Everything goes through ``capture.save_form`` as the site's coordinator (decisions as its
investigator), so grading, the audit trail and the safety reactions apply. The reactions
are also run here after each save: they are idempotent, so this is harmless once capture
runs them itself. Values another demo step entered in these forms are corrected or
removed with a reason, as a monitor's finding would be. Idempotent: a subject whose data
is already there is skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import capture, safety
from ecrf.accounts import RoleGrant, User
from ecrf.capture import ItemValue, Subject, local_today
from ecrf.core import FormChange, ItemChange
from ecrf.core.audit import Actor
from ecrf.safety import AeGradePrompt, ae_log, load_ae_rows
from ecrf.studies import Study, definition_for

log = logging.getLogger(__name__)

ACK = "Confirmed against the source document."
REASON = "Corrected against the daily blood count sheet (source document)."
DECLINE = ("Expected myelosuppression of consolidation chemotherapy: cytopenias are "
           "recorded as haematological endpoints in the blood count form, not as AEs.")
DECLINE_SALVAGE = ("Expected myelosuppression of the salvage treatment in relapsed AML; "
                   "no clinical consequence beyond the expected nadir.")
# The most recent subject of each trial keeps its prompts open, to be decided in the demo.
KEEP_OPEN = {"WUH-006", "PAR-003"}


@dataclasses.dataclass(frozen=True)
class Profile:
    anc_nadir_day: int
    anc_recovery_day: int | None  # None: no neutrophil recovery by day 42
    plt_nadir_day: int
    plt_recovery_day: int
    hgb_low: int
    fever_days: tuple[int, ...] = ()
    missing_days: tuple[int, ...] = ()
    gcsf_day: int | None = None


PROFILES = {
    "WUH-001": Profile(11, 19, 13, 22, 72, fever_days=(11, 12, 13), missing_days=(27, 34),
                       gcsf_day=10),
    "WUH-002": Profile(12, 21, 14, 25, 68, missing_days=(30,), gcsf_day=12),
    "WUH-003": Profile(10, 18, 12, 20, 76, missing_days=(26, 33)),
    "WUH-004": Profile(12, None, 15, 29, 56, missing_days=(31,), gcsf_day=11),
    "WUH-005": Profile(11, 20, 13, 23, 70, missing_days=(28,)),
    "WUH-006": Profile(12, 22, 14, 24, 74),
}


def enter_safety_data(session: Session, actor: Actor, config) -> None:
    """Enter the safety demo data that is missing (safe to run again)."""
    rows = session.execute(select(Subject, Study.oid).join(Study, Study.id == Subject.study_id)
                           .where(Study.oid.in_(("UCMSCEXO", "DEXAML03")))
                           .order_by(Subject.subject_key)).all()
    for number, (subject, oid) in enumerate(rows):
        entrant = _staff(session, subject, "coordinator") or actor
        reviewer = _staff(session, subject, "investigator") or actor
        demo = _Demo(session, subject, entrant, reviewer, number)
        try:
            if oid == "UCMSCEXO" and subject.subject_key in PROFILES:
                demo.ucmsc(PROFILES[subject.subject_key])
            elif oid == "DEXAML03":
                demo.dexaml()
        except (capture.CaptureError, safety.SafetyError) as exc:
            log.warning("demo safety: %s skipped: %s", subject.subject_key, exc)


def _staff(session: Session, subject: Subject, role: str) -> Actor | None:
    user = session.scalar(select(User).join(RoleGrant, RoleGrant.user_id == User.id).where(
        RoleGrant.study_id == subject.study_id, RoleGrant.site_id == subject.site_id,
        RoleGrant.role == role, RoleGrant.revoked_at.is_(None), User.active))
    if user is None:
        return None
    return Actor(user_id=user.id, username=user.username, role=role,
                 site_code=subject.site.code)


def _q(value: float, places: int) -> str:
    step = Decimal(1).scaleb(-places)
    return format(Decimal(str(value)).quantize(step, ROUND_HALF_UP), "f")


class _Demo:
    def __init__(self, session: Session, subject: Subject, entrant: Actor, reviewer: Actor,
                 number: int):
        self.session, self.subject = session, subject
        self.entrant, self.reviewer, self.number = entrant, reviewer, number
        self.definition = definition_for(subject.study_version)
        self.today = local_today(subject.site.timezone)

    # --- saving -------------------------------------------------------------------------------

    def save(self, event: str, form: str, values: dict, *, repeat: int = 1,
             day: dt.date | None = None, removed: dict | None = None,
             actor: Actor | None = None) -> capture.SaveResult | None:
        actor = actor or self.entrant
        if capture.event_instance(self.session, self.subject, event, repeat) is None:
            kind_log = self.definition.event(event).kind.value == "log"
            capture.open_event(self.session, actor, self.subject, event, repeat,
                               None if kind_log else min(day or self.today, self.today),
                               today=self.today)
        opened = capture.load_form(self.session, self.subject, event, repeat, form,
                                   today=self.today)
        saved = {k for k, v in opened.values.items() if v is not None}
        submission = capture.Submission(values=values, partial=True, removed_rows=removed or {},
                                        reasons={k: REASON for k in values if k in saved})
        _, preview = capture.preview_form(self.session, self.subject, event, repeat, form,
                                          submission, today=self.today)
        submission = dataclasses.replace(
            submission, acknowledgements={w.key: ACK for w in preview.warnings})
        result = None
        for complete in (True, False):
            result = capture.save_form(self.session, actor, self.subject, event, repeat, form,
                                       submission, base_version=opened.version,
                                       complete=complete, today=self.today)
            if result.saved:
                break
        if not result.saved:
            log.info("demo safety: %s %s not saved: %s", self.subject.subject_key, form,
                     [str(m) for ms in result.errors.values() for m in ms][:3])
            return None
        if result.form_instance is not None:
            safety.react_to_save(FormChange(
                self.session, actor, self.subject, event, repeat, form, result.form_instance,
                tuple(ItemChange(g, r, i, None, None) for g, r, i in result.changed),
                tuple((removed or {}).keys())))
        return result

    def rows(self, event: str, form: str, group: str, wanted: list[dict], *,
             day: dt.date | None = None, extra: dict | None = None) -> None:
        """Make the group's live rows exactly ``wanted`` (correcting or removing others)."""
        live, following = [], 1
        if capture.event_instance(self.session, self.subject, event, 1) is not None:
            opened = capture.load_form(self.session, self.subject, event, 1, form,
                                       today=self.today)
            live, following = list(opened.rows.get(group, ())), opened.next_row(group)
        numbers = live[:len(wanted)] + list(range(following, following + max(
            0, len(wanted) - len(live))))
        values = dict(extra or {})
        # Every item of a rewritten row is given (blank when not wanted): a partial save
        # would otherwise keep what another demo step typed there.
        items_of = [i.oid for i in self.definition.form(form).group(group).items]
        for number, items in zip(numbers, wanted, strict=True):
            values.update({(group, number, k): items.get(k) or "" for k in items_of})
        removed = {(group, r): "Entered in error: not in the source document."
                   for r in live[len(wanted):]}
        self.save(event, form, values, day=day, removed=removed)

    def stored(self, form: str, item: str) -> str | None:
        return self.session.scalar(select(ItemValue.value).where(
            ItemValue.subject_id == self.subject.id, ItemValue.form_oid == form,
            ItemValue.item_oid == item, ItemValue.value.is_not(None)).order_by(ItemValue.id))

    # --- UCMSC-Exo ----------------------------------------------------------------------------

    def ucmsc(self, profile: Profile) -> None:
        rows = capture.load_form(self.session, self.subject, "HEMOBS", 1, "COUNTS",
                                 today=self.today).rows if capture.event_instance(
            self.session, self.subject, "HEMOBS", 1) else {}
        if len(rows.get("CNT_DAY", ())) >= 20:
            return  # already entered
        d1 = self.day_one()
        infusion = self.infusion(d1)
        self.counts(d1, profile)
        self.episodes(d1, profile)
        self.adverse_events(d1, infusion, profile)
        self.decide_prompts()

    def day_one(self) -> dt.date:
        text = self.stored("CHEMO", "CHEMOD1")
        if text:
            return dt.date.fromisoformat(text)
        d1 = min(self.subject.enrolled_on + dt.timedelta(days=3), self.today)
        self.save("CHEMO_D1", "CHEMO", {("CHEMO_COURSE", 1, k): v for k, v in {
            "CHEMOD1": d1.isoformat(), "CONSNO": "1", "REGIMEN": "IDAC", "WEIGHT": "62.0",
            "HEIGHT": "168", "BSA": "1.70"}.items()} | {("CHEMO_ARAC", 1, k): v for k, v in {
            "ARACDOSE": "1000", "ARACFREQ": "2", "ARACSCHED": "1-3", "ARACNADM": "6",
            "CHEMOENDT": (d1 + dt.timedelta(days=2)).isoformat(), "DOSERED": "N"}.items()},
            day=d1)
        return d1

    def infusion(self, d1: dt.date) -> dt.date:
        text = self.stored("INF", "INFDT")
        if text:
            return dt.date.fromisoformat(text)
        day = min(d1 + dt.timedelta(days=6), self.today)
        level = str(self.subject.dose_level or 1)
        dose = self.definition.parameter_values().get(f"dose_level_{level}") or Decimal(1)
        admin = {"INFDT": day.isoformat(), "DOSELVL": level, "WEIGHT": "62.0",
                 "DOSEKG": _q(float(dose), 2), "LOTNO": f"EXO-2025-{17 + self.number:03d}",
                 "PREMED": "N", "INFSTTM": "09:30", "INFENTM": "10:10", "VOLPLAN": "50.0",
                 "VOLINF": "50.0", "FULLDOSE": "Y"}
        pre = {"PRETEMP": "36.6", "PRESBP": "118", "PREDBP": "72", "PREHR": "78",
               "PRERR": "16", "PRESPO2": "98"}
        post = {"POSTTM": "11:10", "POSTTEMP": "36.8", "POSTSBP": "121", "POSTDBP": "75",
                "POSTHR": "80", "POSTRR": "16", "POSTSPO2": "98"}
        values = {("INF_ADMIN", 1, k): v for k, v in admin.items()}
        values |= {("INF_VSPRE", 1, k): v for k, v in pre.items()}
        values |= {("INF_VSPOST", 1, k): v for k, v in post.items()}
        values[("INF_REACT", 1, "IRR")] = "N"
        self.save("INFUSION", "INF", values, day=day)
        return day

    def counts(self, d1: dt.date, p: Profile) -> None:
        wanted, anc, plt, hgb = [], 3.2, 190.0, 112.0
        plt_tx = rbc_tx = False
        for n in range(1, 43):
            on = d1 + dt.timedelta(days=n - 1)
            anc = _anc(n, p, anc)
            plt, hgb = _plt(n, p, plt, plt_tx), _hgb(n, p, hgb, rbc_tx)
            # Counts are drawn before the day's transfusion, which shows the next day.
            plt_tx = plt < 15 and n < p.plt_recovery_day
            rbc_tx = hgb <= p.hgb_low + 1
            if on > self.today or n in p.missing_days:
                continue
            fever = n in p.fever_days
            wanted.append({
                "LBDT": on.isoformat(), "WBC": _q(anc + 0.35 + (n % 5) * 0.08, 2),
                "ANC": _q(anc, 2), "HGB": str(round(hgb)), "PLT": str(max(1, round(plt))),
                "TMAX": _q(38.7 + (n % 3) * 0.2 if fever else 36.6 + (n % 4) * 0.15, 1),
                "RBCTX": "Y" if rbc_tx else "N", "RBCU": "2.0" if rbc_tx else None,
                "PLTTX": "Y" if plt_tx else "N", "PLTU": "1.0" if plt_tx else None})
        gcsf = {"GCSF": "Y" if p.gcsf_day else "N", "TPO": "N", "TPODT": "",
                "GCSFDT": (d1 + dt.timedelta(days=p.gcsf_day - 1)).isoformat()
                if p.gcsf_day else ""}
        self.rows("HEMOBS", "COUNTS", "CNT_DAY", wanted, day=min(d1 + dt.timedelta(days=41),
                                                                   self.today),
                  extra={("CNT_GF", 1, k): v for k, v in gcsf.items()})

    def episodes(self, d1: dt.date, p: Profile) -> None:
        def on(n: int) -> str:
            return (d1 + dt.timedelta(days=n - 1)).isoformat()

        fn = [{"FNSTDT": on(p.fever_days[0]), "FNSTTM": "22:40", "FNANC": "0.04",
               "FNTEMP": "38.9", "FNSUST": "Y", "FNGRADE": "3", "FNCULT": "NEG",
               "FNINFDOC": "N", "FNONGO": "N", "FNENDT": on(p.fever_days[-1])}] \
            if p.fever_days else []
        self.rows("HEMOBS", "FN", "FN_LINE", fn, extra={("FN_ANY", 1, "FNANY"):
                                                         "Y" if fn else "N"})
        infections = [{"INFSTDT": on(13), "INFSITE": "BLOOD", "INFDOC": "MICRO",
                       "PATHTYPE": "GNEG", "PATHNAME": "Escherichia coli", "INFGRADE": "4",
                       "INFONGO": "N", "INFENDT": on(20)}] \
            if self.subject.subject_key == "WUH-002" else []
        self.rows("HEMOBS", "INFECT", "INFECT_LINE", infections,
                  extra={("INFECT_ANY", 1, "INFANY"): "Y" if infections else "N"})
        bleeds = [{"BLSTDT": on(p.plt_nadir_day), "BLSITE": "NOSE", "BLGRADE": "1",
                   "BLPLTTX": "N", "BLRBCTX": "N", "BLONGO": "N",
                   "BLENDT": on(p.plt_nadir_day + 1)}] if p.hgb_low < 60 else []
        self.rows("HEMOBS", "BLEED", "BLEED_LINE", bleeds,
                  extra={("BLEED_ANY", 1, "BLANY"): "Y" if bleeds else "N"})
        courses = []
        if p.fever_days or infections:
            start = p.fever_days[0] if p.fever_days else 13
            courses = [{"AISTDT": on(start), "AITRT": "Piperacillin-tazobactam",
                        "AICLASS": "ANTIBACTERIAL", "AIINDC": "EMPIRICAL",
                        "AIROUTE": "INTRAVENOUS", "AIONGO": "N", "AIENDT": on(start + 6)}]
        self.rows("HEMOBS", "ANTIINF", "ANTIINF_LINE", courses,
                  extra={("ANTIINF_ANY", 1, "AIANY"): "Y" if courses else "N"})

    def adverse_events(self, d1: dt.date, infusion: dt.date, p: Profile) -> None:
        log_ = ae_log(self.definition)
        if log_ is None:
            return

        def on(n: int) -> str:
            return min(d1 + dt.timedelta(days=n - 1), self.today).isoformat()

        after = {"AEACN": "NOT APPLICABLE"}
        key = self.subject.subject_key
        events = {
            "WUH-001": [dict(AETERM="Febrile neutropenia", AESTDTC=on(11), AEENDTC=on(13),
                             AETOXGR="3", AERELEXO="unlikely", AERELCHM="probable", **after)],
            "WUH-002": [dict(AETERM="Sepsis", AESTDTC=on(13), AEENDTC=on(20), AETOXGR="4",
                             AESER="Y", AESDTH="N", AESLIFE="Y", AESHOSP="Y", AESDISAB="N",
                             AESCONG="N", AESMIE="N", AESAWDTC=f"{on(13)} 10:20",
                             AESRPDTC=f"{on(13)} 17:45", AEEXPECT="EXPECTED",
                             AERELEXO="unlikely", AERELCHM="probable", **after)],
            "WUH-003": [dict(AETERM="Fatigue", AESTDTC=on(5), AEENDTC=on(9), AETOXGR="1",
                             AERELEXO="unrelated", AERELCHM="probable", **after)],
            "WUH-004": [dict(AETERM="Anemia", AESTDTC=on(16), AEENDTC=on(24), AETOXGR="3",
                             AERELEXO="unrelated", AERELCHM="probable", **after)],
            "WUH-005": [dict(AETERM="Nausea", AESTDTC=on(2), AEENDTC=on(4), AETOXGR="1",
                             AERELEXO="unrelated", AERELCHM="probable",
                             AEACN="DOSE NOT CHANGED"),
                        dict(AETERM="Infusion related reaction", AESTDTC=infusion.isoformat(),
                             AEENDTC=infusion.isoformat(), AETOXGR="1", AERELEXO="possible",
                             AERELCHM="unrelated", AEDLT="N", **after),
                        # The level-2 DLT the escalation demo counts (demo.yaml agrees).
                        dict(AETERM="Hypoxia", AESTDTC=(infusion + dt.timedelta(days=1))
                             .isoformat(), AEENDTC=(infusion + dt.timedelta(days=3)).isoformat(),
                             AETOXGR="3", AERELEXO="possible", AERELCHM="unlikely",
                             AEDLT="Y", **after)],
            "WUH-006": [dict(AETERM="Mucositis oral", AESTDTC=on(9), AETOXGR="2",
                             AERELEXO="unrelated", AERELCHM="probable", **after)],
        }.get(key, [])
        self.add_aes(log_, [self.complete_ae(e) for e in events])

    def complete_ae(self, event: dict) -> dict:
        ongoing = "AEENDTC" not in event
        base = {"AESER": "N", "AECONTRT": "Y", "AEONGO": "Y" if ongoing else "N",
                "AEOUT": "RECOVERING/RESOLVING" if ongoing else "RECOVERED/RESOLVED"}
        return {**base, **event}

    def add_aes(self, log_, events: list[dict]) -> None:
        existing = load_ae_rows(self.session, [self.subject.id], log_).get(self.subject.id, [])
        terms = {r.term for r in existing}
        wanted = [e for e in events if e.get(log_.spec.term) not in terms]
        if not wanted or log_.event_oid is None:
            return
        if capture.event_instance(self.session, self.subject, log_.event_oid, 1) is None:
            capture.open_event(self.session, self.entrant, self.subject, log_.event_oid, 1,
                               None, today=self.today)
        opened = capture.load_form(self.session, self.subject, log_.event_oid, 1, log_.form_oid,
                                   today=self.today)
        first = opened.next_row(log_.group)
        values = {}
        for offset, event in enumerate(wanted):
            values.update({(log_.group, first + offset, k): v for k, v in event.items()})
        self.save(log_.event_oid, log_.form_oid, values)

    def decide_prompts(self, reason: str = DECLINE) -> None:
        """The investigator declines the expected cytopenias, links the anaemia to its AE
        and leaves the most recent subject's prompts open for the demo."""
        if self.subject.subject_key in KEEP_OPEN:
            return
        prompts = self.session.scalars(select(AeGradePrompt).where(
            AeGradePrompt.subject_id == self.subject.id, AeGradePrompt.status == "open")
            .order_by(AeGradePrompt.id)).all()
        log_ = ae_log(self.definition)
        rows = load_ae_rows(self.session, [self.subject.id], log_).get(self.subject.id, []) \
            if log_ is not None else []
        for prompt in prompts:
            match = next((r for r in rows if r.term == prompt.term), None)
            if match is not None:
                safety.accept_prompt(self.session, self.reviewer, prompt, link_row=match.row,
                                     today=self.today)
            else:
                safety.decline_prompt(self.session, self.reviewer, prompt, reason)

    # --- DEXAML-03 ----------------------------------------------------------------------------

    def dexaml(self) -> None:
        log_ = ae_log(self.definition)
        start = self.subject.enrolled_on
        if log_ is None or (self.today - start).days < 20:
            return
        dex = self.subject.arm == "DEX"

        def on(days: int) -> str:
            return min(start + dt.timedelta(days=days), self.today).isoformat()

        arm = {"AERELDEX": "probable", "AEACNDEX": "DOSE NOT CHANGED"} if dex else {}
        first = dict(AETERM="Hyperglycemia" if dex else "Nausea", AESTDTC=on(9),
                     AEENDTC=on(15), AETOXGR="2" if dex else "1", AEACNSAL="DOSE NOT CHANGED",
                     AERELCYT="unlikely" if dex else "possible", **arm)
        second = dict(AETERM="Febrile neutropenia", AESTDTC=on(14), AEENDTC=on(19),
                      AETOXGR="3", AERELCYT="probable", AEACNSAL="NOT APPLICABLE",
                      **({"AERELDEX": "unlikely", "AEACNDEX": "NOT APPLICABLE"} if dex else {}))
        self.add_aes(log_, [self.complete_ae(first), self.complete_ae(second)])
        self.decide_prompts(DECLINE_SALVAGE)


def _anc(n: int, p: Profile, last: float) -> float:
    if n <= 4:
        return 3.2 - 0.1 * n
    if n <= p.anc_nadir_day:
        return max(0.02, last * 0.45)
    if p.anc_recovery_day is None:
        # Creeps up but never holds 0.5 for three days: no recovery by day 42.
        return 0.12 + ((n * 7) % 11) * 0.028
    if n < p.anc_recovery_day - 2:
        return 0.03 + 0.01 * (n % 3)
    if n < p.anc_recovery_day:
        return 0.2 if n == p.anc_recovery_day - 2 else 0.38
    return min(3.6 + (n % 5) * 0.25, max(0.62, last * 1.45))


def _plt(n: int, p: Profile, last: float, transfused: bool) -> float:
    if n <= 3:
        return 190.0
    boost = 14.0 if transfused else 0.0
    if n <= p.plt_nadir_day:
        return max(8.0, last * 0.72 + boost)
    if n < p.plt_recovery_day:
        return max(9.0, min(19.0, last * 0.9 + boost))
    return min(175.0 + (n % 6) * 9, max(24.0, last * 1.3))


def _hgb(n: int, p: Profile, last: float, transfused: bool) -> float:
    if transfused:
        return last + 14
    if n <= 17:
        return max(float(p.hgb_low), last - 3.5)
    return min(112.0, last + 1.2)
