"""With status rules declared, randomization puts the subject on study and undoing it
puts the subject back where the data says, each change audited with its reason."""

from __future__ import annotations

import shutil

from sqlalchemy import select

from ecrf.allocation import randomization
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.studies import store as studies

from .test_randomization import FIXTURES, add_subject, generate, make_eligible

STATUS = '''
status:
  - {status: on_study, when: 'not is_blank(subject.arm)'}
  - {status: screen_failed, when: 'ELIG.ELIGIBLE = "N"'}

events:'''


def test_randomize_and_undo_follow_the_status_rules(app, make_site, make_user, tmp_path):
    make_site("S01")
    make_site("S02", timezone="Asia/Shanghai")
    folder = tmp_path / "study"
    shutil.copytree(FIXTURES / "allocation_randomized", folder)
    path = folder / "study.yaml"
    path.write_text(path.read_text().replace("\nevents:", STATUS, 1))
    study = studies.load_folder(db.session, Actor(None, "loader"), folder).study
    db.session.commit()
    generate(study)
    subject = make_eligible(add_subject(study, "S-1"))
    randomization.randomize(db.session, Actor(None, "tester", role="data_manager"), subject)
    db.session.commit()
    assert subject.status == "on_study"
    admin = make_user("root", role="admin")
    randomization.undo_randomization(db.session, Actor(admin.id, "root", role="admin"),
                                     subject, "wrong screening number")
    db.session.commit()
    assert subject.status == "screening"
    rows = list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "subject.status_changed").order_by(AuditEvent.seq)))
    assert [(r.old_value, r.new_value) for r in rows] == [("screening", "on_study"),
                                                          ("on_study", "screening")]
    assert rows[1].reason.startswith("randomization undone: wrong screening number")
