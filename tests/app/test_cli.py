"""The `ecrf` command: users, sites, demo and audit verification through the CLI runner."""

from __future__ import annotations

from sqlalchemy import select

from ecrf.accounts.models import RoleGrant, User
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.studies.models import Site


def run(runner, *args, input=None):
    return runner.invoke(args=list(args), input=input)


def test_users_create_prints_a_temporary_password(runner):
    result = run(runner, "users", "create", "nina", "--name", "Nina Simone")
    assert result.exit_code == 0, result.output
    assert "created nina" in result.output and "temporary password" in result.output
    user = db.session.scalar(select(User).where(User.username == "nina"))
    assert user.must_change_password and user.password_hash.startswith("$argon2id$")


def test_users_create_with_a_permanent_password_from_stdin(runner):
    result = run(runner, "users", "create", "omar", "--name", "Omar K", "--password-stdin",
                 input="Permanent-Secret-99\n")
    assert result.exit_code == 0, result.output
    assert not db.session.scalar(select(User).where(User.username == "omar")).must_change_password


def test_users_create_refuses_a_weak_password_with_one_line(runner):
    result = run(runner, "users", "create", "pat", "--name", "Pat", "--password-stdin", input="short\n")
    assert result.exit_code != 0
    assert result.output.strip().startswith("Error:") and "12 characters" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_duplicate_and_invalid_usernames_are_refused(runner):
    assert run(runner, "users", "create", "quinn", "--name", "Q").exit_code == 0
    dup = run(runner, "users", "create", "Quinn", "--name", "Q")
    assert dup.exit_code != 0 and "already exists" in dup.output
    bad = run(runner, "users", "create", "1bad name", "--name", "Bad")
    assert bad.exit_code != 0 and "not valid" in bad.output


def test_grant_revoke_and_scope_errors(runner, make_study):
    make_study("TRIAL1", sites=("S01",))
    run(runner, "users", "create", "rita", "--name", "Rita")
    ok = run(runner, "users", "grant", "rita", "investigator", "--study", "TRIAL1", "--site", "S01")
    assert ok.exit_code == 0, ok.output
    no_site = run(runner, "users", "grant", "rita", "coordinator", "--study", "TRIAL1")
    assert no_site.exit_code != 0 and "per site" in no_site.output
    again = run(runner, "users", "grant", "rita", "investigator", "--study", "TRIAL1", "--site", "S01")
    assert again.exit_code != 0 and "already holds" in again.output
    bad_role = run(runner, "users", "grant", "rita", "pilot", "--study", "TRIAL1")
    assert bad_role.exit_code != 0 and "unknown role" in bad_role.output
    no_study = run(runner, "users", "grant", "rita", "monitor", "--study", "NOPE")
    assert no_study.exit_code != 0 and "no study" in no_study.output
    listed = run(runner, "users", "list")
    assert "investigator in TRIAL1 at S01" in listed.output
    revoked = run(runner, "users", "revoke", "rita", "investigator", "--study", "TRIAL1",
                  "--site", "S01", "--reason", "left the site")
    assert revoked.exit_code == 0, revoked.output
    grant = db.session.scalar(select(RoleGrant))
    assert grant.revoked_at is not None  # kept, never deleted
    again = run(runner, "users", "revoke", "rita", "investigator", "--study", "TRIAL1", "--site", "S01")
    assert again.exit_code != 0 and "holds no active" in again.output
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"user.created", "role.granted", "role.revoked"} <= actions


def test_grant_at_a_site_outside_the_study_is_refused(runner, make_study, make_site):
    make_study("TRIAL1", sites=("S01",))
    make_site("S99")
    run(runner, "users", "create", "sam", "--name", "Sam")
    result = run(runner, "users", "grant", "sam", "coordinator", "--study", "TRIAL1", "--site", "S99")
    assert result.exit_code != 0 and "does not take part" in result.output


def test_disable_enable_and_reset_password(runner):
    run(runner, "users", "create", "tess", "--name", "Tess")
    assert run(runner, "users", "disable", "tess", "--reason", "left").exit_code == 0
    assert not db.session.scalar(select(User).where(User.username == "tess")).active
    again = run(runner, "users", "disable", "tess")
    assert again.exit_code != 0 and "already disabled" in again.output
    assert run(runner, "users", "enable", "tess").exit_code == 0
    reset = run(runner, "users", "reset-password", "tess")
    assert reset.exit_code == 0 and "temporary password for tess" in reset.output
    missing = run(runner, "users", "disable", "ghost")
    assert missing.exit_code != 0 and "no user named 'ghost'" in missing.output


def test_sites_create_and_list(runner):
    ok = run(runner, "sites", "create", "par", "Hôpital Saint-Louis", "--timezone", "Europe/Paris",
             "--country", "fr")
    assert ok.exit_code == 0, ok.output
    site = db.session.scalar(select(Site).where(Site.code == "PAR"))
    assert site.timezone == "Europe/Paris" and site.country == "FR"
    assert "PAR" in run(runner, "sites", "list").output
    bad_tz = run(runner, "sites", "create", "XX", "Somewhere", "--timezone", "Mars/Olympus")
    assert bad_tz.exit_code != 0 and "unknown time zone" in bad_tz.output
    dup = run(runner, "sites", "create", "PAR", "Again")
    assert dup.exit_code != 0 and "already exists" in dup.output


def test_demo_is_idempotent(runner):
    first = run(runner, "demo")
    assert first.exit_code == 0, first.output
    assert "Ecrf-demo-2026" in first.output and "inv.toulouse" in first.output
    users = db.session.scalars(select(User)).all()
    grants = db.session.scalars(select(RoleGrant)).all()
    second = run(runner, "demo")
    assert second.exit_code == 0, second.output
    assert len(db.session.scalars(select(User)).all()) == len(users)
    assert len(db.session.scalars(select(RoleGrant)).all()) == len(grants)
    roles = {g.role for g in grants}
    assert roles == {"admin", "data_manager", "investigator", "coordinator", "monitor",
                     "sponsor_viewer"}


def test_audit_verify_reports_an_intact_chain(runner):
    run(runner, "users", "create", "uma", "--name", "Uma")
    result = run(runner, "audit", "verify")
    assert result.exit_code == 0 and "audit trail intact" in result.output


def test_cli_actions_are_attributed_to_the_cli(runner):
    run(runner, "users", "create", "vic", "--name", "Vic")
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.created"))
    assert row.username.startswith("cli:") and row.category == "security"
