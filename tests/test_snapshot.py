"""A schema state, from the engine's catalogue document, sees one revision's change.

On a real PostgreSQL; SQL Server's catalogue document is fed its recorded
rows in ``test_sqlserver_recorded.py``, since no SQL Server can run here.
"""

from __future__ import annotations

import json

import recorded_walks
import sqlalchemy as sa

from matrix.check.snapshot import plugin_schema
from matrix.engines import engine_named

POSTGRESQL = engine_named("postgresql")

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


def test_the_catalogue_state_sees_a_revisions_change(postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            for statement in BEFORE:
                conn.execute(sa.text(statement))
            before = plugin_schema(conn, POSTGRESQL, SCHEMA)
            for statement in REVISION:
                conn.execute(sa.text(statement))
            after = plugin_schema(conn, POSTGRESQL, SCHEMA)
    finally:
        engine.dispose()
    assert {"Item", "Tag"} <= before.tables()
    added = " ".join(sorted(after.facts - before.facts))
    assert "Item.columns.createdDate" in added
    assert "idx_Tag_itemId" in added
    assert "80" in added  # the widened name
    assert "Tag_label_key" in " ".join(before.facts)  # the unique constraint, by its name


def test_the_recorded_walks_are_what_postgresql_gives(pg_server_url, tmp_path):
    """The unit tier judges recorded walks; they must stay what this server gives."""
    recorded = recorded_walks.record(pg_server_url, tmp_path / "plugins")
    if recorded != recorded_walks.load():
        fresh = tmp_path / recorded_walks.FILE.name
        fresh.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        raise AssertionError(f"the walks recorded differ: review {fresh}, copy it over the file")
