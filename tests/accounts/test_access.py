"""Site scoping: the same sites for lists and lookups, admins included."""

from __future__ import annotations

from ecrf.accounts import access
from ecrf.accounts.models import RoleGrant
from ecrf.core.extensions import db


def test_an_admin_grant_covers_every_site_for_the_actions_admins_hold(make_user, make_study):
    study = make_study("ACC1", sites=("S01", "S02"))
    admin = make_user("root", role="admin")
    assert access.site_ids_for(admin, "randomization.undo", study) is None
    # Clinical data is not an admin's: without a study grant, no site at all.
    assert access.site_ids_for(admin, "subjects.view", study) == set()


def test_an_admin_with_a_site_grant_sees_that_site_for_the_site_role(make_user, make_study,
                                                                     make_site):
    study = make_study("ACC1", sites=("S01", "S02"))
    admin = make_user("root", role="admin")
    db.session.add(RoleGrant(user=admin, role="monitor", study=study, site=make_site("S02")))
    db.session.commit()
    assert access.site_ids_for(admin, "subjects.view", study) == {make_site("S02").id}
    # Working in the study at a site, the admin's own actions stay at that site too: a
    # subject of another site answers as if it did not exist, as for anyone at S02.
    assert access.site_ids_for(admin, "randomization.undo", study) == {make_site("S02").id}
    other = make_study("ACC2", sites=("S01",))
    assert access.site_ids_for(admin, "randomization.undo", other) is None


def test_an_admin_with_a_study_wide_grant_keeps_every_site(make_user, make_study):
    study = make_study("ACC1", sites=("S01", "S02"))
    admin = make_user("root", role="admin")
    db.session.add(RoleGrant(user=admin, role="data_manager", study=study))
    db.session.commit()
    assert access.site_ids_for(admin, "randomization.undo", study) is None
    assert access.site_ids_for(admin, "subjects.view", study) is None


def test_site_and_study_wide_grants(make_user, make_study, make_site):
    study = make_study("ACC1", sites=("S01", "S02"))
    crc = make_user("crc", role="coordinator", study="ACC1", site="S01")
    monitor = make_user("mon", role="monitor", study="ACC1")
    assert access.site_ids_for(crc, "data.enter", study) == {make_site("S01").id}
    assert access.site_ids_for(crc, "queries.close", study) == set()
    assert access.site_ids_for(monitor, "subjects.view", study) is None
