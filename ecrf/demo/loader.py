"""Demo content for `make run`: sites, users of every role, both trials, subjects.

Idempotent: running it again adds only what is missing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import accounts, studies
from ecrf.accounts import Role, policy_from_config
from ecrf.capture import Subject
from ecrf.core.audit import Actor
from ecrf.studies import Study

DEMO_PASSWORD = "Ecrf-demo-2026"
# Signs the demo's dose-escalation decisions (a data manager of the study).
DECISION_MAKER = "dm.lead"
MAX_COHORT_ROUNDS = 5

SITES = [
    ("TLS", "CHU de Toulouse", "Europe/Paris", "FR"),
    ("PAR", "Hôpital Saint-Louis, Paris", "Europe/Paris", "FR"),
    ("WUH", "Wuhan Union Hospital", "Asia/Shanghai", "CN"),
]

STUDY_SITES = {"DEXAML03": ["TLS", "PAR"], "UCMSCEXO": ["WUH"]}

# (username, full name, [(role, study, site)])
USERS = [
    ("admin", "Alex Admin", [(Role.ADMIN, None, None)]),
    ("dm.lead", "Dana Moreau", [(Role.DATA_MANAGER, "DEXAML03", None),
                                (Role.DATA_MANAGER, "UCMSCEXO", None)]),
    ("inv.toulouse", "Dr Claire Dupont", [(Role.INVESTIGATOR, "DEXAML03", "TLS")]),
    ("crc.toulouse", "Julien Martin", [(Role.COORDINATOR, "DEXAML03", "TLS")]),
    ("inv.paris", "Dr Hugo Bernard", [(Role.INVESTIGATOR, "DEXAML03", "PAR")]),
    ("crc.paris", "Léa Petit", [(Role.COORDINATOR, "DEXAML03", "PAR")]),
    ("inv.wuhan", "Dr Li Wei", [(Role.INVESTIGATOR, "UCMSCEXO", "WUH")]),
    ("crc.wuhan", "Zhang Min", [(Role.COORDINATOR, "UCMSCEXO", "WUH")]),
    ("monitor", "Marc Leroy", [(Role.MONITOR, "DEXAML03", None),
                               (Role.MONITOR, "UCMSCEXO", None)]),
    ("sponsor", "Sophie Girard", [(Role.SPONSOR_VIEWER, "DEXAML03", None),
                                  (Role.SPONSOR_VIEWER, "UCMSCEXO", None)]),
]


def load_demo(session: Session, actor: Actor, config) -> str:
    from ecrf.demo import data as demo_data
    from ecrf.demo import safety as demo_safety
    from ecrf.demo import studies as demo_studies

    loaded = demo_studies.ensure_studies(session, actor, config)
    site_rows = {}
    for code, name, tz, country in SITES:
        site = studies.get_site(session, code) or studies.create_site(
            session, actor, code=code, name=name, timezone=tz, country=country)
        site_rows[code] = site
    for oid, codes in STUDY_SITES.items():
        for code in codes:
            studies.add_site_to_study(session, actor, loaded[oid], site_rows[code])
    session.flush()
    for study in loaded.values():
        session.refresh(study)
    policy = policy_from_config(config)
    for username, full_name, grants in USERS:
        user = accounts.get_user(session, username)
        if user is None:
            user, _ = accounts.create_user(session, actor, username=username, full_name=full_name,
                                           password=DEMO_PASSWORD, temporary=False, policy=policy)
        held = {(g.role, g.study_id, g.site_id) for g in user.active_grants()}
        for role, oid, code in grants:
            study = loaded[oid] if oid else None
            site = site_rows[code] if code else None
            key = (role.value, study.id if study else None, site.id if site else None)
            if key not in held:
                accounts.grant_role(session, actor, user, role, study=study, site=site)
    demo_studies.enrol_subjects(session, actor, config)
    notes = _allocate(session, actor, loaded, before_data=True, config=config)
    demo_data.enter_data(session, actor, config)
    notes += _allocate(session, actor, loaded, before_data=False, config=config)
    # Subjects given a dose level by a cohort decision are filled now; their own DLT
    # assessments may in turn complete the next cohort.
    for _round in range(MAX_COHORT_ROUNDS):
        if not demo_data.enter_data(session, actor, config):
            break
        notes += _allocate(session, actor, loaded, before_data=False, config=config)
    demo_safety.enter_safety_data(session, actor, config)
    lines = ["Demo data ready.", "", f"Demo accounts (password for all: {DEMO_PASSWORD}):"]
    for username, _full_name, grants in USERS:
        roles = "; ".join(accounts.describe_grant(r, loaded[o] if o else None,
                                            site_rows[c] if c else None) for r, o, c in grants)
        lines.append(f"  {username:<14} {roles}")
    if notes:
        lines += ["", "Not done in the demo (the screens show why):", *(f"  {n}" for n in notes)]
    return "\n".join(lines)


def _site_actor(session: Session, subject: Subject, prefix: str, role: Role) -> Actor:
    user = accounts.get_user(session, f"{prefix}.{_SITE_USERS[subject.site.code]}")
    return Actor(user_id=user.id, username=user.username, role=role.value,
                 site_code=subject.site.code)


_SITE_USERS = {"TLS": "toulouse", "PAR": "paris", "WUH": "wuhan"}


def _allocate(session: Session, actor: Actor, loaded: dict[str, Study], *,
              before_data: bool, config=None) -> list[str]:
    """Randomization list and allocations (DEXAML-03), dose levels (UCMSC-Exo).

    Dose levels are assigned before data entry (the infusion records the level), as far as
    the open level has places; subjects are randomized after it, once their eligibility and
    consent are recorded. After data entry a full cohort whose DLT assessments are all in is
    reviewed: the data manager signs the decision the 3+3 rule proposes, and the waiting
    subjects get the level it opens (their data is entered next).
    """
    from ecrf import allocation

    notes: list[str] = []
    dex, exo = loaded["DEXAML03"], loaded["UCMSCEXO"]
    if before_data:
        if allocation.active_list(session, dex) is None:
            allocation.generate_list(session, actor, dex, seed="ecrf-demo-2026",
                                         per_stratum=24, name="Demo production list")
        return _assign_levels(session, exo)
    for subject in _subjects(session, dex):
        if subject.arm or not allocation.check_readiness(session, subject).ok:
            continue
        try:
            allocation.randomize(
                session, _site_actor(session, subject, "crc", Role.COORDINATOR), subject)
        except allocation.NotRandomizable as exc:
            notes.append(f"{subject.subject_key}: not randomized ({exc})")
    if _review_cohort(session, exo, config):
        notes += _assign_levels(session, exo)
    return notes


def _subjects(session: Session, study: Study) -> list[Subject]:
    return list(session.scalars(select(Subject).where(Subject.study_id == study.id)
                                .order_by(Subject.subject_key)))


def _waiting(session: Session, study: Study) -> list[Subject]:
    from ecrf.allocation import CLOSED_STATUSES
    from ecrf.demo.studies import SCREEN_FAILURES

    return [s for s in _subjects(session, study)
            if s.dose_level is None and s.status not in CLOSED_STATUSES
            and (study.oid, s.subject_key) not in SCREEN_FAILURES]


def _assign_levels(session: Session, study: Study) -> list[str]:
    """The open level to waiting subjects, in enrolment order, while it has places; the
    others wait for the review of the cohort."""
    from ecrf import allocation

    state = allocation.escalation_board(session, study)
    if state.current_level is None:
        return []
    row = state.level(state.current_level)
    notes: list[str] = []
    for subject in _waiting(session, study)[:max(0, row.capacity - len(row.subjects))]:
        try:
            allocation.assign_dose_level(
                session, _site_actor(session, subject, "inv", Role.INVESTIGATOR), subject)
        except allocation.EscalationServiceError as exc:
            notes.append(f"{subject.subject_key}: no dose level ({exc})")
    return notes


def _review_cohort(session: Session, study: Study, config) -> bool:
    """Sign the rule's decision on a full, fully assessed cohort when subjects wait for it.

    Returns whether a decision was recorded. Only the decisions that keep enrolling
    (escalate, stay, de-escalate) are taken: declaring the MTD or stopping is left to the
    person trying the demo.
    """
    from ecrf import allocation

    if config is None or not _waiting(session, study):
        return False
    state = allocation.escalation_board(session, study)
    if state.current_level is None or state.proposal is None:
        return False
    row = state.level(state.current_level)
    decision = state.proposed_decision
    if len(row.subjects) < row.capacity or row.pending or decision not in (
            "escalate", "stay", "de-escalate") or decision not in state.allowed:
        return False
    user = accounts.get_user(session, DECISION_MAKER)
    if user is None:
        return False
    signer = Actor(user_id=user.id, username=user.username, role=Role.DATA_MANAGER.value)
    allocation.record_decision(
        session, signer, study, action=decision,
        reason=f"Safety review of the level {row.level} cohort: {state.proposal.reason}",
        password=DEMO_PASSWORD, lockout_threshold=config["LOCKOUT_THRESHOLD"],
        lockout_minutes=config["LOCKOUT_MINUTES"])
    return True
