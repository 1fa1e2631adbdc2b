"""Every action of the screens has its twin in the API, or a stated reason why not.

The table maps each POST endpoint of the web blueprints to the API operations that do the
same work through the same services (a tuple of API endpoint names), or to the reason it
has none (a string). A new screen action fails this test until it is added here: with its
API twin, or with the reason it must stay a screen action.
"""

from __future__ import annotations

WRITES = {"POST", "PUT", "PATCH", "DELETE"}

ACCOUNT = ("a signed-in person's own session or account: an API token acts for its owner "
           "and must not manage sign-in, passwords or tokens (use the screen or "
           "`ecrf users`/`ecrf tokens`)")
ADMIN = ("system administration (users, sites, grants) stays with administrators on the "
         "screens and `ecrf users`/`ecrf sites`: a leaked integration token must not be "
         "able to create accounts or grant roles")
UI = "a preference of the browser session (language, current study), nothing to integrate"

PARITY: dict[str, tuple[str, ...] | str] = {
    # accounts
    "auth.login": ACCOUNT,
    "auth.logout": ACCOUNT,
    "auth.change_password": ACCOUNT,
    "tokens.create": ACCOUNT,
    "tokens.revoke": ACCOUNT,
    "tokens.resume": ACCOUNT,
    "admin.site_new": ADMIN,
    "admin.user_new": ADMIN,
    "admin.user_disable": ADMIN,
    "admin.user_enable": ADMIN,
    "admin.user_grant": ADMIN,
    "admin.user_revoke": ADMIN,
    "admin.user_reset_password": ADMIN,
    "main.set_language": UI,
    "main.switch_study": UI,
    # capture
    "studies.enrol": ("api.subject_enrol",),
    "entry.form_save": ("api.form_save",),
    "entry.event_start": ("api.event_start",),
    "entry.event_not_done": ("api.event_not_done",),
    # allocation
    "allocation.randomize": ("api.randomize",),
    "allocation.undo": ("api.randomization_undo",),
    "allocation.dose_level": ("api.dose_level",),
    "allocation.decide": ("api.escalation_decide",),
    "allocation.strata": ("api.stratum_correct",),
    # review
    "review.query_new": ("api.query_raise",),
    "review.query_answer": ("api.query_answer",),
    "review.query_comment": ("api.query_comment",),
    "review.query_close": ("api.query_close",),
    "review.query_reopen": ("api.query_reopen",),
    "review.query_assign": ("api.query_assign",),
    "review.form_sdv": ("api.form_sdv_verify", "api.form_sdv_unverify"),
    "review.form_lock": ("api.form_lock", "api.form_unlock"),
    "review.subject_lock": ("api.subject_lock", "api.subject_unlock"),
    "review.site_lock": ("api.site_lock",),
    "review.unlock": ("api.lock_release",),
    "review.study_status": ("api.study_status",),
    "review.sign": ("api.sign",),
    # safety
    "safety.dlt_decide": ("api.dlt_decide",),
    "safety.prompt_accept": ("api.prompt_accept",),
    "safety.prompt_decline": ("api.prompt_decline",),
    "safety.sae_create": ("api.sae_create",),
    "safety.sae_submit": ("api.sae_submit",),
    "safety.sae_followup": ("api.sae_followup",),
    "safety.notification_retry": ("api.notification_retry",),
    # esource
    "labs.preview": ("api.labs_import",),
    "labs.confirm": ("api.labs_import",),
    # outputs
    "exports.create_data_export": ("api.job_create_data_export",),
    "exports.create_crf": ("api.job_create_crf",),
    "exports.create_casebooks": ("api.job_create_casebooks",),
    "exports.job_cancel": ("api.job_cancel",),
}


def _writes(app) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        methods = rule.methods & WRITES
        if methods:
            found.setdefault(rule.endpoint, set()).update(methods)
    return found


def unmatched(writes: dict[str, set[str]], table=PARITY) -> tuple[list[str], list[str]]:
    """(screen actions missing from the table, table entries with no screen action)."""
    screens = {name for name in writes if not name.startswith("api.")}
    return sorted(screens - set(table)), sorted(set(table) - screens)


def test_every_screen_action_has_an_api_twin_or_a_reason(app):
    missing, stale = unmatched(_writes(app))
    assert not missing, f"screen actions with no API twin and no reason: {missing}"
    assert not stale, f"entries for screen actions that no longer exist: {stale}"


def test_a_new_screen_action_is_caught(app):
    writes = _writes(app) | {"review.query_escalate": {"POST"}}
    assert unmatched(writes) == (["review.query_escalate"], [])


def test_every_twin_is_a_real_api_write(app):
    writes = _writes(app)
    for screen, twin in PARITY.items():
        if isinstance(twin, str):
            assert len(twin) > 40, f"{screen}: say why it has no API twin"
            continue
        assert twin, screen
        for name in twin:
            assert name.startswith("api.") and name in writes, f"{screen} -> {name}"
