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


# -- the catalogue ------------------------------------------------------------------------------


# Recorded: the rows the catalogue batch returns for the tutorial plugin at head on SQL Server
# (learn.microsoft.com "sys.columns", "sys.key_constraints", "sys.foreign_keys",
# "sys.check_constraints", "sys.indexes", "sys.spatial_index_tessellations" (Transact-SQL)).
# SQLAlchemy's mssql dialect renders sa.String() as VARCHAR(max) (max_length -1), an
# autoincrementing Integer key as IDENTITY(1,1); a constraint created without a name gets
# PK__<table, 8 chars>__<16 hex digits>, new each time, with is_system_named = 1.
def _column(table, column, type_, max_length=4, nullable=True, seed=None, precision=10, scale=0):
    return {
        "table": table,
        "column": column,
        "type": type_,
        "max_length": max_length,
        "precision": precision,
        "scale": scale,
        "is_nullable": nullable,
        "default": None,
        "seed": seed,
        "step": "1" if seed else None,
        "computed": None,
        "is_persisted": False,
        "collation": None,
    }


def _key(table, name, columns="id", system=True, kind="PK"):
    return {
        "table": table,
        "name": name,
        "is_system_named": system,
        "type": kind,
        "index_type": "CLUSTERED",
        "columns": columns,
    }


def tutorial_catalogue(suffixes: tuple[str, str, str, str, str]) -> dict[str, list[dict]]:
    pk_string, pk_setting, pk_property, pk_spatial, fk_setting = suffixes
    identity = {"nullable": False, "seed": "1"}
    return {
        "columns": [
            _column("StringIntTuple", "id", "int", **identity),
            _column("StringIntTuple", "string1", "varchar", -1, precision=0),
            _column("StringIntTuple", "int1", "int"),
            _column("Setting", "id", "int", **identity),
            _column("Setting", "name", "varchar", -1, precision=0),
            _column("SettingProperty", "id", "int", **identity),
            _column("SettingProperty", "settingId", "int", nullable=False),
            _column("SettingProperty", "key", "varchar", 50, nullable=False, precision=0),
            _column("SettingProperty", "type", "varchar", 16, precision=0),
            _column("SettingProperty", "int_value", "int"),
            _column("SettingProperty", "char_value", "varchar", -1, precision=0),
            _column("SettingProperty", "boolean_value", "bit", 1, precision=1),
            _column("SpatialFeature", "id", "int", **identity),
            _column("SpatialFeature", "name", "varchar", -1, precision=0),
            _column("SpatialFeature", "geom", "geometry", -1, precision=0),
        ],
        "keys": [
            _key("StringIntTuple", f"PK__StringIn__{pk_string}"),
            _key("Setting", f"PK__Setting__{pk_setting}"),
            _key("SettingProperty", f"PK__SettingP__{pk_property}"),
            _key("SpatialFeature", f"PK__SpatialF__{pk_spatial}"),
        ],
        "foreign_keys": [
            {
                "table": "SettingProperty",
                "name": f"FK__SettingPr__setti__{fk_setting}",
                "is_system_named": True,
                "referred_schema": "pl_tutorial",
                "referred_table": "Setting",
                "on_delete": "CASCADE",
                "on_update": "NO_ACTION",
                "is_disabled": False,
                "columns": "settingId",
                "referred_columns": "id",
            }
        ],
        "checks": [],
        "indexes": [
            {
                "table": "SettingProperty",
                "name": "idx_SettingProperty_settingId",
                "is_unique": False,
                "kind": "NONCLUSTERED",
                "filter": None,
                "columns": "settingId",
                "included": None,
                **dict.fromkeys(TESSELLATION),
            },
            {
                "table": "SpatialFeature",
                "name": "idx_SpatialFeature_geom",
                "is_unique": False,
                "kind": "SPATIAL",
                "filter": None,
                "columns": "geom",
                "included": None,
                "tessellation_scheme": "GEOMETRY_GRID",
                "bounding_box_xmin": -180.0,
                "bounding_box_ymin": -90.0,
                "bounding_box_xmax": 180.0,
                "bounding_box_ymax": 90.0,
                "level_1_grid_desc": "MEDIUM",
                "level_2_grid_desc": "MEDIUM",
                "level_3_grid_desc": "MEDIUM",
                "level_4_grid_desc": "MEDIUM",
                "cells_per_object": 16,
            },
        ],
        "triggers": [],
        "modules": [],
        "sequences": [],
        "types": [],
    }


TESSELLATION = (
    "tessellation_scheme",
    "bounding_box_xmin",
    "bounding_box_ymin",
    "bounding_box_xmax",
    "bounding_box_ymax",
    "level_1_grid_desc",
    "level_2_grid_desc",
    "level_3_grid_desc",
    "level_4_grid_desc",
    "cells_per_object",
)
FIRST = ("3213E83F6A3C2E1B", "3213E83F1D2B7A44", "3213E83F0C9D51E2", "3213E83F77A0B3C5", "38996AB5")
SECOND = (
    "3213E83F2F4A6B8C",
    "3213E83F5B1C9D0E",
    "3213E83F48E2F6A1",
    "3213E83F3C7D8E9F",
    "4E88ABD4",
)


