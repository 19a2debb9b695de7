"""Babelfish's catalogue, read as SQL Server's schema document.

SQL Server's batch (:data:`~matrix.engines.mssql_catalogue.CATALOGUE`) does not
run on Babelfish 4.2: ``STRING_AGG(...) WITHIN GROUP`` fails ("The string_agg
function requires 2 arguments"), and where it would run, its answers mislead:

- ``sys.tables``, ``sys.columns`` and ``sys.indexes`` fold names to lower case;
  only ``INFORMATION_SCHEMA.COLUMNS`` keeps them as created;
- ``sys.key_constraints.unique_index_id`` is a PostgreSQL oid, so joining it to
  ``sys.indexes.index_id`` finds no key at all;
- ``sys.identity_columns`` lists an identity twice, without its seed (NULL);
- ``is_system_named`` is 1 for constraints a revision named;
- a column without ``COLLATE`` has ``bbf_unicode_cp1_ci_as``, not the database's
  collation; there is no ``sys.sequences``;
- an index is stored as ``<name><table><md5>`` (see
  ``matrix.engines.babelfish._tsql_index_name``).

So this batch reads one row per fact, from the views Babelfish fills right, and
:func:`babelfish_sets` gives the rows SQL Server's batch would have, for
:func:`~matrix.engines.mssql_catalogue.catalogue_document`: both engines'
documents are the same kinds of facts. Babelfish names a constraint created
without a name the PostgreSQL way (``parent_pkey``), the same in every database,
so every constraint is keyed by its name. What Babelfish does not show
(``sys.indexes.filter_definition`` is NULL for a filtered index) is not compared
here; docs/babelfish.md lists it. Pure but for :data:`CATALOGUE`, so recorded
rows can be fed to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matrix.engines import mssql_catalogue

# One result set per name, in this order (see BabelfishEngine.schema_document): the names
# with their case first, then SQL Server's sets, each read Babelfish's way.
CATALOGUE_SETS = ("names", *mssql_catalogue.CATALOGUE_SETS)
CATALOGUE = """
SET NOCOUNT ON;
DECLARE @schema sysname = {schema}, @leave_out sysname = {leave_out};
DECLARE @schema_id int = SCHEMA_ID(@schema);
DECLARE @collation sysname = CAST(SQL_VARIANT_PROPERTY(CAST(N'' AS sql_variant), 'Collation')
                                  AS sysname);
SELECT TABLE_NAME AS [table], COLUMN_NAME AS [column] FROM INFORMATION_SCHEMA.COLUMNS
WHERE TABLE_SCHEMA = @schema;
SELECT t.name AS [table], c.name AS [column], ty.name AS [type], c.max_length, c.precision,
       c.scale, c.is_nullable, dc.definition AS [default],
       CASE WHEN c.is_identity = 1 THEN CAST(IDENT_SEED(QUOTENAME(@schema) + '.'
            + QUOTENAME(t.name)) AS varchar(40)) END AS seed,
       CASE WHEN c.is_identity = 1 THEN CAST(IDENT_INCR(QUOTENAME(@schema) + '.'
            + QUOTENAME(t.name)) AS varchar(40)) END AS step,
       cc.definition AS computed, cc.is_persisted,
       CASE WHEN c.collation_name <> @collation THEN c.collation_name END AS [collation]
FROM sys.tables t
JOIN sys.columns c ON c.object_id = t.object_id
JOIN sys.types ty ON ty.user_type_id = c.user_type_id
LEFT JOIN sys.default_constraints dc
  ON dc.parent_object_id = c.object_id AND dc.parent_column_id = c.column_id
LEFT JOIN sys.computed_columns cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out
ORDER BY t.name, c.column_id;
SELECT t.name AS [table], k.name, k.type, i.type_desc AS index_type, c.name AS [column],
       x.is_descending_key
