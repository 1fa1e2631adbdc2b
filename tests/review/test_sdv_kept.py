"""SDV counts kept per subject (``sdv.kept_counts``): after every kind of change (a save,
an SDV mark, its withdrawal, a removed row, a lock, a study-version migration, an ODM
import) the counts read equal a fresh count, only the subjects whose audit trail moved
are counted again, and a second view with no change counts nothing again."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from ecrf.capture.migration import migrate_forms
from ecrf.capture.models import Subject
from ecrf.core.extensions import db
from ecrf.outputs.odm.importer.clinical import import_odm_clinical
from ecrf.review import locks, sdv
from ecrf.review.models import SdvSubjectCount
from ecrf.studies import store as studies
from tests.outputs.clinical_setup import (
    LOADER,
    STUDY_FOLDER,
    actor,
    form_of,
    populate,
    save,
)
from tests.outputs.test_odm_clinical import _copy_study, _retarget, export

SEX = ("DEMOG_MAIN", 1, "SEX")
HEIGHT = ("DEMOG_MAIN", 1, "HEIGHT")
CONSDT = ("CONSENT_MAIN", 1, "CONSDT")


@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


@pytest.fixture
def dm(make_user, cast):
    return actor(make_user("dm1", role="data_manager", study="CLINX"), "data_manager", None)


def fresh(study) -> dict[int, tuple[int, int, int]]:
    """(total, verified, forms pending) of every subject, counted afresh."""
    live = sdv.subject_counts(study, sdv.scope_table(db.session, study), forms_pending=True)
    found = {r.subject_id: (r.total, r.verified, r.forms_pending)
             for r in db.session.execute(select(live))}
    return {sid: found.get(sid, (0, 0, 0)) for sid in db.session.scalars(
        select(Subject.id).where(Subject.study_id == study.id))}


def kept(study) -> tuple[dict[int, tuple[int, int, int]], int]:
    """The kept counts as a page reads them, committed as the page does, and how many
    subjects were counted again."""
    rows = sdv.kept_counts(db.session, study)
    ids = select(Subject.id).where(Subject.study_id == study.id)
    found = {r.subject_id: (r.total, r.verified, r.forms_pending)
             for r in db.session.execute(select(rows).where(rows.c.subject_id.in_(ids)))}
    written = sdv.kept_written(db.session)
    db.session.commit()
    return found, written


def assert_kept(study, recounted: int) -> dict[int, tuple[int, int, int]]:
    found, written = kept(study)
    assert found == fresh(study)
    assert written == recounted
    again, none = kept(study)
    assert again == found and none == 0, "a second view counts nothing again"
    return found


def change_a_value(cast, dm):
    save(cast.crc, cast.subject, "SCREEN", "DEMOG", {SEX: "M"},
         reasons={SEX: "wrong box ticked"}, complete=True)


def verify(cast, dm):
    sdv.verify_items(db.session, cast.monitor, form_of(cast.subject, "DEMOG", "SCREEN"),
                     [HEIGHT])


def unverify(cast, dm):
    sdv.unverify(db.session, cast.monitor, form_of(cast.subject, "CONSENT", "SCREEN"),
                 [CONSDT], "verified against the wrong visit")


def remove_a_row(cast, dm):
    save(cast.crc, cast.subject, "LOGS", "AE", {}, removed={("AE_LINE", 2): "duplicate"})


def lock_the_subject(cast, dm):
    locks.lock_subject(db.session, dm, cast.subject, "Ready")


def lock_a_form(cast, dm):
    locks.lock_form(db.session, dm, form_of(cast.subject, "CONSENT", "SCREEN"), "Ready")


CHANGES = [change_a_value, verify, unverify, remove_a_row, lock_the_subject, lock_a_form]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.__name__)
def test_kept_counts_equal_a_fresh_count_after_a_change(cast, dm, change):
    before = assert_kept(cast.study, 2)
    change(cast, dm)
    db.session.commit()
    after = assert_kept(cast.study, 1)  # only the subject whose trail moved
    assert after[cast.other.id] == before[cast.other.id]
    if change in (change_a_value, verify, unverify, remove_a_row):
        assert after[cast.subject.id] != before[cast.subject.id]


def test_kept_counts_follow_a_new_scope_and_a_version_migration(cast, tmp_path):
    assert_kept(cast.study, 2)
    folder = tmp_path / "v2"
    shutil.copytree(STUDY_FOLDER, folder)
    text = (folder / "study.yaml").read_text()
    text = text.replace('protocol_version: "2.0"', 'protocol_version: "2.1"')
    (folder / "study.yaml").write_text(text.replace(
        "sdv_scope:\n    type: text\n    default: all",
        "sdv_scope:\n    type: text\n    default: critical"))
    assert studies.load_folder(db.session, LOADER, folder).version.number == 2
    db.session.commit()
    before = assert_kept(cast.study, 2)  # the items in scope changed: every subject
    result = migrate_forms(db.session, LOADER, cast.study, 2, ["S01-001"],
                           reason="Amendment 2 approved")
    db.session.commit()
    assert result.subjects == ["S01-001"]
    after = assert_kept(cast.study, 1)
    assert after[cast.subject.id] != before[cast.subject.id]


def test_kept_counts_after_an_odm_import(cast, tmp_path, make_study):
    data = export(cast.study)
    fresh_study = _copy_study(tmp_path, make_study, "CLINK")
    assert_kept(fresh_study, 0)
    path = tmp_path / "first.xml"
    path.write_bytes(_retarget(export(cast.study, subject="S01-001"), "CLINK"))
    assert import_odm_clinical(db.session, LOADER, fresh_study, path).committed
    db.session.commit()
    assert_kept(fresh_study, 1)
    path = tmp_path / "all.xml"
    path.write_bytes(_retarget(data, "CLINK"))
    assert import_odm_clinical(db.session, LOADER, fresh_study, path).committed
    db.session.commit()
    counts = assert_kept(fresh_study, 1)  # the new subject only: the first is unchanged
    assert len(counts) == 2 and all(total for total, _, _ in counts.values())


def test_a_failed_upsert_gives_the_counts_computed_afresh(cast):
    expected = fresh(cast.study)

    def break_the_upsert(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO sdv_subject_count" in statement:  # as if the table were gone
            statement = statement.replace("sdv_subject_count", "sdv_subject_count_gone", 1)
        return statement, parameters

    sa.event.listen(db.engine, "before_cursor_execute", break_the_upsert, retval=True)
    try:
        rows = sdv.kept_counts(db.session, cast.study)
        found = {r.subject_id: (r.total, r.verified, r.forms_pending)
                 for r in db.session.execute(select(rows))}
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", break_the_upsert)
    assert {sid: found.get(sid, (0, 0, 0)) for sid in expected} == expected
    assert sdv.kept_written(db.session) == 0
    assert db.session.scalar(select(SdvSubjectCount.subject_id)) is None
