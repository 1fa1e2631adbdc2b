"""Failed sign-in attempts counted per client address (and per trusted device), with a
back-off that doubles: after ``threshold`` failures with no pause longer than ``window``
between them, the key must wait ``base_seconds``, then twice as long after each further
failure, at most ``max_seconds``. While a key waits, its attempts are answered at once
(HTTP 429) without checking any password, so a guessing client costs almost nothing.

The counts live in the database (``login_throttle``) so every worker shares them. The
client address is ``request.remote_addr``: the proxy's own address unless the instance is
configured behind a reverse proxy (``PROXY_FIX``), so a forged X-Forwarded-For header is
never believed by default.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from dataclasses import dataclass

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ecrf.accounts.models import LoginThrottle
from ecrf.core import utcnow

__all__ = ["ThrottlePolicy", "api_key", "client_network", "device_key", "login_key",
           "policy_from_config",
           "register_failure", "seconds_to_wait"]


@dataclass(frozen=True)
class ThrottlePolicy:
    threshold: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)
    base_seconds: int = 15
    max_seconds: int = 900

    def delay(self, failures: int) -> dt.timedelta | None:
        """The wait after ``failures`` consecutive failures, or None below the threshold."""
        if failures < self.threshold:
            return None
        steps = min(failures - self.threshold, 32)  # 2**32 s is far beyond any cap
        return dt.timedelta(seconds=min(self.base_seconds * 2 ** steps, self.max_seconds))


def policy_from_config(config) -> ThrottlePolicy:
    return ThrottlePolicy(
        threshold=int(config.get("LOGIN_THROTTLE_THRESHOLD", 5)),
        window=dt.timedelta(minutes=float(config.get("LOGIN_THROTTLE_WINDOW_MINUTES", 15))),
        base_seconds=int(config.get("LOGIN_THROTTLE_BASE_SECONDS", 15)),
        max_seconds=int(config.get("LOGIN_THROTTLE_MAX_SECONDS", 900)),
    )


def client_network(address: str | None) -> str:
    """The unit counted: an IPv4 address, or the /64 network of an IPv6 address (one
    subscriber's allocation: rotating addresses inside it gains nothing)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return (address or "unknown")[:140]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def login_key(address: str | None) -> str:
    return f"login:{client_network(address)}"


def api_key(address: str | None) -> str:
    return f"api:{client_network(address)}"


def device_key(device_id: str) -> str:
    return f"device:{device_id}"[:160]


def seconds_to_wait(session: Session, key: str, now: dt.datetime | None = None) -> int:
    """Whole seconds ``key`` must still wait before its next attempt; 0 when it may try."""
    now = now or utcnow()
    blocked_until = session.scalar(select(LoginThrottle.blocked_until)
                                   .where(LoginThrottle.key == key))
    if blocked_until is None or blocked_until <= now:
        return 0
    return max(1, math.ceil((blocked_until - now).total_seconds()))


def register_failure(session: Session, key: str, policy: ThrottlePolicy,
                     now: dt.datetime | None = None) -> int:
    """Count a failed attempt of ``key``; returns the seconds it must now wait (0: none).

    One UPDATE increments the count (or restarts it after a pause longer than the window)
    and holds the row until the caller commits, so concurrent workers never lose a count.
    """
    now = now or utcnow()
    cutoff = now - policy.window
    bump = (update(LoginThrottle).where(LoginThrottle.key == key)
            .values(failures=case((LoginThrottle.last_failure_at < cutoff, 1),
                                  else_=LoginThrottle.failures + 1),
                    last_failure_at=now)
            .execution_options(synchronize_session=False))
    if session.execute(bump).rowcount == 0:
        try:
            with session.begin_nested():
                session.add(LoginThrottle(key=key, failures=1, last_failure_at=now))
        except IntegrityError:  # another worker created it first: count on its row
            session.execute(bump)
    failures = session.scalar(select(LoginThrottle.failures).where(LoginThrottle.key == key)
                              .execution_options(populate_existing=True))
    delay = policy.delay(failures or 0)
    if delay is None:
        return 0
    session.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                    .values(blocked_until=now + delay)
                    .execution_options(synchronize_session=False))
    return math.ceil(delay.total_seconds())
