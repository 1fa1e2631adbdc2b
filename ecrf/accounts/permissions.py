"""The one permission table: every route and every action is decided here.

Actions name what a user may do; each maps to the roles that may do it. Routes map to a
decision: public, any signed-in user, or an action checked in a scope (the system, or the
study named in the URL). A route that is not in ``ROUTES`` is refused (and fails the
permission-matrix test), so forgetting a decision can never open a door.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecrf.accounts.roles import Role

A, DM, INV, CRC, MON, SV = (
    Role.ADMIN,
    Role.DATA_MANAGER,
    Role.INVESTIGATOR,
    Role.COORDINATOR,
    Role.MONITOR,
    Role.SPONSOR_VIEWER,
)

ACTIONS: dict[str, frozenset[Role]] = {
    # system administration
    "users.manage": frozenset({A}),
    "sites.manage": frozenset({A}),
    "security_log.view": frozenset({A}),
    "studies.manage": frozenset({A, DM}),
    # a study, read side
    "study.view": frozenset({DM, INV, CRC, MON, SV}),
    "subjects.view": frozenset({DM, INV, CRC, MON}),  # identifying, per-subject data
    "aggregate.view": frozenset({DM, INV, CRC, MON, SV}),
    "audit.view": frozenset({DM, INV, MON}),
    # study-wide endpoint results (overall survival, the study report): the data manager
    # and the sponsor; the sponsor sees aggregates only (no subject listing)
    "survival.view": frozenset({DM, SV}),
    # data capture
    "subjects.enrol": frozenset({INV, CRC}),
    "data.enter": frozenset({INV, CRC}),
    # review
    "queries.raise": frozenset({DM, MON}),
    "queries.answer": frozenset({INV, CRC}),
    "queries.close": frozenset({DM, MON}),
    "sdv.perform": frozenset({MON}),
    "data.sign": frozenset({INV}),
    "data.lock": frozenset({DM}),
    # safety: the investigator's clinical judgements (declining an AE for a graded lab,
    # confirming or rejecting a DLT, submitting an SAE report to the sponsor)
    "safety.assess": frozenset({INV}),
    # SAE notifications that could not be delivered: see them, send them again now
    "safety.notifications": frozenset({DM}),
    # allocation
    "subjects.randomize": frozenset({INV, CRC}),
    "randomization.manage": frozenset({DM}),
    "escalation.decide": frozenset({DM, INV}),
    "randomization.undo": frozenset({A}),  # a correction, with a reason; never a deletion
    # a stratification factor of a randomized subject: the allocation keeps its stratum
    "strata.correct": frozenset({DM}),
    # outputs
    "data.export": frozenset({DM}),
}


@dataclass(frozen=True)
class Public:
    """Anyone, signed in or not (login page, static files, health check)."""


@dataclass(frozen=True)
class SignedIn:
    """Any signed-in user; the view shows only what their grants allow."""


@dataclass(frozen=True)
class Allow:
    """The user must hold a role that grants ``action``.

    ``scope`` is ``system`` (a system-wide grant, i.e. admin) or ``study`` (a grant in the
    study named by the URL's ``study_oid``, or for ``studies.manage`` any grant of it).
    """

    action: str
    scope: str = "study"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise KeyError(f"unknown action {self.action!r} in the permission table")


PUBLIC = Public()
SIGNED_IN = SignedIn()

ROUTES: dict[str, Public | SignedIn | Allow] = {
    "static": PUBLIC,
    "bootstrap.static": PUBLIC,
    "main.health": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": SIGNED_IN,
    "auth.change_password": SIGNED_IN,
    "main.index": SIGNED_IN,
    "main.switch_study": SIGNED_IN,
    "main.set_language": PUBLIC,
    "main.profile": SIGNED_IN,
    "admin.users": Allow("users.manage", "system"),
    "admin.user_new": Allow("users.manage", "system"),
    "admin.user_detail": Allow("users.manage", "system"),
    "admin.user_disable": Allow("users.manage", "system"),
    "admin.user_enable": Allow("users.manage", "system"),
    "admin.user_reset_password": Allow("users.manage", "system"),
    "admin.user_grant": Allow("users.manage", "system"),
    "admin.user_revoke": Allow("users.manage", "system"),
    "admin.sites": Allow("sites.manage", "system"),
    "admin.site_new": Allow("sites.manage", "system"),
    "admin.security_log": Allow("security_log.view", "system"),
}


def register(endpoint: str, decision: Public | SignedIn | Allow) -> None:
    """Blueprints added by later areas declare their routes here, next to the table."""
    if endpoint in ROUTES and ROUTES[endpoint] != decision:
        raise ValueError(f"conflicting permission decisions for {endpoint!r}")
    ROUTES[endpoint] = decision
