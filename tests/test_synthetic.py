"""The data walk's rows on a real PostgreSQL: a lost row is never matched by another.

Each test writes rows with the generator ``data_survives`` uses, lets a
"revision" (plain SQL) act on them, and asks :func:`survival.verify` what
was lost, as the check does after every revision.
"""

from __future__ import annotations

import sqlalchemy as sa

from matrix.check import survival, synthetic
from matrix.engines import engine_named

POSTGRESQL = engine_named("postgresql")
SCHEMA = "pl_rows"


def _walk(url, create: list[str], revision: list[str]) -> list[survival.Loss]:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    ledger = synthetic.Ledger()
    try:
        with engine.connect() as conn:
            for statement in [f"CREATE SCHEMA {SCHEMA}", *create]:
                conn.execute(sa.text(statement))
            ledger.observe(conn, POSTGRESQL, SCHEMA, "a1")
            tables = list(synthetic.reflect(conn, POSTGRESQL, SCHEMA).tables.values())
            synthetic.fill(conn, POSTGRESQL, tables, "a1", ledger)
            ledger.settle(conn, POSTGRESQL, SCHEMA)
            for statement in revision:
                conn.execute(sa.text(statement))
            ledger.observe(conn, POSTGRESQL, SCHEMA, "b2")
            return survival.verify(conn, POSTGRESQL, SCHEMA, ledger)
    finally:
        engine.dispose()


def test_a_deleted_row_whose_only_other_value_is_an_enum_label_is_lost(postgres_url):
    """Enum labels repeat from row to row: they cannot stand in for a key that found nothing."""
    losses = _walk(
        postgres_url,
        [
            f"CREATE TYPE {SCHEMA}.state AS ENUM ('on', 'off')",
            f'CREATE TABLE {SCHEMA}."Flag" (id serial PRIMARY KEY, state {SCHEMA}.state)',
        ],
        [f'DELETE FROM {SCHEMA}."Flag" WHERE id = (SELECT max(id) FROM {SCHEMA}."Flag")'],
    )
    (loss,) = losses
    assert (loss.table, loss.kind, loss.revision, len(loss.rows)) == ("Flag", "rows", "b2", 1)


def _lagging(url, statements: list[str]) -> dict:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            fresh = [f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE", f"CREATE SCHEMA {SCHEMA}"]
            for statement in [*fresh, *statements]:
                conn.execute(sa.text(statement))
            return survival.lagging_sequences(conn, POSTGRESQL, SCHEMA, synthetic.Ledger())
    finally:
        engine.dispose()


ITEM = f'CREATE TABLE {SCHEMA}."Item" (id serial PRIMARY KEY, name text)'
KEYED_ROWS = f"INSERT INTO {SCHEMA}.\"Item\" (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')"


def test_a_sequence_left_behind_explicit_keys_is_lagging(postgres_url):
    (found,) = _lagging(postgres_url, [ITEM, KEYED_ROWS]).values()
    assert found[1] == (
        "its sequence gives id = 1 next, at or below the highest key the rows hold (3)"
    )


def test_a_sequence_restarted_past_the_keys_is_not_lagging(postgres_url):
    """RESTART WITH leaves is_called false, where pg_sequences shows no last_value."""
    restart = f'ALTER SEQUENCE {SCHEMA}."Item_id_seq" RESTART WITH 4'
    assert _lagging(postgres_url, [ITEM, KEYED_ROWS, restart]) == {}
    used = f"SELECT nextval('{SCHEMA}.\"Item_id_seq\"')"  # now 4, is_called true: next is 5
    assert _lagging(postgres_url, [ITEM, KEYED_ROWS, restart, used]) == {}
    behind = f"SELECT setval('{SCHEMA}.\"Item_id_seq\"', 2)"  # next is 3: collides
    (found,) = _lagging(postgres_url, [ITEM, KEYED_ROWS, behind]).values()
    assert "gives id = 3 next" in found[1]
