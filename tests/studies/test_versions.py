"""Study versions (load, unchanged, changed, refused), migration between versions,
enrolment, and the two real trials."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ecrf.capture import subjects
from ecrf.capture.migration import MigrationError, migrate_forms, preview_migration
from ecrf.capture.models import FormInstance, ScheduledVisit, Subject
from ecrf.core.audit import trail as audit
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.crf import check_study, content_hash, load_study
from ecrf.review import locks
from ecrf.studies import store as studies
from ecrf.studies.models import Study, StudySite, StudyVersion
from ecrf.studies.store import StudyDefinitionError
from tests.capture.sample import ACTOR, record, write_study

FORMS = Path(__file__).resolve().parents[2] / "forms"


def audit_rows(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.seq)))


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_study(tmp_path / "sample")


def test_check_folder_reports_nothing_for_a_valid_study(app, folder):
    assert studies.check_folder(folder) == []


def test_load_stores_version_1_with_its_hash_and_audits_it(app, folder):
    result = studies.load_folder(db.session, ACTOR, folder)
    db.session.commit()
    assert result.created and result.version.number == 1
    assert result.study.oid == "SAMPLE" and result.study.name == "Sample trial"
    version = db.session.scalar(select(StudyVersion))
    expected = load_study(folder).content_hash
    assert version.content_hash == expected == content_hash(json.loads(version.content))
    assert version.protocol_version == "1.0" and version.loaded_by == "tester"
    assert version.label == "v1 (protocol 1.0)"
    [row] = audit_rows("study.version_loaded")
    assert row.category == "metadata" and row.study_oid == "SAMPLE"
    assert json.loads(row.details)["content_hash"] == expected
    assert row.new_value == "v1 (protocol 1.0)"
    assert audit.verify_chain(db.session).ok


def test_loading_the_same_content_again_changes_nothing(app, folder):
    first = studies.load_folder(db.session, ACTOR, folder)
    db.session.commit()
    # Comments, quoting and key order do not change the content.
    study_yaml = folder / "study.yaml"
    study_yaml.write_text("# reformatted\n" + study_yaml.read_text().replace(
        "  name: Sample trial\n", "  name: 'Sample trial'   # same value\n"))
    again = studies.load_folder(db.session, ACTOR, folder)
    db.session.commit()
    assert not again.created and again.version.id == first.version.id
    assert db.session.scalar(select(func.count()).select_from(StudyVersion)) == 1
    assert len(audit_rows("study.version_loaded")) == 1


def test_changed_content_is_the_next_version(app, folder):
    studies.load_folder(db.session, ACTOR, folder)
    write_study(folder, amended=True)
    second = studies.load_folder(db.session, ACTOR, folder)
    db.session.commit()
    assert second.created and second.version.number == 2
    assert second.version.label == "v2 (protocol 1.1)"
    assert studies.latest_version(db.session, second.study).number == 2
    assert [v.number for v in studies.versions(db.session, second.study)] == [1, 2]
    hashes = {v.content_hash for v in studies.versions(db.session, second.study)}
    assert len(hashes) == 2


def test_an_invalid_definition_is_refused_with_every_problem(app, folder):
    crf = folder / "crfs" / "DEMOG.yaml"
    crf.write_text(crf.read_text().replace("type: decimal", "type: decimall")
                   .replace("label: Sex", "label: Sex\n        requried: true"))
    with pytest.raises(StudyDefinitionError) as caught:
        studies.load_folder(db.session, ACTOR, folder)
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) >= 2
    assert any("requried" in m for m in messages) and any("decimall" in m for m in messages)
    assert studies.check_folder(folder) == caught.value.problems
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(StudyVersion)) == 0
    assert db.session.scalar(select(func.count()).select_from(Study)) == 0


def test_definition_for_is_built_from_stored_content_and_cached(app, folder):
    version = studies.load_folder(db.session, ACTOR, folder).version
    db.session.commit()
    definition = studies.definition_for(version)
    assert definition is studies.definition_for(version)
    studies._DEFINITIONS.clear()
    rebuilt = studies.definition_for(version)
    assert rebuilt is not definition and rebuilt.oid == "SAMPLE"
    assert [e.oid for e in rebuilt.events] == [e.oid for e in definition.events]


def test_require_study_names_an_unknown_oid(app):
    with pytest.raises(studies.StudyError, match="no study with OID 'nope'"):
        studies.require_study(db.session, "nope")


# --- migration -----------------------------------------------------------------------------


@pytest.fixture
def two_versions(app, folder, make_site):
    """v1 with two subjects (one whose weight v2 refuses), then v2 loaded."""
    site = make_site("S01")
    study = studies.load_folder(db.session, ACTOR, folder).study
    db.session.add(StudySite(study=study, site=site, active=True))
    db.session.flush()
    day = dt.date(2025, 1, 6)
    fits = subjects.enrol_subject(db.session, ACTOR, study, site, "S01-001", day)
    heavy = subjects.enrol_subject(db.session, ACTOR, study, site, "S01-002", day)
    record(db.session, fits, "SCREEN", "DEMOG", {"SEX": "F", "WEIGHT": 70},
           status="complete")
    record(db.session, fits, "SCREEN", "CONSENT", {"CONSDT": day})
    record(db.session, heavy, "SCREEN", "DEMOG", {"BRTHDT": dt.date(1960, 5, 1),
                                                  "WEIGHT": 25})
    write_study(folder, amended=True)
    v2 = studies.load_folder(db.session, ACTOR, folder).version
    db.session.commit()
    return study, v2


def test_preview_lists_changes_and_values_that_would_not_fit(two_versions):
    study, v2 = two_versions
    preview = preview_migration(db.session, study, 2)
    assert preview.subjects == ["S01-001", "S01-002"]
    demog = {f.subject_key: f for f in preview.forms if f.form_oid == "DEMOG"}
    change = demog["S01-001"]
    assert change.added == ("HEIGHT",) and change.removed == ("BRTHDT",)
    assert "WEIGHT: range 20..300 -> 30..200" in change.changed
    assert change.fits and change.complete
    refused = demog["S01-002"]
    assert not refused.fits
    assert any("BRTHDT holds '1960-05-01'" in p for p in refused.problems)
    assert any("WEIGHT: 25 is outside the range 30..200" in p for p in refused.problems)
    assert preview.blocked_subjects == ["S01-002"]
    text = "\n".join(preview.lines())
    assert "S01-002/SCREEN[1]/DEMOG" in text and "REFUSED" in text and "+ HEIGHT" in text
    # The preview changes nothing.
    assert {f.study_version_id for f in db.session.scalars(select(FormInstance))} != {v2.id}


def test_migration_needs_a_reason(two_versions):
    study, _ = two_versions
    with pytest.raises(MigrationError, match="reason is required"):
        migrate_forms(db.session, ACTOR, study, 2, reason="  ")


def test_migration_moves_fitting_subjects_and_audits_each_form(two_versions):
    study, v2 = two_versions
    result = migrate_forms(db.session, ACTOR, study, 2, reason="Amendment 1 approved")
    db.session.commit()
    assert result.subjects == ["S01-001"] and result.forms == 2
    assert [f.subject_key for f in result.refused] == ["S01-002"]
    moved = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-001"))
    kept = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-002"))
    assert moved.study_version_id == v2.id and kept.study_version_id != v2.id
    forms = db.session.scalars(select(FormInstance)).all()
    assert {f.study_version_id == v2.id for f in forms if f.subject_id == moved.id} == {True}
    assert {f.study_version_id == v2.id for f in forms if f.subject_id == kept.id} == {False}
    rows = audit_rows("form.version_migrated")
    assert len(rows) == 2 and {r.subject_key for r in rows} == {"S01-001"}
    demog = next(r for r in rows if r.path.endswith("/DEMOG"))
    assert demog.path == "SAMPLE/S01-001/SCREEN[1]/DEMOG"
    assert demog.old_value == "v1 (protocol 1.0)" and demog.new_value == "v2 (protocol 1.1)"
    assert demog.reason == "Amendment 1 approved" and demog.category == "data"
    assert "HEIGHT" in json.loads(demog.details)["added"]
    [subject_row] = audit_rows("subject.version_migrated")
    assert subject_row.subject_key == "S01-001"
    # The moved subject's schedule follows v2 at once.
    assert db.session.scalar(select(func.count()).select_from(ScheduledVisit)
                             .where(ScheduledVisit.subject_id == moved.id)) > 0
    # Nothing left to move for the migrated subject.
    again = preview_migration(db.session, study, 2, ["S01-001"])
    assert again.subjects == [] and again.forms == []


def _lock(kind: str, study: Study) -> str:
    """Lock S01-001's DEMOG form, S01-001 or site S01; the start of the lock's message."""
    subject = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-001"))
    if kind == "form":
        form = db.session.scalar(select(FormInstance).where(
            FormInstance.subject_id == subject.id, FormInstance.form_oid == "DEMOG"))
        locks.lock_form(db.session, ACTOR, form, "cleaned")
        return "locked: Form DEMOG of S01-001 at SCREEN[1] is locked (by tester"
    if kind == "subject":
        locks.lock_subject(db.session, ACTOR, subject, "ready")
        return "Subject S01-001 is locked (by tester"
    locks.lock_site(db.session, ACTOR, study, subject.site, "closed")
    return "Site S01 is locked (by tester"


@pytest.mark.parametrize("kind", ["form", "subject", "site"])
def test_migration_leaves_locked_data_on_its_version_and_says_why(two_versions, kind):
    study, v2 = two_versions
    fragment = _lock(kind, study)
    db.session.commit()
    preview = preview_migration(db.session, study, 2)
    assert preview.blocked_subjects == ["S01-001", "S01-002"]
    assert fragment in "\n".join(preview.lines())
    result = migrate_forms(db.session, ACTOR, study, 2, reason="Amendment 1 approved")
    db.session.commit()
    assert result.subjects == [] and result.forms == 0
    said = [p for f in result.refused for p in f.problems] + list(result.locked.values())
    assert any(fragment in text for text in said), said
    assert {f.study_version_id for f in db.session.scalars(select(FormInstance))} != {v2.id}
    assert v2.id not in {s.study_version_id for s in db.session.scalars(select(Subject))}
    assert audit_rows("form.version_migrated") == []


def test_once_unlocked_the_subject_migrates(two_versions):
    study, v2 = two_versions
    _lock("subject", study)
    [lock] = locks.active_locks(db.session, study)
    locks.unlock(db.session, ACTOR, lock, "amendment to apply")
    result = migrate_forms(db.session, ACTOR, study, 2, reason="Amendment 1 approved")
    assert result.subjects == ["S01-001"] and result.locked == {}


@pytest.mark.parametrize(("transition", "word"), [("freeze", "frozen"), ("lock", "locked")])
def test_a_frozen_or_locked_study_is_not_migrated(two_versions, transition, word):
    study, v2 = two_versions
    locks.change_study_status(db.session, ACTOR, study, transition, "interim analysis")
    db.session.commit()
    expected = f"study SAMPLE is {word}: no form can move to another version"
    assert expected in preview_migration(db.session, study, 2).lines()[-1]
    with pytest.raises(MigrationError, match=f"{expected}.*nothing was migrated"):
        migrate_forms(db.session, ACTOR, study, 2, reason="Amendment 1 approved")
    assert audit_rows("form.version_migrated") == []


def test_cli_migration_names_the_lock_of_each_refused_subject(two_versions, runner):
    study, _ = two_versions
    _lock("subject", study)
    db.session.commit()
    result = runner.invoke(args=["study", "migrate", "SAMPLE", "--to", "2", "--reason", "A1"])
    assert result.exit_code == 1
    assert "refused S01-001: locked: Subject S01-001 is locked (by tester" in result.stderr
    assert "2 subject(s) not migrated (their data does not fit v2 (protocol 1.1) or is " \
           "locked): S01-001, S01-002" in result.stderr


def test_migration_of_named_subjects_only_and_unknown_keys(two_versions):
    study, _ = two_versions
    with pytest.raises(MigrationError, match="no subject NOPE"):
        preview_migration(db.session, study, 2, ["NOPE"])
    with pytest.raises(MigrationError, match="has no version 9"):
        preview_migration(db.session, study, 9)
    preview = preview_migration(db.session, study, 2, ["S01-002"])
    assert preview.subjects == ["S01-002"]
    assert {f.subject_key for f in preview.forms} == {"S01-002"}


# --- enrolment -----------------------------------------------------------------------------


@pytest.fixture
def sample_study(app, folder, make_study):
    make_study("SAMPLE", sites=("S01", "S02"))
    study = studies.load_folder(db.session, ACTOR, folder).study
    db.session.commit()
    return study


def test_enrolment_stores_subject_schedule_and_audit(sample_study, make_site):
    site = make_site("S01")
    subject = subjects.enrol_subject(db.session, ACTOR, sample_study, site, " S01-007 ",
                                     dt.date(2025, 3, 3), today=dt.date(2025, 3, 10))
    db.session.commit()
    assert subject.subject_key == "S01-007" and subject.status == "screening"
    assert subject.study_version.number == 1
    assert subject.schedule_computed_on == dt.date(2025, 3, 10)
    visits = db.session.scalars(select(ScheduledVisit).where(
        ScheduledVisit.subject_id == subject.id)).all()
    screen = next(v for v in visits if v.event_oid == "SCREEN")
    assert screen.planned == dt.date(2025, 3, 3) and screen.status == "due"
    [row] = audit_rows("subject.enrolled")
    assert row.subject_key == "S01-007" and row.site_code == "S01"
    assert row.study_version == "v1 (protocol 1.0)" and row.category == "data"


def test_enrolment_takes_the_latest_version(sample_study, folder, make_site):
    write_study(folder, amended=True)
    studies.load_folder(db.session, ACTOR, folder)
    subject = subjects.enrol_subject(db.session, ACTOR, sample_study, make_site("S01"),
                                     "S01-001", dt.date(2025, 3, 3))
    assert subject.study_version.number == 2


def test_duplicate_key_is_refused_whatever_the_case(sample_study, make_site):
    site = make_site("S01")
    subjects.enrol_subject(db.session, ACTOR, sample_study, site, "S01-001",
                           dt.date(2025, 3, 3))
    with pytest.raises(subjects.EnrolmentError, match="'S01-001' is already used") as caught:
        subjects.enrol_subject(db.session, ACTOR, sample_study, make_site("S02"), "s01-001",
                               dt.date(2025, 3, 3))
    assert caught.value.field == "subject_key"


def test_the_database_refuses_a_key_that_differs_only_by_case(sample_study, make_site,
                                                               make_study):
    first = subjects.enrol_subject(db.session, ACTOR, sample_study, make_site("S01"), "TLS-001",
                                   dt.date(2025, 3, 3))
    db.session.commit()
    audit.bind_actor(db.session, ACTOR)
    db.session.add(Subject(study=sample_study, site=make_site("S02"), subject_key="tls-001",
                           status="screening", enrolled_on=dt.date(2025, 3, 3),
                           study_version=first.study_version))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    # Another study may use the same key, in any case.
    other = make_study("OTHER", sites=("S01",))
    audit.bind_actor(db.session, ACTOR)
    db.session.add(Subject(study=other, site=make_site("S01"), subject_key="tls-001",
                           status="screening", enrolled_on=dt.date(2025, 3, 3),
                           study_version=first.study_version))
    db.session.flush()


def test_an_enrolment_that_loses_the_race_is_refused_clearly(sample_study, make_site,
                                                             monkeypatch):
    subjects.enrol_subject(db.session, ACTOR, sample_study, make_site("S01"), "TLS-001",
                           dt.date(2025, 3, 3))
    db.session.commit()
    # As if the other enrolment committed between this one's check and its insert.
    monkeypatch.setattr(subjects, "key_taken", lambda *args: None)
    with pytest.raises(subjects.EnrolmentError, match="'tls-001' was enrolled in Sample "
                                                      "trial at the same moment") as caught:
        subjects.enrol_subject(db.session, ACTOR, sample_study, make_site("S02"), "tls-001",
                               dt.date(2025, 3, 3))
    assert caught.value.field == "subject_key"
    db.session.commit()  # the session goes on: only the refused insert was undone
    assert [s.subject_key for s in db.session.scalars(select(Subject))] == ["TLS-001"]


def test_site_outside_the_study_is_refused(sample_study, make_site):
    other = make_site("S09")
    with pytest.raises(subjects.EnrolmentError, match="site S09 does not take part in"):
        subjects.enrol_subject(db.session, ACTOR, sample_study, other, "S09-001",
                               dt.date(2025, 3, 3))


def test_site_that_is_not_mine_is_refused(sample_study, make_user, make_site):
    user = make_user("crc1", role="coordinator", study="SAMPLE", site="S01")
    actor = audit.Actor(user_id=user.id, username=user.username, role="coordinator")
    with pytest.raises(subjects.EnrolmentError, match="may not enrol subjects at site S02"):
        subjects.enrol_subject(db.session, actor, sample_study, make_site("S02"), "S02-001",
                               dt.date(2025, 3, 3))
    assert subjects.enrol_sites(db.session, user, sample_study) == [make_site("S01")]
    mine = subjects.enrol_subject(db.session, actor, sample_study, make_site("S01"), "S01-001",
                                  dt.date(2025, 3, 3))
    assert mine.created_by_id == user.id


@pytest.mark.parametrize("key,enrolled_on,message", [
    ("", dt.date(2025, 3, 3), "a screening number is required"),
    ("bad key!", dt.date(2025, 3, 3), "is not valid"),
    ("new", dt.date(2025, 3, 3), "reserved"),
    ("S01-001", dt.date(2999, 1, 1), "is in the future"),
])
def test_bad_entries_are_refused_with_a_clear_message(sample_study, make_site, key,
                                                      enrolled_on, message):
    with pytest.raises(subjects.EnrolmentError, match=message):
        subjects.enrol_subject(db.session, ACTOR, sample_study, make_site("S01"), key,
                               enrolled_on)


def test_enrolment_needs_a_loaded_version(app, make_study, make_site):
    study = make_study("EMPTY")
    with pytest.raises(subjects.EnrolmentError, match="no study definition loaded"):
        subjects.enrol_subject(db.session, ACTOR, study, make_site("S01"), "S01-001",
                               dt.date(2025, 3, 3))


# --- the real trials -----------------------------------------------------------------------


@pytest.mark.parametrize("name,oid", [("dexaml03", "DEXAML03"), ("ucmscexo", "UCMSCEXO")])
def test_real_trials_are_valid_and_load(app, name, oid):
    problems = check_study(FORMS / name)
    assert problems == [], "\n".join(str(p) for p in problems[:20])
    result = studies.load_folder(db.session, ACTOR, FORMS / name)
    db.session.commit()
    assert result.created and result.study.oid == oid
    again = studies.load_folder(db.session, ACTOR, FORMS / name)
    assert not again.created
