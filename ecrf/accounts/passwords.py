"""Password hashing (argon2id) and the password policy (21 CFR 11.300)."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _

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
        return found


def policy_from_config(config) -> PasswordPolicy:
    return PasswordPolicy(
        min_length=int(config["PASSWORD_MIN_LENGTH"]),
        require_classes=int(config["PASSWORD_REQUIRE_CLASSES"]),
    )
