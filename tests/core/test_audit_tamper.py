"""Tamper evidence against a database superuser: a keyed chain (key outside the
database), an anchor log of the chain's head outside it, third-party anchors, and the
stored data reconciled with the trail. Each forgery is done with SQL, as a superuser would,
and must be named by ``ecrf audit verify``."""

from __future__ import annotations

import json
import os

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from ecrf.capture.models import Subject
from ecrf.core import audit
from ecrf.core.audit import keys
from ecrf.core.audit.keys import load_keyring
from ecrf.core.audit.models import AuditChainHead, AuditEvent
from ecrf.core.audit.trail import HASHED_FIELDS, SYSTEM, AuditError, _iso, compute_hash
from ecrf.core.extensions import db
from ecrf.review import lock_subject
from tests.capture.capture_setup import actor_for
from tests.core.audit_setup import WEIGHT_PATH, tamper, verify

# --- helpers ----------------------------------------------------------------------------------


def row_fields(row: AuditEvent) -> dict:
    fields = {name: getattr(row, name) for name in HASHED_FIELDS}
    fields["occurred_at"] = _iso(row.occurred_at)
    return fields


def rows_from(seq: int) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.seq >= seq)
                                   .order_by(AuditEvent.seq)))


def head() -> tuple[int, str]:
    found = db.session.execute(select(AuditChainHead.last_seq, AuditChainHead.last_hash)).one()
    return found.last_seq, found.last_hash


def move_head(seq: int, digest: str) -> tuple[str, dict]:
    return ("UPDATE audit_chain_head SET last_seq = :s, last_hash = :h WHERE id = 1",
            {"s": seq, "h": digest})


def rechain(first: int, *, change: dict | None = None, key_id: str | None | bool = False
            ) -> list[tuple[str, dict]]:
    """Statements that change row ``first`` and recompute every later hash with the plain
    SHA-256 of the code (the only hash an attacker without the key can compute); key ids
    kept (``key_id=False``) or overwritten; the head follows."""
    rows = rows_from(first)
    prev = db.session.scalar(select(AuditEvent.row_hash).where(AuditEvent.seq == first - 1)) \
        if first > 1 else audit.GENESIS_HASH
    statements = []
    for row in rows:
        fields = row_fields(row)
        if row.seq == first and change:
            fields.update(change)
        digest = compute_hash(prev, fields)
        values = {"seq": row.seq, "prev": prev, "hash": digest, **(change or {})} \
            if row.seq == first else {"seq": row.seq, "prev": prev, "hash": digest}
        sets = ", ".join(f"{name} = :{name}" for name in values if name != "seq")
        sets = sets.replace("prev = :prev", "prev_hash = :prev").replace("hash = :hash",
                                                                         "row_hash = :hash")
        if key_id is not False:
            sets += ", key_id = :key_id"
            values["key_id"] = key_id
        statements.append((f"UPDATE audit_event SET {sets} WHERE seq = :seq", values))
        prev = digest
    statements.append(move_head(rows[-1].seq, prev))
    return statements


def active_key() -> str:
    return audit.key_file().read_text().strip().splitlines()[-1].split()[0]


# --- the four forgeries -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["none", "real id"])
def test_a_forged_row_appended_with_the_head_moved_is_named(entered, runner, key):
    end, last_hash = head()
    key_id = None if key == "none" else active_key()
    fields = {"seq": end + 1, "occurred_at": "2025-05-03T10:00:00.000000Z",
              "category": "clinical", "action": "item.changed", "username": "crc1",
              "path": WEIGHT_PATH, "new_value": "80.0"}
    forged = compute_hash(last_hash, fields)
    tamper(("INSERT INTO audit_event (seq, occurred_at, category, action, username, path, "
            "new_value, prev_hash, row_hash, key_id) VALUES (:seq, :at, 'clinical', "
            "'item.changed', 'crc1', :path, '80.0', :prev, :hash, :key)",
            {"seq": end + 1, "at": "2025-05-03 10:00:00", "path": WEIGHT_PATH,
             "prev": last_hash, "hash": forged, "key": key_id}),
           move_head(end + 1, forged))
    code, output = verify(runner)
    assert code == 1
    assert f"BROKEN at row {end + 1}" in output
    assert ("unkeyed row after keyed ones is a forgery" if key_id is None
            else "does not match its hash") in output


