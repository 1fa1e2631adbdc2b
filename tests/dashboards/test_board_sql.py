"""The boards and SDV progress counted by SQL aggregates give the numbers the former
row-by-row Python computation gave, on a study with the awkward cases (subjects without
forms, events not done, subjects moved to a version without some forms, answered and
closed queries, broken signatures, locked subjects), on SQLite and PostgreSQL; and each
page takes the same number of statements for 3 and for 12 subjects."""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
from collections import Counter, defaultdict

import pytest
from sqlalchemy import and_, func, select, update

from ecrf import review
from ecrf.capture import EventInstance, FormInstance, GroupRow, ItemValue, Subject
from ecrf.capture.events import declare_not_done
from ecrf.core import utcnow
from ecrf.core.extensions import db
from ecrf.dashboards import boards
from ecrf.dashboards import views as dashboard_views
from ecrf.review import Lock, Query, SdvMark, Signature, locks, queries, sdv
from ecrf.review.views import forms as forms_views
from ecrf.studies import Site, StudyVersion, definition_for
from ecrf.studies import store as studies
from tests.capture.capture_setup import LOADER, actor_for
from tests.dashboards.test_dashboards import (
    BASE,
    client_for,
    populate,
    statements,
    text_of,
)
from tests.review.review_setup import REVIEW_STUDY, save, start, subject_at, vitals

# --- the former computation, every row loaded into Python --------------------------------------


def old_missing(study) -> tuple[list[tuple], int]:
    events = db.session.execute(
        select(EventInstance.id, EventInstance.event_oid, EventInstance.repeat,
               Subject.subject_key, Site.code, Subject.study_version_id)
        .join(Subject, Subject.id == EventInstance.subject_id)
        .join(Site, Site.id == Subject.site_id)
        .where(Subject.study_id == study.id, EventInstance.state != "not_done")
        .order_by(Subject.subject_key, EventInstance.id)).all()
    present: dict[int, set[str]] = defaultdict(set)
    for event_id, form_oid in db.session.execute(
            select(FormInstance.event_instance_id, FormInstance.form_oid)):
        present[event_id].add(form_oid)
    versions = {v.id: v for v in db.session.scalars(select(StudyVersion))}
    missing = []
    for event_id, event_oid, repeat, key, code, version_id in events:
        try:
            expected = definition_for(versions[version_id]).event(event_oid).forms
        except Exception:
            continue
        missing += [(key, code, event_oid, repeat, f) for f in expected
                    if f not in present[event_id]]
    return missing[:boards.LIST_LIMIT], len(missing)


def old_metrics(study, now) -> tuple:
    by_status, by_origin, open_ages, close_times, recent = Counter(), Counter(), [], [], 0
    for status, origin, created, changed in db.session.execute(
            select(Query.status, Query.origin, Query.created_at, Query.status_changed_at)
            .where(Query.study_id == study.id)):
        by_status[status] += 1
        by_origin[origin] += 1
        if status == "closed":
            close_times.append((changed - created).total_seconds() / 86400)
            recent += changed >= now - dt.timedelta(days=30)
        else:
            open_ages.append((now - created).total_seconds() / 86400)

    def median(values):
        return round(statistics.median(values), 1) if values else None

    return by_status, by_origin, median(open_ages), median(close_times), recent


def old_sdv(study) -> dict[int, tuple[str, str, int, int, int]]:
    """{subject id: (key, site, total, verified, forms pending)} of every subject."""
    found = {sid: [key, code, 0, 0, set()] for sid, key, code in db.session.execute(
        select(Subject.id, Subject.subject_key, Site.code).join(Site, Site.id == Subject.site_id)
        .where(Subject.study_id == study.id))}
    mark = and_(SdvMark.form_instance_id == ItemValue.form_instance_id,
                SdvMark.group_oid == ItemValue.group_oid, SdvMark.row == ItemValue.row,
                SdvMark.item_oid == ItemValue.item_oid, SdvMark.reset_at.is_(None))
    rows = db.session.execute(
        select(ItemValue.subject_id, FormInstance.id, FormInstance.study_version_id,
               ItemValue.form_oid, ItemValue.item_oid, func.count(ItemValue.id),
               func.count(SdvMark.id))
        .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
        .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                  GroupRow.group_oid == ItemValue.group_oid,
                                  GroupRow.row == ItemValue.row))
        .outerjoin(SdvMark, mark)
        .where(ItemValue.value.is_not(None), GroupRow.removed_at.is_(None))
        .group_by(ItemValue.subject_id, FormInstance.id, FormInstance.study_version_id,
                  ItemValue.form_oid, ItemValue.item_oid)).all()
    versions = {v.id: v for v in db.session.scalars(select(StudyVersion))}
    for subject_id, form_id, version_id, form_oid, item_oid, total, verified in rows:
        if item_oid not in sdv.items_in_scope(definition_for(versions[version_id]), form_oid):
            continue
        entry = found[subject_id]
        entry[2] += total
        entry[3] += min(verified, total)
        if verified < total:
            entry[4].add(form_id)
    return {sid: (k, c, t, v, len(f)) for sid, (k, c, t, v, f) in found.items()}


