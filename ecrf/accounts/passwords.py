"""Password hashing (argon2id) and the password policy (21 CFR 11.300).

Besides length and character mix, the policy refuses passwords that are easy to guess:
zxcvbn (the Dropbox estimator, ported to Python, MIT licence; it works offline from its
bundled lists of the most common passwords, English words, names and keyboard patterns)
estimates how many guesses a password needs, seeing through the usual disguises
(``Password1234!``, ``P@ssw0rd2024!``, ``Qwerty123456!``); below ``min_guesses_log10``
(10: zxcvbn's top score, 10^10 guesses) the password is refused."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _
from zxcvbn import zxcvbn

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def configure_hasher(*, time_cost: int, memory_cost: int, parallelism: int) -> None:
    """Set argon2id cost parameters (lowered only in tests, where speed matters)."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                             parallelism=parallelism)
    _DUMMY_HASH = _hasher.hash("no account has this password, ever")

# A hash that no password matches, verified against when the username is unknown so that
# the response time does not reveal whether an account exists.
_DUMMY_HASH = _hasher.hash("no account has this password, ever")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 12
    max_length: int = 256
    require_classes: int = 3  # of lower, upper, digit, other
    # Guesses (log10) zxcvbn must estimate at least; 0 switches the check off.
    min_guesses_log10: float = 10

    def problems(self, password: str, *, username: str = "", full_name: str = "") -> list[str]:
        found: list[str] = []
        if len(password) < self.min_length:
            found.append(_("Use at least %(n)d characters.", n=self.min_length))
        if len(password) > self.max_length:
            found.append(_("Use at most %(n)d characters.", n=self.max_length))
        lowered = password.lower()
        if username and username.lower() in lowered:
            found.append(_("The password must not contain the username."))
        for part in full_name.lower().split():
            if len(part) >= 4 and part in lowered:
                found.append(_("The password must not contain your name."))
                break
        classes = sum(
            (
                any(c.islower() for c in password),
                any(c.isupper() for c in password),
                any(c.isdigit() for c in password),
                any(not c.isalnum() for c in password),
            )
        )
        if classes < self.require_classes:
            found.append(
                _(
                    "Mix at least %(n)d of: lower-case letters, upper-case letters, digits, symbols.",
                    n=self.require_classes,
                )
            )
        if not found and self.min_guesses_log10 > 0 and easy_to_guess(
                password, self.min_guesses_log10, (username, *full_name.split())):
            found.append(_("This password is too common or too easy to guess: it is (or "
                           "closely resembles) a widely used password, word or keyboard "
                           "pattern. Choose a less predictable one, e.g. several unrelated "
                           "words with a symbol and digits."))
        return found


# zxcvbn's time grows with the length; beyond this many characters a password that passed
# the other rules is strong whatever its start looks like.
_ESTIMATE_PREFIX = 64


def easy_to_guess(password: str, min_guesses_log10: float,
                  user_inputs: tuple[str, ...] = ()) -> bool:
    """Whether zxcvbn estimates fewer than 10**min_guesses_log10 guesses for ``password``
    (case-insensitive dictionaries, leetspeak, appended digits and symbols included)."""
    estimate = zxcvbn(password[:_ESTIMATE_PREFIX],
                      user_inputs=[w for w in user_inputs if w] + ["ecrf"])
    return float(estimate["guesses_log10"]) < min_guesses_log10


def policy_from_config(config) -> PasswordPolicy:
    return PasswordPolicy(
        min_length=int(config["PASSWORD_MIN_LENGTH"]),
        require_classes=int(config["PASSWORD_REQUIRE_CLASSES"]),
        min_guesses_log10=float(config.get("PASSWORD_MIN_GUESSES_LOG10", 10)),
    )