def test_rows_cut_from_the_end_with_the_head_moved_back_are_named(entered, runner):
    end, _ = head()
    keep = db.session.scalar(select(AuditEvent.row_hash).where(AuditEvent.seq == end - 2))
    tamper("DELETE FROM audit_event WHERE seq > :s", move_head(end - 2, keep), s=end - 2)
    code, output = verify(runner)
    assert code == 1
    assert f"BROKEN at row {end}" in output
    assert f"records row {end} but the trail ends at row {end - 2}" in output
    assert "anchor log audit-anchors.log, line" in output


@pytest.mark.parametrize("keys", ["kept", "removed"])
def test_a_row_changed_and_every_later_hash_recomputed_is_named(entered, runner, keys):
    seq = db.session.scalar(select(AuditEvent.seq).where(AuditEvent.action == "item.changed",
                                                         AuditEvent.path == WEIGHT_PATH))
    tamper(*rechain(seq, change={"new_value": "72.5"},
                    key_id=False if keys == "kept" else None))
    code, output = verify(runner)
    assert code == 1 and f"BROKEN at row {seq}" in output
    assert ("does not match its hash" if keys == "kept"
            else "an unkeyed row after keyed ones is a forgery") in output


def test_a_chain_rewritten_from_the_first_row_without_keys_is_named(entered, runner):
    tamper(*rechain(1, key_id=None))
    code, output = verify(runner)
    assert code == 1 and "BROKEN at row 1" in output
    assert "the keyring signs every row from 1 on" in output
    keys._cache.clear()  # a worker started after the rewrite refuses to extend it
    with pytest.raises(AuditError, match="has no key but the audit key file .* signs every "
                                         "row from 1 on: the trail was altered"):
        audit.record(db.session, SYSTEM, "site.created", category="admin", new_value="S09")
    db.session.rollback()


def form_status_path() -> str:
    return WEIGHT_PATH.rsplit("/", 2)[0]


@pytest.mark.parametrize("statement, named", [
    ("UPDATE item_value SET value = '70.0' WHERE item_oid = 'WEIGHT'",
     f"item value {WEIGHT_PATH} (subject S01-001): stored '70.0', last audited '75.0'"),
    ("DELETE FROM item_value WHERE item_oid = 'WEIGHT'",
     f"item value {WEIGHT_PATH}: stored None, last audited '75.0': the stored row is gone"),
    ("UPDATE form_instance SET status = 'complete'",
     "form status CAPTURE/S01-001/SCREEN[1]/VITALS (subject S01-001): stored 'complete'"),
    ("UPDATE subject SET status = 'on_study' WHERE subject_key = 'S02-001'",
     "subject status CAPTURE/S02-001/status (subject S02-001): stored 'on_study', "
     "last audited 'screening'"),
    ("UPDATE subject SET arm = 'B' WHERE subject_key = 'S01-001'",
     "arm CAPTURE/S01-001/arm (subject S01-001): stored 'B', last audited None"),
    ("UPDATE subject SET dose_level = 3 WHERE subject_key = 'S01-001'",
     "dose level CAPTURE/S01-001/dose_level (subject S01-001): stored '3'"),
])
def test_data_changed_without_an_audit_row_is_named(entered, runner, statement, named):
    code, output = verify(runner)
    assert code == 0 and "0 mismatches" in output, output
    tamper(statement)
    code, output = verify(runner)
    assert code == 1
    assert "audit trail intact" in output  # the chain is untouched: only the data moved
    assert f"MISMATCH {named}" in output
    assert "; 1 mismatch" in output and "1 mismatches" not in output


def test_an_inserted_item_value_has_no_audit_row(entered, runner):
    form_id, subject_id = db.session.execute(sa.text(
        "SELECT id, subject_id FROM form_instance")).one()
    tamper("INSERT INTO item_value (form_instance_id, subject_id, form_oid, group_oid, row, "
           "item_oid, value, updated_at) VALUES (:f, :s, 'VITALS', 'VS', 1, 'TEMP', '39.5', "
           ":at)", f=form_id, s=subject_id, at="2025-05-03 10:00:00")
    code, output = verify(runner)
    assert code == 1
    assert ("item value CAPTURE/S01-001/SCREEN[1]/VITALS/VS[1]/TEMP (subject S01-001): stored "
            "'39.5', last audited None: no audit row") in output


