"""Tables of literal rows joined in statements (``core.literal_table``): values are
written into the SQL safely, the statements cache, and bad values are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ecrf.core import db, literal_table


@pytest.mark.parametrize("rows", [
    [(1, "SCREEN", "DEMOG")],
    [(1, "A", "X"), (2, "B", "Y"), (2, "B", "Z")],
    [(7, "it's", "quoted ''twice''"), (8, "semi;colon", "--comment")],
    [(0, "", "empty"), (-3, "ü·中文", "unicode")],
    [(n, f"F{n}", f"I{n}") for n in range(800)],  # beyond SQLite's 500 compound selects
])
def test_the_rows_come_back_as_given(app, rows):
    table = literal_table("t", ("version_id", "form_oid", "item_oid"), rows)
    found = db.session.execute(select(table.c.version_id, table.c.form_oid,
                                      table.c.item_oid)).all()
    assert sorted(tuple(r) for r in found) == sorted(rows)
    statement = select(table.c.form_oid).where(table.c.version_id == 1)
    assert statement._generate_cache_key() is not None, "cacheable"


def test_no_rows_is_no_table():
    assert literal_table("t", ("a",), []) is None


@pytest.mark.parametrize("value", [True, 1.5, None, b"bytes"])
def test_other_values_are_refused(value):
    with pytest.raises(TypeError):
        literal_table("t", ("a",), [(value,)])