FROM sys.key_constraints k
JOIN sys.tables t ON t.object_id = k.parent_object_id
JOIN sys.indexes i ON i.object_id = k.parent_object_id AND i.name = k.name
JOIN sys.index_columns x ON x.object_id = i.object_id AND x.index_id = i.index_id
JOIN sys.columns c ON c.object_id = x.object_id AND c.column_id = x.column_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out
ORDER BY t.name, k.name, x.key_ordinal;
SELECT t.name AS [table], f.name, rs.name AS referred_schema, rt.name AS referred_table,
       f.delete_referential_action_desc AS on_delete,
       f.update_referential_action_desc AS on_update, f.is_disabled,
       pc.name AS [column], rc.name AS referred_column
FROM sys.foreign_keys f
JOIN sys.tables t ON t.object_id = f.parent_object_id
JOIN sys.objects rt ON rt.object_id = f.referenced_object_id
JOIN sys.schemas rs ON rs.schema_id = rt.schema_id
JOIN sys.foreign_key_columns fc ON fc.constraint_object_id = f.object_id
JOIN sys.columns pc ON pc.object_id = fc.parent_object_id AND pc.column_id = fc.parent_column_id
JOIN sys.columns rc
  ON rc.object_id = fc.referenced_object_id AND rc.column_id = fc.referenced_column_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out
ORDER BY t.name, f.name, fc.constraint_column_id;
SELECT t.name AS [table], k.name, k.definition, k.is_disabled
FROM sys.check_constraints k JOIN sys.tables t ON t.object_id = k.parent_object_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out;
SELECT t.name AS [table], i.name, i.is_unique, i.type_desc AS kind, i.filter_definition AS filter,
       s.tessellation_scheme, s.bounding_box_xmin, s.bounding_box_ymin, s.bounding_box_xmax,
       s.bounding_box_ymax, s.level_1_grid_desc, s.level_2_grid_desc, s.level_3_grid_desc,
       s.level_4_grid_desc, s.cells_per_object, c.name AS [column], x.is_descending_key,
       x.is_included_column
FROM sys.indexes i
JOIN sys.tables t ON t.object_id = i.object_id
JOIN sys.index_columns x ON x.object_id = i.object_id AND x.index_id = i.index_id
JOIN sys.columns c ON c.object_id = x.object_id AND c.column_id = x.column_id
LEFT JOIN sys.spatial_index_tessellations s
  ON s.object_id = i.object_id AND s.index_id = i.index_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out AND i.type > 0
  AND i.is_primary_key = 0 AND i.is_unique_constraint = 0 AND i.is_hypothetical = 0
ORDER BY t.name, i.name, x.is_included_column, x.key_ordinal, x.index_column_id;
SELECT t.name AS [table], g.name, g.is_disabled, g.is_instead_of_trigger, m.definition
FROM sys.triggers g
JOIN sys.tables t ON t.object_id = g.parent_id
JOIN sys.sql_modules m ON m.object_id = g.object_id
WHERE t.schema_id = @schema_id;
SELECT o.name, o.type, m.definition
FROM sys.objects o JOIN sys.sql_modules m ON m.object_id = o.object_id
WHERE o.schema_id = @schema_id AND o.type IN ('V', 'FN', 'IF', 'TF', 'P');
SELECT SEQUENCE_NAME AS name, DATA_TYPE AS [type], INCREMENT AS increment,
       START_VALUE AS start, CYCLE_OPTION AS is_cycling
