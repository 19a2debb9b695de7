"""SQL Server's behaviour, recorded, fed to the harness code that reads it.

No SQL Server can run where this harness is built. Where a verdict depends on
what a real server returns (catalogue rows, lock rows, error numbers, values
read back at a type's precision), the tests here feed that behaviour as
*recorded* from Microsoft's documentation, each citing the learn.microsoft.com
page it comes from, and assert the harness judges it right. This is the one
place a fake stands in for a server, because no real one can exist here; the
statements themselves are compiled and parsed in ``test_engines.py``, and
what only a live SQL Server can prove is listed in ``docs/sqlserver.md``.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from matrix.checks.cost import keep_strongest, named_locks
from matrix.engines import engine_named

MSSQL = engine_named("mssql")
POSTGRESQL = engine_named("postgresql")


def _functions(sql: str) -> set[str]:
    tree = sqlglot.parse_one(sql.replace(":sessions", "N'1'"), read="tsql")
    return {
        (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
        for node in tree.find_all(exp.Func)
    }


# -- locks ------------------------------------------------------------------------------------

# Recorded: sys.dm_tran_locks rows (learn.microsoft.com "sys.dm_tran_locks (Transact-SQL)") while
# another session runs ALTER TABLE pl_x.Item ALTER COLUMN name NVARCHAR(80) in an open transaction:
# an OBJECT lock is identified by resource_associated_entity_id, the object_id; the table holds IX
# then Sch-M; an object of another schema (1977058079) holds Sch-S.
ITEM_ID, OTHER_ID = 901578250, 1977058079
ALTER_SAMPLES = [
    [(ITEM_ID, "IX")],
    [(ITEM_ID, "Sch-M"), (OTHER_ID, "Sch-S")],
    [(ITEM_ID, "Sch-M")],
]
# Recorded: sys.objects of the plugin schema, read between revisions (object_id, name).
RELATIONS = {ITEM_ID: "Item"}


def test_lock_samples_name_relations_from_ids_without_metadata_functions():
    """OBJECT_NAME() and OBJECT_SCHEMA_NAME() read metadata under READ COMMITTED, so they wait
    on the very Sch-M lock the sampler is looking at ("Metadata visibility configuration" and
    "OBJECT_NAME (Transact-SQL)"): the sampler selects ids only and names them afterwards."""
    called = _functions(MSSQL.locks_sql)
    assert not called & {"OBJECT_NAME", "OBJECT_SCHEMA_NAME", "OBJECT_ID", "SCHEMA_NAME"}, called
    assert "resource_associated_entity_id" in MSSQL.locks_sql
    held: dict = {}
    for tick, rows in enumerate(ALTER_SAMPLES):
        keep_strongest(MSSQL, held, rows, float(tick))
    locks = named_locks(held, RELATIONS, MSSQL.exclusive_modes(0), {"Item": 1000})
    assert [(lock.relation, lock.mode, lock.exclusive, lock.rows) for lock in locks] == [
        ("Item", "Sch-M", True, 1000)
    ]
    assert locks[0].seconds >= 2.0  # first seen at 0, last at 2: the whole span


# Recorded: a DELETE of 10,000 rows of Item escalates its row locks to one table lock
# (learn.microsoft.com "Transaction locking and row versioning guide", Lock escalation: about
# 5,000 locks on one reference): sys.dm_tran_locks shows OBJECT X on the table.
ESCALATED = [[(ITEM_ID, "IX")], [(ITEM_ID, "X")]]


def test_an_escalated_table_lock_is_exclusive_unless_read_committed_snapshot_is_on():
    """With READ_COMMITTED_SNAPSHOT off (the default outside Azure SQL Database;
    "sys.databases (Transact-SQL)", is_read_committed_snapshot_on) a reader's S locks wait on a
    table-level X; with it on, readers read row versions and pass."""
    held: dict = {}
    for tick, rows in enumerate(ESCALATED):
        keep_strongest(MSSQL, held, rows, float(tick))
    (locking,) = named_locks(held, RELATIONS, MSSQL.exclusive_modes(0), {"Item": 10000})
    assert (locking.mode, locking.exclusive) == ("X", True)
    (versioned,) = named_locks(held, RELATIONS, MSSQL.exclusive_modes(1), {"Item": 10000})
    assert (versioned.mode, versioned.exclusive) == ("X", False)
    assert "is_read_committed_snapshot_on" in MSSQL.exclusive_setting_sql
    assert POSTGRESQL.exclusive_modes() == {"AccessExclusiveLock"}


def test_a_lock_on_a_relation_outside_the_plugin_schema_is_not_reported():
    held: dict = {}
    keep_strongest(MSSQL, held, [(OTHER_ID, "Sch-M")], 0.0)
    assert named_locks(held, RELATIONS, MSSQL.exclusive_modes(0), {}) == []
