"""Both ways of picturing a schema see the same revision's change.

``catalogued`` (one PostgreSQL catalog query) is what PostgreSQL targets
use; ``inspected`` (SQLAlchemy's inspector) is what SQL Server targets use.
No SQL Server runs here, so ``inspected`` runs on a real PostgreSQL, once as
is and once with unique and check constraint reflection withdrawn, as SQL
Server's dialect has it (``NotImplementedError``): the one fake here, for the
one server that cannot exist here.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect

from matrix.snapshot import catalogued, inspected

SCHEMA = "pl_snap"
BEFORE = [
    f"CREATE SCHEMA {SCHEMA}",
    f'CREATE TABLE {SCHEMA}."Item" (id serial PRIMARY KEY, name varchar(40) NOT NULL)',
    f'CREATE TABLE {SCHEMA}."Tag" (id serial PRIMARY KEY, '
    f'"itemId" integer REFERENCES {SCHEMA}."Item"(id), label text, UNIQUE (label))',
]
REVISION = [  # one revision's change: a column, an index, a type
    f'ALTER TABLE {SCHEMA}."Item" ADD COLUMN "createdDate" timestamptz',
    f'CREATE INDEX "idx_Tag_itemId" ON {SCHEMA}."Tag" ("itemId")',
    f'ALTER TABLE {SCHEMA}."Item" ALTER COLUMN name TYPE varchar(80)',
]


def _not_on_sql_server(self, *args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("sql_server_reflection", [False, True])
def test_inspected_and_catalogued_see_the_same_change(
    postgres_url, monkeypatch, sql_server_reflection
):
    if sql_server_reflection:
        monkeypatch.setattr(PGDialect, "get_multi_unique_constraints", _not_on_sql_server)
        monkeypatch.setattr(PGDialect, "get_multi_check_constraints", _not_on_sql_server)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            for statement in BEFORE:
                conn.execute(sa.text(statement))
            before = inspected(conn, SCHEMA), catalogued(conn, SCHEMA)
            for statement in REVISION:
                conn.execute(sa.text(statement))
            after = inspected(conn, SCHEMA), catalogued(conn, SCHEMA)
    finally:
        engine.dispose()
    for old, new in zip(before, after, strict=True):
        assert {"Item", "Tag"} <= old.tables()
        added = " ".join(sorted(new.facts - old.facts))
        assert "Item.columns.createdDate" in added
        assert "idx_Tag_itemId" in added
        assert "80" in added  # the widened name
    inspected_facts = " ".join(sorted(before[0].facts))
    assert "label" in inspected_facts  # the unique constraint, as a constraint or an index