FROM INFORMATION_SCHEMA.SEQUENCES WHERE SEQUENCE_SCHEMA = @schema;
SELECT y.name, y.is_table_type, b.name AS base, y.max_length, y.precision, y.scale, y.is_nullable
FROM sys.types y LEFT JOIN sys.types b ON b.user_type_id = y.system_type_id
WHERE y.is_user_defined = 1 AND y.schema_id = @schema_id;
SET NOCOUNT OFF;
"""

Rows = list[dict[str, Any]]


def babelfish_sets(sets: dict[str, Rows], index_name: Callable[[str, str], str]) -> dict[str, Rows]:
    """SQL Server's result sets (``mssql_catalogue.CATALOGUE_SETS``) from Babelfish's rows.

    Names as created, lists aggregated as SQL Server's ``STRING_AGG`` gives them,
    every constraint keyed by its name, sequence values as numbers, and the
    sequences behind identity columns left out (SQL Server has none; the
    identity is a fact of its column). ``index_name`` undoes Babelfish's stored
    index names.
    """
    table_of = {r["table"].lower(): r["table"] for r in sets["names"]}
    column_of = {(r["table"].lower(), r["column"].lower()): r["column"] for r in sets["names"]}

    def table(name: str) -> str:
        return table_of.get(name.lower(), name)

    def column(tab: str, name: str) -> str:
        return column_of.get((tab.lower(), name.lower()), name)

    columns = [
        {**r, "table": table(r["table"]), "column": column(r["table"], r["column"])}
        for r in sets["columns"]
    ]
    identities = {f"{r['table']}_{r['column']}_seq".lower() for r in columns if r["seed"]}
    keys = _grouped(
        sets["keys"],
        ("table", "name", "type", "index_type"),
        lambda r: _key_column(column(r["table"], r["column"]), r["is_descending_key"]),
    )
    foreign_keys = _grouped(
        sets["foreign_keys"],
        ("table", "name", "referred_schema", "referred_table", "on_delete", "on_update"),
        lambda r: column(r["table"], r["column"]),
        referred_columns=lambda r: column(r["referred_table"], r["referred_column"]),
    )
    indexes = _grouped(
        [r for r in sets["indexes"] if not r["is_included_column"]],
        ("table", "name"),
        lambda r: _key_column(column(r["table"], r["column"]), r["is_descending_key"]),
    )
    included = {
        (r["table"], r["name"]): r["columns"]
        for r in _grouped(
            [r for r in sets["indexes"] if r["is_included_column"]],
            ("table", "name"),
            lambda r: column(r["table"], r["column"]),
        )
    }
    named = {"is_system_named": False}
    return {
        "columns": columns,
        "keys": [{**r, **named, "table": table(r["table"])} for r in keys],
        "foreign_keys": [
            {**r, **named, "table": table(r["table"]), "referred_table": table(r["referred_table"])}
            for r in foreign_keys
        ],
        "checks": [{**r, **named, "table": table(r["table"])} for r in sets["checks"]],
        "indexes": [
            {
                **r,
                "table": table(r["table"]),
                "name": index_name(r["name"], r["table"]),
                "included": included.get((r["table"], r["name"])),
            }
            for r in indexes
        ],
        "triggers": [{**r, "table": table(r["table"])} for r in sets["triggers"]],
        "modules": sets["modules"],
        "sequences": [
            {**r, "increment": _number(r["increment"]), "start": _number(r["start"])}
            for r in sets["sequences"]
            if r["name"].lower() not in identities
        ],
        "types": sets["types"],
    }


def _grouped(
    rows: Rows,
    by: tuple[str, ...],
    listed: Callable[[dict[str, Any]], str],
    **more: Callable[[dict[str, Any]], str],
) -> Rows:
    """One row per ``by`` key, its ``listed`` values joined as ``columns`` (in row order)."""
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(
            tuple(row[k] for k in by),
            {**row, "columns": [], **{name: [] for name in more}},
        )
        group["columns"].append(listed(row))
        for name, value in more.items():
            group[name].append(value(row))
    return [
        {**g, "columns": ", ".join(g["columns"]), **{n: ", ".join(g[n]) for n in more}}
        for g in groups.values()
    ]


def _key_column(name: str, descending: bool) -> str:
    return f"{name} DESC" if descending else name


def _number(value: Any) -> str:
    """A sequence value as SQL Server's batch casts it: Babelfish's INFORMATION_SCHEMA
    gives the sql_variant as its 8 little-endian bytes."""
    if isinstance(value, bytes | bytearray):
        return str(int.from_bytes(value, "little", signed=True))
    return str(value)