def old_readiness(study, now) -> list[tuple[str, str, list[str]]]:
    """Every unlocked subject, by site and key, with what blocks its lock."""
    progress = old_sdv(study)
    statuses: dict[int, Counter] = defaultdict(Counter)
    for subject_id, status in db.session.execute(
            select(FormInstance.subject_id, FormInstance.status)):
        statuses[subject_id][status] += 1
    counts = queries.query_counts(db.session, study, progress, now=now)
    signatures = list(db.session.scalars(select(Signature).where(Signature.broken_at.is_(None))))
    locked = set(db.session.scalars(select(Lock.subject_id).where(
        Lock.scope == "subject", Lock.unlocked_at.is_(None))))
    unsigned: Counter = Counter()
    for form in db.session.scalars(select(FormInstance)):
        if not any(s.subject_id == form.subject_id and (
                s.form_instance_id == form.id or s.scope == "casebook"
                or (s.scope == "event" and s.event_instance_id == form.event_instance_id))
                for s in signatures):
            unsigned[form.subject_id] += 1
    result = []
    for subject_id, (key, code, total, verified, _forms) in sorted(
            progress.items(), key=lambda item: (item[1][1], item[1][0])):
        if subject_id in locked:
            continue
        blockers, forms = [], statuses[subject_id]
        if not forms:
            blockers.append("no data")
        if forms["in_progress"]:
            blockers.append(f"{forms['in_progress']} form(s) in progress")
        opened, answered, _age = counts.get(subject_id, (0, 0, None))
        if opened or answered:
            blockers.append(f"{opened + answered} unclosed query(ies)")
        if total - verified:
            blockers.append(f"{total - verified} item(s) to verify")
        if unsigned[subject_id]:
            blockers.append(f"{unsigned[subject_id]} form(s) not signed")
        result.append((key, code, blockers))
    return result


# --- a study with every awkward case ---------------------------------------------------------


def second_version(study, tmp_path) -> StudyVersion:
    """Version 2 of REVIEW, whose demography moved from screening to week 4."""
    folder = tmp_path / "review_v2"
    shutil.copytree(REVIEW_STUDY, folder)
    text = (folder / "study.yaml").read_text()
    text = text.replace("forms: [DEMOG, VITALS]", "forms: [VITALS]")
    (folder / "study.yaml").write_text(text.replace("forms: [VITALS]\n", "forms: [VITALS, DEMOG]\n")
                                       .replace("forms: [VITALS, DEMOG]\n", "forms: [VITALS]\n", 1))
    version = studies.load_folder(db.session, LOADER, folder).version
    db.session.commit()
    return version


