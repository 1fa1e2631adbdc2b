"""After a bulk import has committed, PostgreSQL's planner statistics of the tables it
filled are refreshed (``ANALYZE``); below the threshold, and on SQLite, nothing runs."""

from __future__ import annotations

import pytest

from ecrf.capture import IMPORTED_TABLES
from ecrf.core import ANALYZE_THRESHOLD, analyze_after_import
from ecrf.core.extensions import db
from tests.conftest import count_statements, is_postgres


@pytest.mark.parametrize(("values", "threshold", "runs"), [
    (0, None, False),
    (ANALYZE_THRESHOLD - 1, None, False),
    (ANALYZE_THRESHOLD, None, True),
    (250_000, None, True),
    (4, 5, False),
    (5, 5, True),
    (1, 1, True),
])
def test_analyze_runs_on_postgresql_above_the_threshold(app, values, threshold, runs):
    with count_statements() as counted:
        ran = analyze_after_import(db.session, IMPORTED_TABLES, values, threshold=threshold)
    expected = runs and is_postgres()
    assert ran is expected
    analyzed = [s for s in counted.texts if s.startswith("ANALYZE")]
    assert analyzed == ([f'ANALYZE "{t}"' for t in IMPORTED_TABLES] if expected else [])


@pytest.mark.parametrize("table", ['item_value"; DROP TABLE subject; --', "item value", ""])
def test_a_table_name_that_is_not_one_is_refused(app, table):
    with pytest.raises(ValueError, match="not a table name"):
        analyze_after_import(db.session, ["subject", table], 10**6)
