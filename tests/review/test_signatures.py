"""E-signatures: what may be signed, credentials and lockout, binding to the data, breaking
on change, and the signatures to redo."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User
from ecrf.capture import operations as capture
from ecrf.capture.support import event_instance
from ecrf.core import audit
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.review import queries, signatures
from ecrf.review.models import Signature
from ecrf.review.signatures import SignatureError, SignatureRefused, SignTarget
from ecrf.review.support import ReviewError, ReviewPermissionError
from tests.capture.capture_setup import actor_for
from tests.conftest import PASSWORD
from tests.core.audit_setup import tamper
from tests.review.review_setup import (
    demog,
    form_of,
    load_review_study,
    save,
    start,
    subject_at,
    vitals,
)

WEIGHT = ("VS", 1, "WEIGHT")
LOCKOUT = {"lockout_threshold": 3, "lockout_minutes": 15}


@pytest.fixture
def study(app, make_study):
    return load_review_study(make_study)


@pytest.fixture
def subject(study):
    return subject_at(study, "S01-001")


@pytest.fixture
def crc(make_user, study):
    return actor_for(make_user("crc1", role="coordinator", study="REVIEW", site="S01"))


@pytest.fixture
def inv_user(make_user, study):
    return make_user("inv1", role="investigator", study="REVIEW", site="S01",
                     full_name="Dr Ines Martin")


@pytest.fixture
def inv(inv_user):
    return actor_for(inv_user, "investigator")


@pytest.fixture
def complete_screening(crc, subject):
    start(crc, subject)
    assert save(crc, subject, complete=True).status == "complete"
    assert save(crc, subject, "DEMOG", demog(), complete=True).status == "complete"
    return form_of(subject)


def sign(actor, target, *, password=PASSWORD, username="inv1", first=True,
         meaning="approval"):
    return signatures.sign(db.session, actor, target, password=password, meaning=meaning,
                           username=username, require_username=first, **LOCKOUT)


def test_signature_records_name_time_meaning_and_hash(inv, subject, complete_screening):
    target = SignTarget(subject, "form", form=complete_screening)
    signature = sign(inv, target)
    db.session.commit()
    assert signature.signer_name == "Dr Ines Martin"
    assert signature.meaning.startswith("Approved: I have reviewed this data")
    assert signature.signed_at.tzinfo is not None and signature.valid
    content = signatures.signed_content(db.session, target)
    assert content["forms"][0]["values"]["VS[1].WEIGHT"] == "72.5"
    assert signature.signed_hash == signatures.content_hash(content)
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "signature.signed"))
    assert row.new_value == signature.signed_hash and row.role == "investigator"
    assert row.path == "REVIEW/S01-001/SCREEN[1]/VITALS"


@pytest.mark.parametrize("statement, named", [
    ("UPDATE signature SET signed_hash = :forged",
     "signature #1 (form) (subject S01-001): stored '{forged}', last audited '{hash}': "
     "signed content hash differs"),
    ("UPDATE signature SET broken_at = :at, broken_reason = 'dba'",
     "signature #1 (form) (subject S01-001): stored 'broken', last audited 'valid'"),
    ("DELETE FROM signature",
     "signature #1: stored None, last audited '{hash}': the stored row is gone"),
])
def test_signatures_are_reconciled_with_their_audit_rows(inv, subject, complete_screening,
                                                         statement, named):
    signature = sign(inv, SignTarget(subject, "form", form=complete_screening))
    db.session.commit()
    signed = signature.signed_hash
    assert audit.reconcile(db.session).checked["signatures"] == 1
    tamper(statement, forged="f" * 64, at="2025-06-01 10:00:00")
    found = audit.reconcile(db.session)
    assert found.mismatches["signatures"] == 1
    assert str(found.shown[0]) == named.format(forged="f" * 64, hash=signed)


def test_a_change_breaks_form_event_and_casebook_signatures(crc, inv, subject,
                                                            complete_screening):
    event = event_instance(db.session, subject, "SCREEN", 1)
    demog_form = form_of(subject, "DEMOG")
    on_vitals = sign(inv, SignTarget(subject, "form", form=complete_screening))
    on_demog = sign(inv, SignTarget(subject, "form", form=demog_form), first=False,
                    username=None)
    on_event = sign(inv, SignTarget(subject, "event", event=event), first=False)
    on_casebook = sign(inv, SignTarget(subject, "casebook"), first=False)
    db.session.commit()

    save(crc, subject, values=vitals(WEIGHT="74.0"), reasons={WEIGHT: "rescaled"},
         complete=True)
    for signature in (on_vitals, on_event, on_casebook):
        db.session.refresh(signature)
        assert signature.broken_at is not None
        assert "WEIGHT[1] 72.5 -> 74.0" in signature.broken_reason
        assert "crc1" in signature.broken_reason
    db.session.refresh(on_demog)
    assert on_demog.valid, "a signature on data that did not change holds"
    broken = list(db.session.scalars(select(AuditEvent.path).where(
        AuditEvent.action == "signature.broken").order_by(AuditEvent.seq)))
    assert sorted(broken) == sorted(["REVIEW/S01-001/SCREEN[1]/VITALS", "REVIEW/S01-001/SCREEN[1]",
                                     "REVIEW/S01-001"])

    user = db.session.get(User, inv.user_id)
    redo = signatures.to_redo(db.session, user, subject.study)
    assert {s.id for s in redo} == {on_vitals.id, on_event.id, on_casebook.id}
    again = sign(inv, SignTarget(subject, "form", form=complete_screening), first=False)
    db.session.commit()
    assert again.valid
    assert {s.id for s in signatures.to_redo(db.session, user, subject.study)} == {
        on_event.id, on_casebook.id}


def test_a_save_that_changes_nothing_signed_keeps_the_signature(crc, inv, subject,
                                                                complete_screening):
    signature = sign(inv, SignTarget(subject, "form", form=complete_screening))
    db.session.commit()
    save(crc, subject, "DEMOG", demog(INITIALS="XYZ"), reasons={("DM", 1, "INITIALS"): "typo"},
         complete=True)
    db.session.refresh(signature)
    assert signature.valid


def test_only_complete_forms_without_open_queries_can_be_signed(crc, inv, subject, make_user):
    start(crc, subject)
    save(crc, subject)  # in progress
    form = form_of(subject)
    with pytest.raises(SignatureRefused, match="not complete: Screening · Vital signs"):
        sign(inv, SignTarget(subject, "form", form=form))
    event = event_instance(db.session, subject, "SCREEN", 1)
    with pytest.raises(SignatureRefused, match="Screening · Demography"):
        sign(inv, SignTarget(subject, "event", event=event))
    save(crc, subject, complete=True)
    monitor = actor_for(make_user("mon1", role="monitor", study="REVIEW", site="S01"),
                        "monitor")
    query = queries.raise_query(db.session, monitor, subject, "Weight plausible?",
                                target=queries.QueryTarget("SCREEN", 1, "VITALS", "VS", 1,
                                                           "WEIGHT"))
    db.session.commit()
    with pytest.raises(SignatureRefused, match=f"open queries: #{query.id}"):
        sign(inv, SignTarget(subject, "form", form=form))
    queries.answer(db.session, crc, query, "Yes, confirmed in the source")
    db.session.commit()
    assert sign(inv, SignTarget(subject, "form", form=form)).valid
    assert db.session.query(Signature).count() == 1


def test_wrong_passwords_count_toward_lockout_and_are_audited(inv, inv_user, subject,
                                                             complete_screening):
    target = SignTarget(subject, "form", form=complete_screening)
    for attempt in range(2):
        with pytest.raises(SignatureError) as caught:
            sign(inv, target, password=f"wrong-{attempt}")
        assert not caught.value.locked
        db.session.commit()
    with pytest.raises(SignatureError) as caught:
        sign(inv, target, username="someone-else")  # right password, wrong user id
    assert caught.value.locked
    db.session.commit()
    db.session.refresh(inv_user)
    assert inv_user.locked_until is not None
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.category == "security").order_by(AuditEvent.seq)))
    assert actions == ["signature.failed"] * 3 + ["account.locked"]
    with pytest.raises(SignatureError, match="locked"):
        sign(inv, target)
    assert db.session.query(Signature).count() == 0


def test_user_id_is_required_on_first_signing_only(inv, subject, complete_screening):
    target = SignTarget(subject, "form", form=complete_screening)
    with pytest.raises(ReviewError, match="user id and your password"):
        sign(inv, target, username="")
    assert sign(inv, target, username=None, first=False).valid


def test_coordinators_cannot_sign_and_investigators_only_at_their_sites(
        crc, subject, complete_screening, make_user):
    target = SignTarget(subject, "form", form=complete_screening)
    with pytest.raises(ReviewPermissionError, match="sign data"):
        sign(crc, target, username="crc1")
    elsewhere = actor_for(make_user("inv2", role="investigator", study="REVIEW", site="S02"),
                          "investigator", "S02")
    with pytest.raises(ReviewPermissionError, match="only at your own sites"):
        sign(elsewhere, target, username="inv2")


def test_awaiting_signature_lists_complete_unsigned_forms(inv, inv_user, subject,
                                                          complete_screening):
    waiting = signatures.awaiting_signature(db.session, inv_user, subject.study)
    assert {w.form.form_oid for w in waiting} == {"VITALS", "DEMOG"}
    sign(inv, SignTarget(subject, "event", event=complete_screening.event))
    db.session.commit()
    assert signatures.awaiting_signature(db.session, inv_user, subject.study) == []


def test_the_signed_hash_depends_on_values_only(crc, subject, complete_screening):
    target = SignTarget(subject, "form", form=complete_screening)
    first = signatures.content_hash(signatures.signed_content(db.session, target))
    assert first == signatures.content_hash(signatures.signed_content(db.session, target))
    capture.save_form  # noqa: B018  (the capture service is what changes values)
    save(crc, subject, values=vitals(NOTES="calm"), complete=True)
    assert signatures.content_hash(signatures.signed_content(db.session, target)) != first