def test_locks_are_reconciled_with_their_audit_rows(entered, runner, make_user):
    subject = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-001"))
    dm = actor_for(make_user("dm1", role="data_manager", study="CAPTURE"), "data_manager", None)
    lock_subject(db.session, dm, subject, "database lock for the interim analysis")
    db.session.commit()
    code, output = verify(runner)
    assert code == 0 and "1 locks" in output, output
    tamper("UPDATE data_lock SET unlocked_at = :at, unlocked_by = 'dba'", at="2025-06-01")
    code, output = verify(runner)
    assert code == 1 and "MISMATCH lock #1 (subject): stored 'unlocked', last audited 'locked'" \
        in output
    tamper("DELETE FROM data_lock")
    code, output = verify(runner)
    assert "MISMATCH lock #1: stored None, last audited 'locked': the stored row is gone" in output


def test_mismatches_are_counted_and_the_list_capped(entered, runner):
    tamper("UPDATE item_value SET value = 'x'")
    code, output = verify(runner, "--limit", "2")
    total = db.session.scalar(sa.text("SELECT count(*) FROM item_value"))
    assert code == 1 and f"; {total} mismatches" in output
    assert output.count("MISMATCH") == 2 and f"... and {total - 2} more" in output
    code, output = verify(runner, "--no-reconcile")
    assert code == 0 and "mismatches" not in output


# --- keys -------------------------------------------------------------------------------------


def test_rows_are_signed_with_a_key_file_created_private(entered):
    path = audit.key_file()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    key_ids = set(db.session.scalars(select(AuditEvent.key_id)))
    assert key_ids == {active_key()}


def test_legacy_unkeyed_rows_then_keyed_rows_verify(app, runner):
    prev = audit.GENESIS_HASH
    for seq in (1, 2, 3):
        fields = {"seq": seq, "occurred_at": f"2024-01-0{seq}T08:00:00.000000Z",
                  "category": "admin", "action": "study.created", "username": "legacy"}
        digest = compute_hash(prev, fields)
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO audit_event (seq, occurred_at, category, action, username, "
                "prev_hash, row_hash) VALUES (:seq, :at, 'admin', 'study.created', 'legacy', "
                ":prev, :hash)"), {"seq": seq, "at": f"2024-01-0{seq} 08:00:00",
                                   "prev": prev, "hash": digest})
            sql, values = move_head(seq, digest)
            conn.execute(sa.text(sql), values)
        prev = digest
    assert not audit.key_file().exists()
    audit.record(db.session, SYSTEM, "site.created", category="admin", new_value="S09")
    db.session.commit()
    assert "since=4" in audit.key_file().read_text()
    code, output = verify(runner)
    assert code == 0, output
    assert "4 rows verified" in output and "3 legacy unkeyed" in output


def test_a_missing_key_is_refused_with_the_file_to_restore(entered, runner):
    path = audit.key_file()
    path.rename(path.with_suffix(".bak"))
    code, output = verify(runner)
    assert code == 1 and f"the audit key file {path} is missing" in output
    with pytest.raises(AuditError, match="restore that file from its backup"):
        audit.record(db.session, SYSTEM, "site.created", category="admin", new_value="S09")
    db.session.rollback()
    assert not path.exists()  # never a new key minted over a keyed chain
    result = runner.invoke(args=["audit", "anchor"])
    assert result.exit_code == 1 and str(path) in result.output


def test_a_key_file_without_the_chain_key_is_refused(app, entered, runner, tmp_path):
    other = tmp_path / "other.key"
    app.config["AUDIT_KEY_FILE"] = str(other)
    other.write_text("k1-000000 " + "ab" * 32 + " since=1\n")
    with pytest.raises(AuditError, match="does not hold key k1-"):
        audit.record(db.session, SYSTEM, "site.created", category="admin", new_value="S09")
    db.session.rollback()
    code, output = verify(runner)
    assert code == 1 and "which the audit key file" in output


def test_a_damaged_key_file_is_named_with_its_line(entered, runner):
    path = audit.key_file()
    path.write_text(path.read_text() + "not a key\n")
    code, output = verify(runner, "--no-reconcile")
    assert code == 1 and f"NOT VERIFIED: {path}, line 4: not a key line" in output
    with pytest.raises(AuditError, match="line 4: not a key line"):
        audit.record(db.session, SYSTEM, "site.created", category="admin", new_value="S09")
    db.session.rollback()


