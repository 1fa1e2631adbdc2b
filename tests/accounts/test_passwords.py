"""The password policy: length, character mix, personal words, and common or easily
guessed passwords refused wherever a password is set (change, user creation, CLI)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User
from ecrf.accounts.passwords import PasswordPolicy, easy_to_guess
from ecrf.accounts.users import generate_temporary_password
from ecrf.core.extensions import db
from ecrf.demo.loader import DEMO_PASSWORD
from tests.conftest import PASSWORD, sign_in

COMMON = "too common or too easy to guess"

# Each of these satisfies length and character mix: only the guessability check stops it.
REFUSED = [
    "Password1234!", "P@ssw0rd2024!", "Qwerty123456!", "PASSWORD1234!", "password1234!A",
    "P4ssw0rd12345!", "Welcome2024!!", "Admin12345678!", "Letmein2026!!", "Iloveyou1234!",
    "Monkey123456!", "Football2024!", "Changeme2026!", "Summer2025!!!", "Abcd1234!@#$",
    "Qwertyuiop123!", "1qaz2wsx3edc!Q", "Trustno1Trustno1!", "Dragon2026!!!", "Sunshine2024!",
    "Aa123456789012!", "Passw0rd!Passw0rd",
]
ACCEPTED = [
    PASSWORD, DEMO_PASSWORD, "Fresh-Secret-2030", "Permanent-Secret-99",
    "Blue-Harbour-Lamp-91", "Xk9#mQ2vL8pR", "Tr0ub4dor&3xyz", "orbit Velvet 7 canyon!",
    "Secure-Pass-2026", "Mauve;Tractor;Ink;42", "Nuage-Bleu-Quai-17",
]


@pytest.mark.parametrize("password", REFUSED)
def test_common_passwords_and_their_usual_disguises_are_refused(app, password):
    problems = PasswordPolicy().problems(password, username="alice", full_name="Alice Martin")
    assert len(problems) == 1 and COMMON in problems[0], problems


@pytest.mark.parametrize("password", ACCEPTED)
def test_hard_to_guess_passwords_are_accepted(app, password):
    assert PasswordPolicy().problems(password, username="alice", full_name="Alice Martin") == []


def test_generated_temporary_passwords_always_pass(app):
    policy = PasswordPolicy()
    for _ in range(50):
        assert policy.problems(generate_temporary_password(), username="bob") == []


@pytest.mark.parametrize("password, user_inputs, easy", [
    ("Okonkwo-2026!", ("okonkwo",), True),     # the user's own name with a year
    ("Okonkwo-2026!", (), False),
    ("Ecrf-Ecrf-2026!", (), True),              # the product's name counts as a common word
    ("Quartz-Meadow-61", ("quartz",), False),   # one own word among others is fine
])
def test_personal_words_make_a_password_easier_to_guess(password, user_inputs, easy):
    assert easy_to_guess(password, 10, user_inputs) is easy


def test_the_check_can_be_tuned_or_switched_off(app):
    assert PasswordPolicy(min_guesses_log10=0).problems("Password1234!") == []
    assert PasswordPolicy(min_guesses_log10=14).problems(PASSWORD)  # stricter than default


def test_only_the_first_rule_problems_are_shown_before_the_common_check(app):
    # A too-short password gets the length message, not a second message on top of it.
    problems = PasswordPolicy().problems("Passw0rd!")
    assert len(problems) == 1 and "at least 12 characters" in problems[0]


def test_a_very_long_password_is_checked_quickly(app):
    import time

    start = time.perf_counter()
    assert PasswordPolicy().problems("Xk9#mQ2vL8pR-" * 19) == []
    assert time.perf_counter() - start < 1


def test_changing_to_a_common_password_is_refused_on_the_page(client, make_user):
    make_user("gina", role="coordinator", site="S01")
    sign_in(client, "gina")
    response = client.post("/account/password", data={
        "current": PASSWORD, "new": "Password1234!", "confirm": "Password1234!"})
    assert response.status_code == 200 and COMMON.encode() in response.data
    assert b"not a common or easily guessed password" in response.data  # the help says so
    ok = client.post("/account/password", data={
        "current": PASSWORD, "new": "Quartz-Meadow-61", "confirm": "Quartz-Meadow-61"})
    assert ok.status_code == 302


def test_the_cli_refuses_a_common_password_with_one_line(runner):
    result = runner.invoke(args=["users", "create", "pat", "--name", "Pat Doe",
                                 "--password-stdin"], input="Qwerty123456!\n")
    assert result.exit_code != 0 and COMMON in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert db.session.scalar(select(User).where(User.username == "pat")) is None
