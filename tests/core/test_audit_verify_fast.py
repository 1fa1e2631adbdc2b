"""The fast paths of ``ecrf audit verify`` give the verdicts of the plain ones: the hash
input built from the driver's tuples is byte for byte the one ``record`` signed, and the
reconciliation joined in the database names the mismatches the merged streams name, in
the same order."""

from __future__ import annotations

import datetime as dt
import sys

import pytest
import sqlalchemy as sa

from ecrf.core import audit
from ecrf.core.audit import trail
from ecrf.core.audit.trail import _ENCODER, SYSTEM, _encode_fields, _stored_iso, verify_chain
from ecrf.core.extensions import db
from tests.core.audit_setup import WEIGHT_PATH, last_seq, tamper, verify

TRICKY = [
    "", "plain", 'double "quotes"', "single 'quotes'", "back\\slash", "\\\"", "tab\there",
    "line\nbreak", "cr\rlf\r\n", "\b\f", "nul-free control \x01\x1f\x7f", "é à ü ß",
    "中文 数据", "emoji 🧪", "\u2028\u2029 separators", "surrogate-free \U0010ffff",
    '{"json": ["inside", 1]}', "</script>", "null", "0", "-1.5e10", " leading space",
]
VALUES = [*TRICKY, None, 0, 1, -1, 2**31, 2**63 - 1, 10**40, -(10**40)]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_fast_encoder_writes_the_bytes_of_the_payload_encoder(value):
    row = (7, "2025-01-01T08:00:00.000000Z", value, None, value)
    assert _encode_fields(row) == _ENCODER.encode(list(row))
    assert _encode_fields(row).encode("utf-8") == _ENCODER.encode(list(row)).encode("utf-8")


def test_the_fast_encoder_on_a_whole_row_of_tricky_values():
    assert _encode_fields(tuple(VALUES)) == _ENCODER.encode(VALUES)


@pytest.mark.parametrize("stored, iso", [
    ("2025-01-01 08:00:07.000001", "2025-01-01T08:00:07.000001Z"),
    ("2025-12-31 23:59:59.999999", "2025-12-31T23:59:59.999999Z"),
    ("0999-01-01 00:00:00.000000", "0999-01-01T00:00:00.000000Z"),
    ("2025-01-01 08:00:07", "2025-01-01T08:00:07.000000Z"),
    ("2025-01-01T08:00:07.5", "2025-01-01T08:00:07.500000Z"),
    ("2025-01-01 10:00:07.000001+02:00", "2025-01-01T08:00:07.000001Z"),
    (dt.datetime(2025, 1, 1, 8, 0, 7), "2025-01-01T08:00:07.000000Z"),
    (dt.datetime(2025, 1, 1, 9, 0, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
     "2025-01-01T08:00:07.000001Z"),
])
def test_stored_timestamps_take_the_hashed_form(stored, iso):
    assert _stored_iso(stored) == iso


def test_rows_with_tricky_values_verify_and_a_change_to_one_is_named(entered):
    for n, value in enumerate(TRICKY):
        audit.record(db.session, SYSTEM, "site.note", category="admin", old_value=value,
                     new_value=TRICKY[-n - 1], reason=value or None,
                     details={"note": value, "n": n, "big": 10**20})
    db.session.commit()
    result = verify_chain(db.session)
    assert result.ok and result.rows_checked == last_seq(), result
    target = last_seq() - 3
    tamper("UPDATE audit_event SET new_value = :v WHERE seq = :s", v='"quotes"\\', s=target)
    result = verify_chain(db.session)
    assert not result.ok and result.first_broken_seq == target
    assert result.problem == "row content does not match its hash"


def test_the_verdict_is_that_of_the_payload_encoder(entered, monkeypatch):
    """A row whose fast hash input differs is hashed again from its columns: the fast path
    can neither break nor pass a row that the payload encoder judges otherwise."""
    monkeypatch.setattr(trail, "_encode_fields", lambda values: '"not the payload"')
    result = verify_chain(db.session)
    assert result.ok and result.rows_checked == last_seq(), result
    tamper("UPDATE audit_event SET reason = 'rewritten' WHERE seq = 2")
    result = verify_chain(db.session)
    assert not result.ok and result.first_broken_seq == 2


def test_the_study_filter_counts_only_that_study(entered):
    total = last_seq()
    rows = db.session.scalar(sa.text("SELECT count(*) FROM audit_event WHERE study_oid = "
                                     "'CAPTURE'"))
    assert 0 < rows < total
    assert verify_chain(db.session, study_oid="CAPTURE").rows_checked == rows
    assert verify_chain(db.session, study_oid="NOPE").rows_checked == 0


TAMPERING = [
    "UPDATE item_value SET value = '70.0' WHERE item_oid = 'WEIGHT'",
    "UPDATE item_value SET value = NULL WHERE item_oid = 'HEIGHT'",
    "DELETE FROM item_value WHERE item_oid = 'SEX'",
    "UPDATE form_instance SET status = 'complete'",
    "UPDATE subject SET status = 'on_study' WHERE subject_key = 'S02-001'",
    "UPDATE subject SET arm = 'B' WHERE subject_key = 'S01-001'",
    "UPDATE subject SET dose_level = 3",
]


@pytest.mark.parametrize("count", [0, 1, 3, len(TAMPERING)])
def test_the_joined_reconciliation_names_what_the_merged_streams_name(entered, monkeypatch,
                                                                      count):
    form_id, subject_id = db.session.execute(sa.text(
        "SELECT id, subject_id FROM form_instance")).one()
    tamper(*TAMPERING[:count])
    if count > 2:
        tamper("INSERT INTO item_value (form_instance_id, subject_id, form_oid, group_oid, "
               "row, item_oid, value, updated_at) VALUES (:f, :s, 'VITALS', 'VS', 1, 'TEMP', "
               "'39.5', :at)", f=form_id, s=subject_id, at="2025-05-03 10:00:00")
    joined = audit.reconcile(db.session, limit=100)
    db.session.rollback()
    # The package's ``reconcile`` function hides its module of the same name.
    monkeypatch.setattr(sys.modules["ecrf.core.audit.reconcile"], "_full_join",
                        lambda session: False)
    merged = audit.reconcile(db.session, limit=100)
    assert joined.lines() == merged.lines()
    assert joined.checked == merged.checked and joined.mismatches == merged.mismatches
    assert joined.ok == (count == 0)
    if count:
        assert f"  MISMATCH item value {WEIGHT_PATH} (subject S01-001): stored '70.0', " \
            "last audited '75.0'" in joined.lines()[2:]


def test_verify_reports_the_same_with_the_reconciliation_alongside(entered, runner):
    tamper(TAMPERING[0])
    code, output = verify(runner)
    assert code == 1 and output.splitlines()[0].startswith("audit trail intact")
    assert f"MISMATCH item value {WEIGHT_PATH}" in output
    future = audit.reconcile_alongside(db.engine)
    if db.engine.dialect.name == "sqlite":
        assert future is None
    else:
        assert future.result().lines() == audit.reconcile(db.session).lines()