def test_rotation_is_audited_and_both_keys_verify(entered, runner):
    old = active_key()
    result = runner.invoke(args=["audit", "rotate-key", "--reason", "yearly rotation"])
    assert result.exit_code == 0, result.output
    new = active_key()
    assert new != old and f"{old} -> {new}" in result.output
    rotated = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "audit.key_rotated"))
    assert (rotated.old_value, rotated.new_value, rotated.key_id) == (old, new, old)
    assert rotated.reason == "yearly rotation" and rotated.username.startswith("cli:")
    assert json.loads(rotated.details)["first_row_of_new_key"] == rotated.seq + 1
    audit.record(db.session, SYSTEM, "site.created", category="admin", new_value="S09")
    db.session.commit()
    assert db.session.scalar(select(AuditEvent.key_id).where(
        AuditEvent.seq == rotated.seq + 1)) == new
    code, output = verify(runner)
    assert code == 0, output
    assert f"signed with keys {old}, {new}" in output
    assert len(audit.key_file().read_text().strip().splitlines()) == 4  # 2 comments, 2 keys


def test_rotation_needs_a_reason(entered, runner):
    result = runner.invoke(args=["audit", "rotate-key"])
    assert result.exit_code == 2 and "--reason" in result.output


# --- anchors ----------------------------------------------------------------------------------


def test_each_commit_anchors_its_head(entered):
    lines = audit.anchor_file().read_text().splitlines()
    anchors = [audit.parse_anchor(line) for line in lines]
    assert all(anchors) and (anchors[-1].seq, anchors[-1].hash) == head()
    assert anchors[-1].key_id == active_key()


def test_the_anchor_command_output_verifies(entered, runner, tmp_path):
    archive = tmp_path / "third-party.txt"
    result = runner.invoke(args=["audit", "anchor", "--output", str(archive)])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    anchor = audit.parse_anchor(line)
    assert (anchor.seq, anchor.hash) == head()
    assert archive.read_text().strip() == line
    for given in (line, str(archive)):
        code, output = verify(runner, "--anchor", given)
        assert code == 0, output


@pytest.mark.parametrize("forge, named", [
    (lambda line: line.replace("hash=", "hash=0", 1).replace("hash=0" + line.split("hash=")[1][:64],
                                                             "hash=0" + line.split("hash=")[1][:63]),
     "the anchor given (row {seq}) is not a valid anchor: its signature does not match"),
    (lambda line: line.replace("key=", "key=x", 1),
     "the anchor given (row {seq}) is not a valid anchor: its key is not in the keyring"),
])
def test_a_wrong_third_party_anchor_is_named(entered, runner, forge, named):
    line = runner.invoke(args=["audit", "anchor"]).output.strip()
    seq = audit.parse_anchor(line).seq
    code, output = verify(runner, "--anchor", forge(line))
    assert code == 1 and named.format(seq=seq) in output


def test_a_third_party_anchor_catches_a_truncation_the_log_missed(entered, runner):
    line = runner.invoke(args=["audit", "anchor"]).output.strip()
    end, _ = head()
    keep = db.session.scalar(select(AuditEvent.row_hash).where(AuditEvent.seq == end - 1))
    tamper("DELETE FROM audit_event WHERE seq = :s", move_head(end - 1, keep), s=end)
    audit.anchor_file().unlink()  # even without the anchor log of the instance
    code, output = verify(runner, "--anchor", line)
    assert code == 1 and f"BROKEN at row {end}" in output
    assert f"the anchor given records row {end} but the trail ends at row {end - 1}" in output


def test_a_row_re_signed_with_the_key_differs_from_its_anchor(entered, runner):
    # Even with the key (stolen from the instance folder), a row changed and re-signed
    # after its commit differs from the head the anchor log recorded then.
    end, _ = head()
    row = rows_from(end)[0]
    digest = compute_hash(row.prev_hash, {**row_fields(row), "new_value": "forged"},
                          load_keyring(audit.key_file()), row.key_id)
    tamper("UPDATE audit_event SET new_value = 'forged', row_hash = :h WHERE seq = :s",
           move_head(end, digest), h=digest, s=end)
    code, output = verify(runner, "--no-reconcile")
    assert code == 1 and f"BROKEN at row {end}: row differs from the head recorded in " \
        "anchor log audit-anchors.log, line" in output


@pytest.mark.parametrize("given, message", [
    ("not an anchor", "is not an anchor line"),
    ("ecrf-audit-anchor seq=1 hash=zz", "is not an anchor line"),
])
def test_an_unreadable_anchor_is_refused_clearly(entered, runner, given, message):
    code, output = verify(runner, "--anchor", given)
    assert code == 2 and message in output
