"""The audit keyring and the anchor log: the two things kept outside the database.

The keyring (``instance/audit.key`` unless ``AUDIT_KEY_FILE`` / ``ECRF_AUDIT_KEY_FILE``
names another file, such as one mounted from a secret store) holds the HMAC keys that
sign the audit chain, one per line, oldest first; the last one signs new rows, the others
stay for verification after a rotation. A line reads ``KEY_ID HEX_SECRET since=SEQ``:
the first key's ``since`` is the first row it signed, so rows from there on must all be
keyed (someone who strips the keys off the rows and rehashes them is caught).

The anchor log (``instance/audit-anchors.log`` unless ``AUDIT_ANCHOR_FILE``) gets one
line per committed batch of audit rows: the chain's head (seq, hash) at that commit, the
time, the key id and an HMAC over the line. It is appended with O_APPEND, so several
workers share it, and it lets ``ecrf audit verify`` notice rows cut from the end of the
trail together with a head moved back, or a chain recomputed from some row on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app, has_app_context

from ecrf.core.config import PROJECT_ROOT

log = logging.getLogger(__name__)

ANCHOR_PREFIX = "ecrf-audit-anchor"
_KEY_LINE = re.compile(r"^(?P<id>[A-Za-z0-9_.-]{1,32}) (?P<secret>[0-9a-f]{64})"
                       r"(?: since=(?P<since>\d+))?$")
_ANCHOR_LINE = re.compile(
    rf"^{ANCHOR_PREFIX} seq=(?P<seq>\d+) hash=(?P<hash>[0-9a-f]{{64}}) "
    r"time=(?P<time>\S+) key=(?P<key>[A-Za-z0-9_.-]{1,32}) sig=(?P<sig>[0-9a-f]{64})$")
_HEADER = ("# ecrf audit keyring: the keys that sign the audit trail. Keep it secret and back "
           "it up apart from the database;\n# without it the trail cannot be verified. "
           "Never edit a line; `ecrf audit rotate-key` appends new keys.\n")


class KeyringError(RuntimeError):
    """The keyring cannot be read or is missing when the trail needs it."""


def _setting(name: str, default_name: str) -> Path:
    if has_app_context():
        configured = current_app.config.get(name)
        if configured:
            return Path(configured)
        return Path(current_app.instance_path) / default_name
    configured = os.environ.get(f"ECRF_{name}")
    return Path(configured) if configured else PROJECT_ROOT / "instance" / default_name


def key_file() -> Path:
    return _setting("AUDIT_KEY_FILE", "audit.key")


def anchor_file() -> Path:
    return _setting("AUDIT_ANCHOR_FILE", "audit-anchors.log")


@dataclass
class Keyring:
    path: Path
    # key id -> secret, in file order (the last one signs)
    keys: dict[str, bytes] = field(default_factory=dict)
    since: int = 1  # the first row signed by the first key
    checked: bool = False  # matched against the chain's last row by a writer
    _macs: dict[str, hmac.HMAC] = field(default_factory=dict, repr=False)

    @property
    def active(self) -> str:
        return next(reversed(self.keys))

    def mac(self, key_id: str) -> hmac.HMAC | None:
        """A fresh HMAC for ``key_id`` (copied from one keyed object per key), or None."""
        base = self._macs.get(key_id)
        if base is None:
            secret = self.keys.get(key_id)
            if secret is None:
                return None
            base = self._macs[key_id] = hmac.new(secret, digestmod=hashlib.sha256)
        return base.copy()

    def sign(self, key_id: str, data: bytes) -> str:
        mac = self.mac(key_id)
        if mac is None:
            raise KeyringError(f"key {key_id} is not in the audit keyring {self.path}")
        mac.update(data)
        return mac.hexdigest()


def _parse(path: Path, text: str) -> Keyring:
    ring = Keyring(path)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found = _KEY_LINE.match(line)
        if found is None:
            raise KeyringError(f"{path}, line {number}: not a key line (KEY_ID HEX since=SEQ)")
        if not ring.keys and found["since"]:
            ring.since = int(found["since"])
        ring.keys[found["id"]] = bytes.fromhex(found["secret"])
    if not ring.keys:
        raise KeyringError(f"{path} holds no key: restore the audit key file from its backup")
    return ring


_cache: dict[Path, tuple[tuple, Keyring]] = {}


def load_keyring(path: Path | None = None) -> Keyring | None:
    """The keyring at ``path`` (the configured file by default), or None if there is none.

    Read again only when the file changed (a rotation by another process)."""
    path = path or key_file()
    try:
        stat = path.stat()
    except FileNotFoundError:
        _cache.pop(path, None)
        return None
    signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    cached = _cache.get(path)
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        ring = _parse(path, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"cannot read the audit key file {path}: {exc}") from None
    _cache[path] = (signature, ring)
    return ring


def _new_key_line(index: int, since: int) -> tuple[str, str]:
    key_id = f"k{index}-{secrets.token_hex(3)}"
    return key_id, f"{key_id} {secrets.token_hex(32)} since={since}\n"


def create_keyring(path: Path, since: int) -> Keyring:
    """Create the first key (mode 0600); if another process just did, read its file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        ring = load_keyring(path)
        if ring is None:  # removed in between: give up rather than loop
            raise KeyringError(f"the audit key file {path} vanished while being created") from None
        return ring
    key_id, line = _new_key_line(1, since)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(_HEADER + line)
        handle.flush()
        os.fsync(handle.fileno())
    log.warning("created the audit key %s in %s: back this file up apart from the database",
                key_id, path)
    ring = load_keyring(path)
    assert ring is not None
    return ring


def add_key(ring: Keyring, since: int) -> str:
    """Append a new signing key to the keyring file; returns its id."""
    key_id, line = _new_key_line(len(ring.keys) + 1, since)
    fd = os.open(ring.path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return key_id


# --- anchors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    time: str
    key_id: str
    sig: str

    def body(self) -> str:
        return f"{ANCHOR_PREFIX} seq={self.seq} hash={self.hash} time={self.time} key={self.key_id}"

    def line(self) -> str:
        return f"{self.body()} sig={self.sig}"


def make_anchor(ring: Keyring, seq: int, head_hash: str, when: dt.datetime | None = None
                ) -> Anchor:
    when = when or dt.datetime.now(dt.UTC)
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    key_id = ring.active
    unsigned = Anchor(seq, head_hash, stamp, key_id, "")
    return Anchor(seq, head_hash, stamp, key_id, ring.sign(key_id, unsigned.body().encode()))


def parse_anchor(line: str) -> Anchor | None:
    found = _ANCHOR_LINE.match(line.strip())
    if found is None:
        return None
    return Anchor(int(found["seq"]), found["hash"], found["time"], found["key"], found["sig"])


def anchor_signed(ring: Keyring | None, anchor: Anchor) -> bool:
    if ring is None or anchor.key_id not in ring.keys:
        return False
    return hmac.compare_digest(ring.sign(anchor.key_id, anchor.body().encode()), anchor.sig)


def append_anchor(path: Path, anchor: Anchor) -> None:
    """One line, one write() on a descriptor opened with O_APPEND: lines of several
    workers never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (anchor.line() + "\n").encode("ascii"))
    finally:
        os.close(fd)


def read_anchors(path: Path) -> tuple[list[tuple[int, Anchor]], list[int]]:
    """(line number, anchor) of each anchor line of ``path``; line numbers that are not."""
    anchors, bad = [], []
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            anchor = parse_anchor(line)
            if anchor is None:
                bad.append(number)
            else:
                anchors.append((number, anchor))
    return anchors, bad
