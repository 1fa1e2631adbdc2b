"""Tamper evidence of the audit trail, and the audit trail screens and exports."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from ecrf.capture.models import ItemValue
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import GENESIS_HASH, AuditError, compute_hash, verify_chain
from ecrf.core.extensions import db
from tests.core.audit_setup import BASE, VITALS, last_seq, tamper, verify

# --- append-only, in the database itself ------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE audit_event SET new_value = 'forged' WHERE seq = 1",
    "DELETE FROM audit_event WHERE seq = 1",
])
def test_the_database_refuses_update_and_delete(entered, statement):
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert db.session.scalar(select(AuditEvent.new_value).where(AuditEvent.seq == 1)) != "forged"


def test_the_intact_trail_verifies(entered, runner):
    code, output = verify(runner)
    assert code == 0, output
    assert "audit trail intact" in output


def test_verify_names_an_altered_row(entered, runner):
    seq = db.session.scalar(select(AuditEvent.seq).where(AuditEvent.action == "item.changed")
                            .order_by(AuditEvent.seq).limit(1))
    tamper("UPDATE audit_event SET new_value = '70.0' WHERE seq = :seq", seq=seq)
    code, output = verify(runner)
    assert code != 0
    assert f"BROKEN at row {seq}" in output and "does not match its hash" in output


def test_verify_names_a_deleted_row(entered, runner):
    tamper("DELETE FROM audit_event WHERE seq = 5")
    code, output = verify(runner)
    assert code != 0 and "BROKEN at row 5" in output and "missing" in output


def test_verify_notices_rows_cut_off_the_end(entered, runner):
    end = last_seq()
    tamper("DELETE FROM audit_event WHERE seq = :seq", seq=end)
    code, output = verify(runner)
    assert code != 0 and f"BROKEN at row {end}" in output


def test_verify_names_an_inserted_row(entered, runner):
    # A forged row slipped in after row 3 with a plausible, self-consistent hash: the next
    # genuine row no longer links to its predecessor.
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.seq == 3))
    fields = {"seq": 4, "occurred_at": "2025-05-02T10:00:00.000000Z", "category": "clinical",
              "action": "item.changed", "username": "intruder"}
    forged_hash = compute_hash(row.row_hash, fields)
    tamper("UPDATE audit_event SET seq = seq + 1000000 WHERE seq > 3")
    tamper("INSERT INTO audit_event (seq, occurred_at, category, action, username, prev_hash, "
           "row_hash) VALUES (4, :at, 'clinical', 'item.changed', 'intruder', :prev, :hash)",
           at="2025-05-02 10:00:00", prev=row.row_hash, hash=forged_hash)
    code, output = verify(runner)
    assert code != 0 and "BROKEN at row" in output


def test_verify_detects_an_insert_without_touching_the_triggers(entered, runner):
    end = last_seq()
    with db.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO audit_event (seq, occurred_at, category, action, prev_hash, row_hash) "
            "VALUES (:seq, :at, 'clinical', 'item.entered', :h, :h)"),
            {"seq": end + 1, "at": "2025-05-02 10:00:00", "h": GENESIS_HASH})
    code, output = verify(runner)
    assert code != 0 and f"BROKEN at row {end + 1}" in output


def test_an_audited_change_without_an_actor_is_refused(entered):
    db.session.info.clear()
    value = db.session.scalar(select(ItemValue).where(ItemValue.item_oid == "WEIGHT"))
    value.value = "99.0"
    with pytest.raises(AuditError, match="has no actor"):
        db.session.flush()
    db.session.rollback()
    assert verify_chain(db.session).ok


def test_rows_written_in_one_flush_chain_in_order_and_keep_their_full_values(entered):
    from ecrf.core.audit.trail import Actor, record

    before = db.session.scalar(select(sa.func.max(AuditEvent.seq)))
    actor = Actor(user_id=None, username="tester", site_code="S01")
    for n in range(3):
        record(db.session, actor, "test.row", category="clinical", path=f"p/{n}",
               new_value="x" * 5000, details={"n": n})
    db.session.commit()
    rows = db.session.execute(select(AuditEvent.seq, AuditEvent.path, AuditEvent.new_value)
                              .where(AuditEvent.seq > before).order_by(AuditEvent.id)).all()
    assert [(r.seq, r.path) for r in rows] == [(before + n + 1, f"p/{n}") for n in range(3)]
    assert all(r.new_value == "x" * 5000 for r in rows)
    assert verify_chain(db.session).ok


def test_a_value_too_long_for_its_column_is_refused_not_cut(entered):
    """PostgreSQL refuses a value longer than its column; SQLite, which holds text whatever
    the declared length, keeps it whole. Neither cuts it."""
    from ecrf.core.audit.trail import Actor, record

    record(db.session, Actor(user_id=None, username="tester"), "test.row",
           category="clinical", site_code="S" * 40)
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DataError):
            db.session.flush()
        db.session.rollback()
    else:
        db.session.commit()
        stored = db.session.scalar(select(AuditEvent.site_code).order_by(
            AuditEvent.seq.desc()).limit(1))
        assert stored == "S" * 40
    assert verify_chain(db.session).ok


# --- the screens and exports ----------------------------------------------------------------


def test_item_history_shows_old_new_and_why(entered, client, login_as):
    login_as("monitor", study="CAPTURE", username="mon1")
    html = client.get(VITALS + "/history?group=VS&row=1&item=WEIGHT").get_data(as_text=True)
    assert "History of Weight" in html
    assert html.index("72.5 kg") < html.index("75.0 kg")
    assert "source document re-read" in html and "crc1" in html and "coordinator" in html


def test_subject_audit_page_filters_and_downloads(entered, client, login_as):
    login_as("monitor", study="CAPTURE", username="mon1")
    html = client.get(BASE + "/audit").get_data(as_text=True)
    assert "Audit trail of S01-001" in html and "<td>subject.enrolled</td>" in html
    assert "CAPTURE/S01-001/SCREEN[1]/VITALS/VS[1]/WEIGHT" in html
    html = client.get(BASE + "/audit?action=item.changed&user=crc1&form=VITALS"
                      ).get_data(as_text=True)
    assert "source document re-read" in html and "<td>subject.enrolled</td>" not in html
    html = client.get(BASE + "/audit?form=CONSENT").get_data(as_text=True)
    assert "No audit rows match." in html
    html = client.get(BASE + "/audit?from=2000-01-01&to=2000-01-02").get_data(as_text=True)
    assert "No audit rows match." in html
    response = client.get(BASE + "/audit.csv?action=item.changed")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["path"].rsplit("/", 1)[-1] for r in rows} == {"WEIGHT", "BMI"}
    assert all(r["subject"] == "S01-001" and r["site"] == "S01" for r in rows)


def test_coordinators_cannot_read_the_audit_trail(entered, client, login_as):
    login_as("coordinator", site="S01", study="CAPTURE")
    assert client.get(BASE + "/audit").status_code == 403
    assert client.get("/studies/CAPTURE/audit.csv").status_code == 403


def test_study_audit_csv_is_site_scoped(entered, client, login_as):
    login_as("investigator", site="S02", study="CAPTURE", username="inv2")
    response = client.get("/studies/CAPTURE/audit.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and {r["site"] for r in rows} == {"S02"}
    assert all(r["subject"] != "S01-001" for r in rows)
    assert client.get(BASE + "/audit").status_code == 404  # another site's subject


def test_study_audit_csv_for_a_study_wide_role(entered, client, login_as):
    login_as("data_manager", study="CAPTURE")
    rows = list(csv.DictReader(io.StringIO(
        client.get("/studies/CAPTURE/audit.csv").get_data(as_text=True))))
    assert {"S01-001", "S02-001"} <= {r["subject"] for r in rows}
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)


def test_cli_export(entered, runner, tmp_path):
    target = tmp_path / "trail.csv"
    result = runner.invoke(args=["audit", "export", "--study", "CAPTURE", "--subject", "S01-001",
                                 "-o", str(target)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert "wrote 10 audit rows" in result.output and len(rows) == 10
    assert {r["subject"] for r in rows} == {"S01-001"}
    result = runner.invoke(args=["audit", "export", "--study", "CAPTURE", "--subject", "NOPE",
                                 "-o", str(target)])
    assert result.exit_code != 0 and "no subject 'NOPE'" in result.output
