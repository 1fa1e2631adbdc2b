"""Who may do what, where: user accounts, role grants per study and site, the one
permission table that decides every route, password hashing and policy, server-side
login sessions, personal API tokens, the permission gate in front of every request, and
the sign-in, account, administration and token pages."""

from __future__ import annotations

from flask import Flask

from ecrf.accounts.access import (
    acting_role,
    active_grants,
    can,
    is_admin,
    roles_in_study,
    scope_to_sites,
    site_ids_for,
    studies_for,
)
from ecrf.accounts.models import ApiToken, RoleGrant, User, UserSession
from ecrf.accounts.passwords import hash_password, policy_from_config, verify_password
from ecrf.accounts.permissions import ACTIONS, PUBLIC, ROUTES, SIGNED_IN, Allow, Public, SignedIn
from ecrf.accounts.permissions import register as register_route
from ecrf.accounts.roles import ROLE_LABELS, SITE_ROLES, Role, RoleError, parse_role
from ecrf.accounts.throttle import api_key as api_throttle_key
from ecrf.accounts.throttle import policy_from_config as throttle_policy
from ecrf.accounts.throttle import register_failure as throttle_failure
from ecrf.accounts.throttle import seconds_to_wait as throttle_wait
from ecrf.accounts.tokens import AuthenticationError
from ecrf.accounts.tokens import authenticate as authenticate_token
from ecrf.accounts.users import (
    AccountError,
    create_user,
    failed_signature,
    get_user,
    grant_role,
    signing_locked_out,
)
from ecrf.accounts.users import describe as describe_grant
from ecrf.accounts.web import current_study, request_actor, study_features

__all__ = [
    "ACTIONS", "AccountError", "Allow", "ApiToken", "AuthenticationError", "PUBLIC",
    "api_throttle_key", "throttle_failure", "throttle_policy", "throttle_wait",
    "Public", "ROLE_LABELS", "ROUTES", "Role", "RoleError", "RoleGrant", "SIGNED_IN",
    "SITE_ROLES", "SignedIn", "User", "UserSession", "acting_role", "active_grants",
    "authenticate_token", "can", "create_user", "current_study", "describe_grant",
    "failed_signature", "get_user", "grant_role", "hash_password", "is_admin",
    "parse_role", "policy_from_config", "register", "register_route", "request_actor",
    "roles_in_study", "scope_to_sites", "signing_locked_out", "site_ids_for",
    "studies_for", "study_features", "verify_password",
]


def register(app: Flask) -> None:
    """Sign-in sessions and the permission gate, the account, administration and token
    pages, and the ``users`` and ``tokens`` commands; called by the app factory."""
    from ecrf.accounts import web
    from ecrf.accounts.cli import tokens_cli, users_cli
    from ecrf.accounts.passwords import configure_hasher
    from ecrf.accounts.views import admin, auth, main, tokens

    if app.config.get("ARGON2_TIME_COST"):
        configure_hasher(time_cost=app.config["ARGON2_TIME_COST"],
                         memory_cost=app.config["ARGON2_MEMORY_COST"],
                         parallelism=app.config.get("ARGON2_PARALLELISM", 1))
    web.install(app)
    for blueprint in (auth.bp, main.bp, admin.bp, tokens.bp):
        app.register_blueprint(blueprint)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