def _state(sets):
    from matrix.engines.mssql import catalogue_document
    from matrix.snapshot import state_of

    return state_of(catalogue_document(sets, "pl_tutorial"))


def test_system_named_constraints_compare_by_definition_not_by_their_random_names():
    """The tutorial's migrations run twice (create_all's database and the migrated one, or the
    offline script's) give other PK__/FK__ names; the schemas are the same."""
    first, second = _state(tutorial_catalogue(FIRST)), _state(tutorial_catalogue(SECOND))
    assert first == second, first.changes_to(second).summary()
    facts = "\n".join(sorted(first.facts))
    assert "PK__" not in facts and "FK__" not in facts
    assert (
        "tables.SettingProperty.constraints.<foreign key (settingId) REFERENCES Setting (id)> = "
        '"FOREIGN KEY (settingId) REFERENCES Setting (id) ON DELETE CASCADE ON UPDATE NO_ACTION"'
    ) in facts
    assert 'tables.StringIntTuple.columns.id.identity = "IDENTITY(1,1)"' in facts
    assert 'tables.StringIntTuple.columns.string1.type = "varchar(max)"' in facts
    assert "BOUNDING_BOX = (-180, -90, 180, 90)" in facts


def test_a_user_named_constraint_keeps_its_name_and_a_changed_definition_differs():
    named = tutorial_catalogue(FIRST)
    named["keys"][0] = _key("StringIntTuple", "PK_StringIntTuple", system=False)
    facts = _state(named).facts
    assert any(
        f.startswith("tables.StringIntTuple.constraints.PK_StringIntTuple = ") for f in facts
    )
    cascade_gone = tutorial_catalogue(SECOND)
    cascade_gone["foreign_keys"][0]["on_delete"] = "NO_ACTION"
    change = _state(tutorial_catalogue(FIRST)).changes_to(_state(cascade_gone))
    assert change.summary() == [
        "~ constraint SettingProperty.<foreign key (settingId) REFERENCES Setting (id)>"
    ]


def test_precision_checks_and_procedures_are_facts_the_inspector_never_gave():
    """DATETIME2(3) keeps its 3 (str(DATETIME2(3)) is "DATETIME2"), GeoAlchemy2's SRID check is
    compared (the dialect's get_check_constraints raises NotImplementedError), and a procedure a
    downgrade leaves behind is a residue ("sys.sql_modules", "sys.objects")."""
    before = tutorial_catalogue(FIRST)
    after = tutorial_catalogue(SECOND)
    after["columns"].append(
        _column("SpatialFeature", "seen", "datetime2", 8, precision=23, scale=3)
    )
    after["checks"].append(
        {
            "table": "SpatialFeature",
            "name": "ck_SpatialFeature_geom_srid",
            "is_system_named": False,
            "definition": "([geom] IS NULL OR [geom].[STSrid]=(4326))",
            "is_disabled": False,
        }
    )
    after["modules"].append(
        {"name": "usp_rebuild", "type": "P ", "definition": "CREATE PROCEDURE usp_rebuild AS ..."}
    )
    change = _state(before).changes_to(_state(after))
    assert change.summary() == [
        "+ column SpatialFeature.seen",
        "+ constraint SpatialFeature.ck_SpatialFeature_geom_srid",
        "+ procedure usp_rebuild",
    ]
    assert 'tables.SpatialFeature.columns.seen.type = "datetime2(3)"' in change.added


def test_column_types_are_spelled_with_their_length_precision_and_scale():
    """sys.columns.max_length is in bytes, -1 for max ("sys.columns (Transact-SQL)")."""
    from matrix.engines.mssql import column_type

    assert column_type("nvarchar", 100, 0, 0) == "nvarchar(50)"
    assert column_type("varbinary", -1, 0, 0) == "varbinary(max)"
    assert column_type("decimal", 9, 10, 2) == "decimal(10,2)"
    assert column_type("datetime2", 8, 27, 7) == "datetime2(7)"
    assert column_type("datetimeoffset", 10, 34, 7) == "datetimeoffset(7)"
    assert column_type("datetime", 8, 23, 3) == "datetime"
    assert column_type("float", 8, 53, 0) == "float(53)"
    assert column_type("geometry", -1, 0, 0) == "geometry"


def test_the_catalogue_batch_parses_as_tsql_and_reads_every_kind():
    from matrix.engines.mssql import _CATALOGUE, _CATALOGUE_SETS

    sql = _CATALOGUE.format(schema="N'pl_x'", leave_out="N'alembic_version'")
    statements = sqlglot.parse(sql, read="tsql")
    assert sum(isinstance(s, exp.Select) for s in statements) == len(_CATALOGUE_SETS)
    for view in (
        "sys.default_constraints",
        "sys.identity_columns",
        "sys.computed_columns",
        "sys.check_constraints",
        "sys.key_constraints",
        "sys.foreign_keys",
        "sys.spatial_index_tessellations",
        "sys.triggers",
        "sys.sql_modules",
        "sys.sequences",
        "sys.types",
    ):
        assert view in sql, view
