"""One transaction per request: committed at the end of the block, rolled back when it
raises, kept when the refusal is itself part of the record, discarded on request."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ecrf.core.extensions import db
from ecrf.core.web.unit_of_work import store_derived, transaction
from ecrf.studies.models import Site


class Refused(Exception):
    pass


def _add(code: str) -> None:
    db.session.add(Site(code=code, name=f"Site {code}", timezone="UTC", active=True))
    db.session.flush()


def _stored(code: str) -> bool:
    db.session.rollback()  # read what was committed, not what this session holds
    return db.session.scalar(sa.select(Site.id).where(Site.code == code)) is not None


def test_the_end_of_the_block_commits(app):
    with transaction():
        _add("T01")
    assert _stored("T01")


def test_a_refusal_rolls_everything_back_and_propagates(app):
    with pytest.raises(Refused), transaction():
        _add("T02")
        raise Refused("no")
    assert not _stored("T02")


def test_a_kept_refusal_is_committed_before_it_propagates(app):
    with pytest.raises(Refused), transaction(keep=(Refused,)):
        _add("T03")
        raise Refused("recorded")
    assert _stored("T03")


def test_other_errors_roll_back_even_when_some_are_kept(app):
    with pytest.raises(KeyError), transaction(keep=(Refused,)):
        _add("T04")
        raise KeyError("unexpected")
    assert not _stored("T04")


def test_discard_rolls_back_a_refusal_returned_as_a_result(app):
    with transaction() as unit:
        _add("T05")
        unit.discard()
    assert not _stored("T05")


def test_derived_data_is_kept_only_when_the_work_changed_something(app):
    store_derived(lambda: _add("T06") or 1)
    assert _stored("T06")
    store_derived(lambda: _add("T07"))
    assert not _stored("T07")


def test_derived_data_that_lost_a_race_is_dropped_quietly(app):
    _add("T08")
    db.session.commit()
    store_derived(lambda: _add("T08") or 1)  # unique code: the other writer won
    assert _stored("T08")
