"""The data walk's rows on a real PostgreSQL: a lost row is never matched by another.

Each test writes rows with the generator ``data_survives`` uses, lets a
"revision" (plain SQL) act on them, and asks :func:`synthetic.verify` what
was lost, as the check does after every revision.
"""

from __future__ import annotations

import sqlalchemy as sa

from matrix import synthetic
from matrix.engines import engine_named

POSTGRESQL = engine_named("postgresql")
SCHEMA = "pl_rows"


def _walk(url, create: list[str], revision: list[str]) -> list[synthetic.Loss]:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    ledger = synthetic.Ledger()
    try:
        with engine.connect() as conn:
            for statement in [f"CREATE SCHEMA {SCHEMA}", *create]:
                conn.execute(sa.text(statement))
            ledger.observe(conn, POSTGRESQL, SCHEMA, "a1")
            tables = list(synthetic.reflect(conn, SCHEMA).tables.values())
            synthetic.fill(conn, POSTGRESQL, tables, "a1", ledger)
            ledger.settle(conn, POSTGRESQL, SCHEMA)
            for statement in revision:
                conn.execute(sa.text(statement))
            ledger.observe(conn, POSTGRESQL, SCHEMA, "b2")
            return synthetic.verify(conn, POSTGRESQL, SCHEMA, ledger)
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