def awkward(world, tmp_path) -> dict[str, Subject]:
    study, crc, monitor = world["study"], world["crc"], world["monitor"]
    dm = actor_for(world["users"]["dm1"], "data_manager")
    populate(world, ["S01-001", "S01-002", "S01-003", "S01-004"])
    populate(world, ["S02-001"], site="S02")
    subjects = {s.subject_key: s for s in db.session.scalars(
        select(Subject).where(Subject.study_id == study.id))}
    subject_at(study, "S01-010")  # no form at all
    started = subject_at(study, "S01-011")  # screening started, nothing saved
    start(crc, started)
    skipped = subject_at(study, "S02-012")  # week 4 not done
    start(actor_for(None, site="S02"), skipped)
    declare_not_done(db.session, actor_for(None, site="S02"), skipped, "WEEK4", 1, "Missed")
    busy = subject_at(study, "S01-013")  # vitals in progress
    start(crc, busy)
    save(crc, busy)
    db.session.commit()
    # S01-002 moves to version 2: its demography is no longer expected at screening.
    moved = subjects["S01-002"]
    moved.study_version_id = second_version(study, tmp_path).id
    start(crc, moved, "WEEK4")
    # Queries answered and closed, at various ages.
    first = db.session.scalar(select(Query).where(Query.subject_id == subjects["S01-001"].id))
    queries.answer(db.session, crc, first, "Checked.")
    for key in ("S01-003", "S01-004"):
        query = db.session.scalar(select(Query).where(Query.subject_id == subjects[key].id))
        queries.close(db.session, monitor, query, "Fine.")
    now = utcnow()
    for n, query in enumerate(db.session.scalars(select(Query).order_by(Query.id))):
        db.session.execute(update(Query).where(Query.id == query.id).values(
            created_at=now - dt.timedelta(days=5 + 7 * n, hours=n),
            status_changed_at=now - dt.timedelta(days=n % 3, hours=3 * n)))
    # A broken signature: the signed vitals of S01-003 changed afterwards.
    save(crc, subjects["S01-003"], values=vitals(SYSBP="190", WEIGHT="80"), complete=True,
         acks={("VS_SYSBP_HIGH", 0): "confirmed"}, reasons={("VS", 1, "WEIGHT"): "Typo"})
    # A locked subject.
    locks.lock_subject(db.session, dm, subjects["S01-004"], "Ready")
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Signature)
                             .where(Signature.broken_at.is_not(None)))
    return subjects


def test_sql_counts_match_the_row_by_row_computation(app, world, tmp_path):
    study = world["study"]
    awkward(world, tmp_path)
    now = utcnow()
    board = boards.data_manager(db.session, world["users"]["dm1"], study, now=now)

    missing, total = old_missing(study)
    assert [(m.subject_key, m.site_code, m.event_oid, m.repeat, m.form_oid)
            for m in board.missing] == missing
    assert board.missing_total == total
    assert ("S01-002", "S01", "SCREEN", 1, "DEMOG") not in missing, "not in version 2"
    assert ("S01-002", "S01", "WEEK4", 1, "DEMOG") in missing
    assert not any(m[0] == "S02-012" and m[2] == "WEEK4" for m in missing), "not done"

    metrics = board.metrics
    assert (metrics.by_status, metrics.by_origin, metrics.median_open_days,
            metrics.median_days_to_close, metrics.closed_last_30_days) == old_metrics(study, now)
    assert metrics.by_status["closed"] == 2 and metrics.by_status["answered"] >= 1

    readiness = old_readiness(study, now)
    assert [(r.subject_key, r.site_code, r.blockers) for r in board.readiness] == [
        r for r in readiness if r[2]]
    assert board.unlocked_count == len(readiness)
    assert board.ready_count == sum(1 for r in readiness if not r[2])
    assert "S01-004" not in {r[0] for r in readiness}, "locked"
    assert ("S01-010", "S01", ["no data"]) in readiness

    expected = old_sdv(study)
    progress = sdv.site_progress(db.session, study, None)
    assert {s.subject_id: (s.subject_key, s.site_code, s.total, s.verified, s.forms_pending)
            for s in progress.subjects} == expected
    by_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _key, code, needed, done, _forms in expected.values():
        by_site[code][0] += done
        by_site[code][1] += needed
    assert progress.by_site == {code: tuple(v) for code, v in by_site.items()}
    assert progress.subject_count == len(expected)
    assert progress.pending_count == sum(1 for e in expected.values() if e[2] > e[3])
    page = sdv.site_progress(db.session, study, None, pending_only=True, limit=2, offset=1)
    assert [s.subject_key for s in page.subjects] == [
        s.subject_key for s in progress.subjects if s.pending][1:3]

    monitor = boards.monitor(db.session, world["users"]["mon1"], study, now=now)
    counts = queries.query_counts(db.session, study, expected, now=now)
    mine = {sid: e for sid, e in expected.items() if e[1] == "S01"}
    [site] = monitor.sites
    assert (site.sdv_pending, site.sdv_total) == (
        sum(e[2] - e[3] for e in mine.values()), sum(e[2] for e in mine.values()))
    assert (site.open, site.answered) == (sum(counts.get(s, (0, 0))[0] for s in mine),
                                          sum(counts.get(s, (0, 0))[1] for s in mine))
    assert site.oldest_days == max(c[2] for s, c in counts.items() if s in mine)
    assert site.subjects == [
        (e[0], e[2] - e[3], counts.get(s, (0, 0))[0], counts.get(s, (0, 0))[1])
        for s, e in sorted(mine.items(), key=lambda i: i[1][0])
        if e[2] > e[3] or counts.get(s, (0, 0, None))[:2] != (0, 0)]
    assert [(s.subject_key, s.pending) for s in monitor.backlog] == sorted(
        ((e[0], e[2] - e[3]) for e in mine.values() if e[2] > e[3]),
        key=lambda p: (-p[1], p[0]))
    assert (monitor.progress.verified, monitor.progress.total) == (
        site.sdv_total - site.sdv_pending, site.sdv_total)


