"""Device cookies: a browser where a user signed in successfully carries a signed cookie
naming that user (at most ``MAX_USERS`` users per browser), so that the account lockout
meant for password guessers does not lock the real user out (the "device cookie" defence
of the OWASP authentication guidance). The cookie holds a random device id and user ids,
signed with the instance's secret key; it proves nothing but an earlier successful sign-in
from this browser. Failed sign-ins from a device are counted against the device
(``device:<id>`` in the throttle table): once it waits, it is treated as any other
browser."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from flask import Request, Response, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["COOKIE_NAME", "Device", "read", "remember"]

COOKIE_NAME = "ecrf_device"
MAX_USERS = 5
_SALT = "ecrf.accounts.device-cookie"


@dataclass(frozen=True)
class Device:
    device_id: str
    user_ids: tuple[int, ...] = field(default_factory=tuple)

    def knows(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.user_ids


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _max_age() -> int:
    return int(current_app.config.get("DEVICE_COOKIE_DAYS", 180)) * 86400


def read(request: Request) -> Device | None:
    """The valid device cookie of this request, or None (absent, forged, too old)."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw or len(raw) > 1000:
        return None
    try:
        data = _serializer().loads(raw, max_age=_max_age())
    except BadSignature:  # a tampered or expired cookie is simply not a device cookie
        return None
    if not isinstance(data, dict) or not isinstance(data.get("d"), str):
        return None
    users = data.get("u")
    if not isinstance(users, list) or not all(type(u) is int for u in users):
        return None
    return Device(data["d"][:64], tuple(users[:MAX_USERS]))


def remember(response: Response, request: Request, user_id: int) -> None:
    """Mark this browser as one where ``user_id`` signed in (the newest user first)."""
    known = read(request)
    device_id = known.device_id if known else secrets.token_urlsafe(16)
    users = [user_id] + [u for u in (known.user_ids if known else ()) if u != user_id]
    response.set_cookie(
        COOKIE_NAME, _serializer().dumps({"d": device_id, "u": users[:MAX_USERS]}),
        max_age=_max_age(), httponly=True, samesite="Lax",
        secure=request.is_secure or bool(current_app.config.get("FORCE_HTTPS_COOKIES")),
    )
