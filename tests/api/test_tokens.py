"""API tokens: created with the secret shown once, stored hashed, used, expired, revoked,
refused for disabled accounts; every use and refusal audited; the CLI commands."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from sqlalchemy import select

from ecrf.accounts import tokens as api_tokens
from ecrf.accounts import users as accounts
from ecrf.accounts.models import ApiToken
from ecrf.core.audit.models import AuditEvent
from ecrf.core.base import utcnow
from ecrf.core.extensions import db
from tests.api import ADMIN, API, audit_rows, bearer, token_for
from tests.conftest import sign_in


def secret_on(html: str) -> str:
    match = re.search(r'id="token-secret" type="text" readonly\s+value="([^"]+)"', html)
    assert match, html[:3000]
    return match.group(1)


def test_a_token_is_created_on_the_account_page_and_shown_once(client, make_user):
    user = make_user("alice")
    sign_in(client, "alice")
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "You have no API tokens." in page and 'name="name"' in page
    response = client.post("/account/tokens", data={"name": "lab feed", "days": "30"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    secret = secret_on(html)
    assert len(secret) >= 40 and "shown only this once" in html
    assert "Authorization: Bearer &lt;token&gt;" in html
    assert all(secret not in c for c in response.headers.getlist("Set-Cookie"))
    token = db.session.scalar(select(ApiToken))
    assert token.user_id == user.id and token.name == "lab feed"
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:8]
    assert dt.timedelta(days=29, hours=23) < token.expires_at - token.created_at \
        <= dt.timedelta(days=30)
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert secret not in listing and f"{token.prefix}…" in listing and "lab feed" in listing
    # the secret is stored nowhere: not in the token row, not in the audit trail
    assert secret not in json.dumps([r.__dict__.get(c) for r in audit_rows()
                                     for c in ("old_value", "new_value", "details")])
    created = audit_rows(action="api_token.created")
    assert len(created) == 1 and created[0].category == "security"
    assert created[0].username == "alice" and created[0].new_value == token.prefix


@pytest.mark.parametrize("data, message", [
    ({"name": "", "days": "30"}, "This field is required."),
    ({"name": "feed", "days": "91"}, "a token is valid from 1 to 90 days"),
    ({"name": "feed", "days": "0"}, "a token is valid from 1 to 90 days"),
    ({"name": "feed", "days": "x"}, "Not a valid integer value."),
])
def test_bad_token_requests_are_refused_with_the_form_kept(client, make_user, data, message):
    make_user("alice")
    sign_in(client, "alice")
    response = client.post("/account/tokens", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(ApiToken)) is None


def test_the_maximum_lifetime_is_configurable(app_factory):
    app = app_factory(API_TOKEN_MAX_DAYS=10)
    with app.app_context():
        client = app.test_client()
        from ecrf.accounts.models import User
        from ecrf.accounts.passwords import hash_password
        from tests.conftest import PASSWORD
        db.session.add(User(username="bob", full_name="Bob", password_hash=hash_password(
            PASSWORD), must_change_password=False, active=True, failed_logins=0))
        db.session.commit()
        sign_in(client, "bob")
        response = client.post("/account/tokens", data={"name": "feed", "days": "30"})
        assert response.status_code == 422
        assert "from 1 to 10 days" in response.get_data(as_text=True)
        assert client.post("/account/tokens", data={"name": "feed", "days": "10"}
                           ).status_code == 200


def test_a_token_authenticates_api_calls_and_each_use_is_audited(client, make_user):
    user = make_user("alice")
    secret = token_for(user)
    for _ in range(3):
        response = client.get(f"{API}/studies", headers=bearer(secret))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["items"] == []
        assert "Set-Cookie" not in response.headers  # a token client has no session
    token = db.session.scalar(select(ApiToken))
    assert token.last_used_at is not None
    uses = audit_rows(action="api.request")
    assert len(uses) == 3
    assert all(r.category == "security" and r.username == "alice" and r.user_id == user.id
               for r in uses)
    assert json.loads(uses[0].details) == {"method": "GET", "path": f"{API}/studies",
                                           "token_prefix": token.prefix}


def _refused(client, secret: str | None, header: str | None = None):
    headers = {"Authorization": header} if header else (bearer(secret) if secret else {})
    response = client.get(f"{API}/studies", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="ecrf"')
    body = response.get_json()
    assert body["error"] == "Unauthorized"
    return body["message"]


def test_expired_tokens_are_refused(client, make_user):
    user = make_user("alice")
    secret = token_for(user, days=1, now=utcnow() - dt.timedelta(days=2))
    assert "expired on" in _refused(client, secret)
    refusal = audit_rows(action="api.auth_failed")
    assert len(refusal) == 1 and json.loads(refusal[0].details)["reason"] == "expired"
    assert audit_rows(action="api.request") == []
    assert db.session.scalar(select(ApiToken)).last_used_at is None


def test_revoked_tokens_are_refused_at_once(client, make_user):
    user = make_user("alice")
    secret = token_for(user)
    sign_in(client, "alice")
    token = db.session.scalar(select(ApiToken))
    response = client.post(f"/account/tokens/{token.id}/revoke")
    assert response.status_code == 302
    assert "revoked" in client.get("/account/tokens").get_data(as_text=True)
    db.session.refresh(token)
    assert token.revoked_at is not None and token.revoked_by_id == user.id
    api = client.application.test_client()
    assert "was revoked on" in _refused(api, secret)
    row = audit_rows(action="api_token.revoked")[0]
    assert row.old_value == "active" and row.new_value == "revoked"
    assert "already revoked" in client.post(
        f"/account/tokens/{token.id}/revoke", follow_redirects=True).get_data(as_text=True)


def test_a_user_cannot_revoke_someone_elses_token(client, make_user):
    owner = make_user("alice")
    token_for(owner)
    make_user("mallory")
    sign_in(client, "mallory")
    token = db.session.scalar(select(ApiToken))
    assert client.post(f"/account/tokens/{token.id}/revoke").status_code == 404
    assert "alice" not in client.get("/account/tokens").get_data(as_text=True)
    db.session.refresh(token)
    assert token.revoked_at is None


def test_tokens_of_a_disabled_account_are_refused(client, make_user):
    user = make_user("alice")
    secret = token_for(user)
    accounts.set_active(db.session, ADMIN, user, False, reason="left the site")
    db.session.commit()
    assert "is disabled" in _refused(client, secret)
    accounts.set_active(db.session, ADMIN, user, True)
    db.session.commit()
    assert client.get(f"{API}/studies", headers=bearer(secret)).status_code == 200


def test_an_account_that_must_change_its_password_cannot_use_tokens(client, make_user):
    user = make_user("alice", must_change=True)
    secret = token_for(user)
    assert "must change its password" in _refused(client, secret)


@pytest.mark.parametrize("header, message", [
    (None, "Authentication required"),
    ("Bearer not-a-real-token", "The API token is not valid."),
    ("Basic YWxpY2U6cGFzcw==", "Authorization: Bearer <token>"),
    ("Bearer ", "Authorization: Bearer <token>"),
])
def test_missing_unknown_and_malformed_credentials(client, make_user, header, message):
    assert message in _refused(client, None, header)
    if header == "Bearer not-a-real-token":
        row = audit_rows(action="api.auth_failed")[0]
        assert row.user_id is None and "not-a-real" not in (row.details or "")


def test_a_token_does_not_sign_in_to_the_screens(client, make_user):
    secret = token_for(make_user("alice"))
    response = client.get("/", headers=bearer(secret))
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert audit_rows(action="api.request") == []


def test_the_service_refuses_bad_tokens_requests(app, make_user):
    user = make_user("alice")
    with pytest.raises(api_tokens.TokenError, match="give the token a name"):
        api_tokens.create_token(db.session, ADMIN, user, "  ", days=5)
    with pytest.raises(api_tokens.TokenError, match="at most 100"):
        api_tokens.create_token(db.session, ADMIN, user, "x" * 101, days=5)
    user.active = False
    with pytest.raises(api_tokens.TokenError, match="is disabled"):
        api_tokens.create_token(db.session, ADMIN, user, "feed", days=5)


# --- command line -------------------------------------------------------------------------


def test_cli_creates_lists_and_revokes_tokens(runner, make_user, client):
    make_user("feed.lab")
    result = runner.invoke(args=["tokens", "create", "feed.lab", "--name", "lab feed",
                                 "--days", "7"])
    assert result.exit_code == 0, result.output
    secret = re.search(r"secret \(shown once, store it now\): (\S+)", result.output).group(1)
    token = db.session.scalar(select(ApiToken))
    assert token.token_hash == api_tokens.hash_secret(secret)
    assert client.get(f"{API}/studies", headers=bearer(secret)).status_code == 200
    listing = runner.invoke(args=["tokens", "list", "feed.lab"])
    assert listing.exit_code == 0 and f"{token.prefix}..." in listing.output
    assert secret not in listing.output and "active" in listing.output
    assert "lab feed" in runner.invoke(args=["tokens", "list"]).output
    result = runner.invoke(args=["tokens", "revoke", str(token.id)])
    assert result.exit_code == 0 and "revoked token" in result.output
    assert "revoked" in runner.invoke(args=["tokens", "list"]).output
    assert client.get(f"{API}/studies", headers=bearer(secret)).status_code == 401
    rows = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["api_token.created", "api_token.revoked"]))).all()
    assert [r.action for r in rows] == ["api_token.created", "api_token.revoked"]
    assert all(r.username.startswith("cli:") for r in rows)


def test_cli_defaults_to_the_maximum_lifetime(runner, make_user):
    make_user("feed.lab")
    result = runner.invoke(args=["tokens", "create", "feed.lab", "--name", "feed"])
    assert result.exit_code == 0, result.output
    token = db.session.scalar(select(ApiToken))
    assert token.expires_at - token.created_at == dt.timedelta(days=90)


@pytest.mark.parametrize("args, message", [
    (["tokens", "create", "nobody", "--name", "x"], "no user named 'nobody'"),
    (["tokens", "create", "feed.lab", "--name", "x", "--days", "400"], "from 1 to 90 days"),
    (["tokens", "revoke", "999"], "no API token with id 999"),
    (["tokens", "list", "nobody"], "no user named 'nobody'"),
])
def test_cli_errors_are_one_line_and_non_zero(runner, make_user, args, message):
    make_user("feed.lab")
    result = runner.invoke(args=args)
    assert result.exit_code != 0 and message in result.output