PAGES = [("dm1", "/dashboard"), ("mon1", "/dashboard"), ("sv1", "/dashboard"),
         ("dm1", "/sdv"), ("dm1", "/sdv?pending=1"), ("mon1", "/sdv")]


@pytest.mark.parametrize(("username", "path"), PAGES)
def test_pages_take_as_many_statements_for_12_subjects_as_for_3(app, world, username, path):
    populate(world, ["S01-001", "S01-002"])
    populate(world, ["S02-001"], site="S02")
    client = client_for(app, username)
    text_of(client.get(BASE + path))
    with statements() as few:
        text_of(client.get(BASE + path))
    populate(world, [f"S01-1{n:02d}" for n in range(6)])
    populate(world, ["S02-002", "S02-003", "S02-004"], site="S02")
    text_of(client.get(BASE + path))
    with statements() as many:
        text_of(client.get(BASE + path))
    assert len(many) == len(few), f"{username} {path}: {len(few)} then {len(many)}"


def test_sdv_progress_pages_its_subjects(app, world, monkeypatch):
    populate(world, [f"S01-{n:03d}" for n in range(1, 4)])
    client = client_for(app, "dm1")
    monkeypatch.setattr(forms_views, "SDV_PAGE", 2)
    first = text_of(client.get(BASE + "/sdv"))
    second = text_of(client.get(BASE + "/sdv?page=2"))
    beyond = text_of(client.get(BASE + "/sdv?page=99"))
    assert "S01-001" in first and "S01-002" in first and "S01-003" not in first
    assert "S01-003" in second and "S01-001</a>" not in second
    assert 'aria-current="page">2<' in second
    assert "No subject." in beyond
    assert text_of(client.get(BASE + "/sdv?page=-3")).count("S01-00") >= 2


@pytest.mark.parametrize(("username", "path"), PAGES)
def test_pages_take_as_many_statements_whatever_the_subjects_counted_again(
        app, world, username, path, monkeypatch):
    """The kept SDV counts: the first view counts every subject, a view after one change
    that subject only, a view after no change none, each in as many statements, at 3
    subjects and at 12."""
    recounted: list[int] = []

    def recording(session):
        recounted.append(written(session))
        return recounted[-1]

    written = sdv.kept_written
    monkeypatch.setattr(sdv, "kept_written", recording)
    monkeypatch.setattr(dashboard_views, "sdv_kept_written", recording)
    monkeypatch.setattr(review, "sdv_kept_written", recording)
    populate(world, ["S01-001", "S01-002"])
    populate(world, ["S02-001"], site="S02")
    client = client_for(app, username)
    counts = []

    def view() -> int:
        recounted.clear()
        with statements() as done:
            text_of(client.get(BASE + path))
        counts.append(len(done))
        return sum(recounted)

    assert view() == 3, "the first view counts every subject"
    assert view() == 0, "nothing changed: nothing counted again"
    changed = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-002"))
    save(world["crc"], changed, values=vitals(SYSBP="190", WEIGHT="90"),
         acks={("VS_SYSBP_HIGH", 0): "confirmed"}, reasons={("VS", 1, "WEIGHT"): "Typo"},
         complete=True)
    assert view() == 1, "the subject changed only"
    populate(world, [f"S01-1{n:02d}" for n in range(6)])
    populate(world, ["S02-002", "S02-003", "S02-004"], site="S02")
    assert view() == 9
    assert view() == 0
    assert len(set(counts)) == 1, f"{username} {path}: {counts}"
    assert sdv.site_progress(db.session, world["study"], None).subject_count == 12
