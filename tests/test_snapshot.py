"""A schema state, from the engine's catalogue document, sees one revision's change.

On a real PostgreSQL (live), and on the walks it gave, recorded (unit): the
facts, the changes and their one-line summaries. SQL Server's catalogue
document is fed its recorded rows in ``test_sqlserver_recorded.py``, since no
SQL Server can run here.
"""

from __future__ import annotations

import json

import recorded_walks
import sqlalchemy as sa

from matrix.check.snapshot import SchemaState, describe, plugin_schema, state_of
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


# -- facts and changes, on the recorded walks (unit tier) ---------------------------------


def test_a_document_becomes_one_fact_per_leaf_keyed_by_name():
    state = recorded_walks.states("healthy", "up")[0][1]  # a1: the table Item
    assert 'tables.Item.columns.name.type = "character varying(50)"' in state.facts
    assert 'tables.Item.constraints.Item_pkey = "PRIMARY KEY (id)"' in state.facts
    assert state.tables() == {"Item"}
    empty = state_of({"tables": {"Bare": {}}, "views": None})
    assert empty.facts == {"tables.Bare = {}"}  # a table with nothing in it is still a table
    assert empty.tables() == {"Bare"}


def test_a_change_reads_as_created_dropped_or_altered_once_per_object():
    (_, at_a1), (_, at_b2), (_, at_c3) = recorded_walks.states("healthy", "up")
    assert at_a1.changes_to(at_c3).summary() == [
        "+ column Item.count",
        "+ index Item.idx_Item_count",
        "+ sequence Note_id_seq",
        "+ table Note",  # its columns and key are the table's creation, not lines of their own
    ]
    widened = SchemaState(
        frozenset(f.replace("character varying(50)", "character varying(80)") for f in at_a1.facts)
    )
    assert at_a1.changes_to(widened).summary() == ["~ column Item.name"]
    assert not at_c3.changes_to(at_c3)  # no change is falsy


def test_a_difference_lists_what_only_each_side_has_sorted():
    assert describe({"a = 1", "b = 2"}, {"b = 2", "c = 3", "a = 0"}) == (
        "+ a = 0\n- a = 1\n+ c = 3"
    )


def test_a_change_names_an_empty_table_by_its_name():
    """Formerly ``Bare = {}``: the fact's value was read as part of the table's name."""
    assert SchemaState(frozenset()).changes_to(state_of({"tables": {"Bare": {}}})).tables() == {
        "Bare"
    }


def test_a_table_taken_again_after_it_changed_gives_its_new_facts():
    """Facts are kept per table for the next state of a walk: only while its part is equal."""
    table = {"kind": "r", "columns": {"id": {"type": "integer", "nullable": False}}}
    before = state_of({"tables": {"Item": table}, "views": {"v": "SELECT 1"}})
    changed = json.loads(json.dumps(table))  # a new document, as every catalogue read gives
    changed["columns"]["id"]["nullable"] = True
    after = state_of({"tables": {"Item": changed}, "views": {"v": "SELECT 1"}})
    again = state_of({"tables": {"Item": json.loads(json.dumps(table))}})

    assert before.changes_to(after).added == {"tables.Item.columns.id.nullable = true"}
    assert before.changes_to(after).removed == {"tables.Item.columns.id.nullable = false"}
    assert again.facts == before.facts - {'views.v = "SELECT 1"'}
