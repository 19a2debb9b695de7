"""SQL Server's catalogue, read as the schema document the snapshot compares.

One batch of ``sys.*`` queries (:data:`CATALOGUE`), one result set per kind of
object, and :func:`catalogue_document`, which turns those rows into the same
kinds of facts PostgreSQL's ``pg_catalog`` query gives: column types with their
length, precision and scale, nullability, defaults, identity and computed
definitions; keys, foreign keys with their actions, checks; indexes with their
included columns, filters and spatial tessellation; triggers, views,
procedures, functions, sequences and types. The engine (:mod:`matrix.engines.mssql`)
runs the batch; this module is pure, so recorded catalogue rows can be fed to it.
"""

from __future__ import annotations

import hashlib
from typing import Any

# The plugin schema in one batch of sys.* queries, one result set each, in this order (see
# Engine.schema_document). Every list is aggregated in a fixed order, so that two databases
# built by the same DDL give the same rows; two ordered STRING_AGGs of one query share one
# ORDER BY, as SQL Server requires (error 8711).
CATALOGUE_SETS = (
    "columns",
    "keys",
    "foreign_keys",
    "checks",
    "indexes",
    "triggers",
    "modules",
    "sequences",
    "types",
)
CATALOGUE = """
SET NOCOUNT ON;
DECLARE @schema sysname = {schema}, @leave_out sysname = {leave_out};
DECLARE @schema_id int = SCHEMA_ID(@schema);
DECLARE @collation sysname = CAST(DATABASEPROPERTYEX(DB_NAME(), 'Collation') AS sysname);
SELECT t.name AS [table], c.name AS [column], ty.name AS [type], c.max_length, c.precision,
       c.scale, c.is_nullable, dc.definition AS [default],
       CAST(ic.seed_value AS varchar(40)) AS seed, CAST(ic.increment_value AS varchar(40)) AS step,
       cc.definition AS computed, cc.is_persisted,
       CASE WHEN c.collation_name <> @collation THEN c.collation_name END AS [collation]
FROM sys.tables t
JOIN sys.columns c ON c.object_id = t.object_id
JOIN sys.types ty ON ty.user_type_id = c.user_type_id
LEFT JOIN sys.default_constraints dc
  ON dc.parent_object_id = c.object_id AND dc.parent_column_id = c.column_id
LEFT JOIN sys.identity_columns ic ON ic.object_id = c.object_id AND ic.column_id = c.column_id
LEFT JOIN sys.computed_columns cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out
ORDER BY t.name, c.column_id;
SELECT t.name AS [table], k.name, k.is_system_named, k.type, i.type_desc AS index_type,
       STRING_AGG(CAST(c.name AS nvarchar(max))
                  + CASE WHEN x.is_descending_key = 1 THEN N' DESC' ELSE N'' END, N', ')
         WITHIN GROUP (ORDER BY x.key_ordinal) AS columns
FROM sys.key_constraints k
JOIN sys.tables t ON t.object_id = k.parent_object_id
JOIN sys.indexes i ON i.object_id = k.parent_object_id AND i.index_id = k.unique_index_id
JOIN sys.index_columns x ON x.object_id = i.object_id AND x.index_id = i.index_id
JOIN sys.columns c ON c.object_id = x.object_id AND c.column_id = x.column_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out
GROUP BY t.name, k.name, k.is_system_named, k.type, i.type_desc;
SELECT t.name AS [table], f.name, f.is_system_named, rs.name AS referred_schema,
       rt.name AS referred_table, f.delete_referential_action_desc AS on_delete,
       f.update_referential_action_desc AS on_update, f.is_disabled,
       STRING_AGG(CAST(pc.name AS nvarchar(max)), N', ')
         WITHIN GROUP (ORDER BY fc.constraint_column_id) AS columns,
       STRING_AGG(CAST(rc.name AS nvarchar(max)), N', ')
         WITHIN GROUP (ORDER BY fc.constraint_column_id) AS referred_columns
FROM sys.foreign_keys f
JOIN sys.tables t ON t.object_id = f.parent_object_id
JOIN sys.objects rt ON rt.object_id = f.referenced_object_id
JOIN sys.schemas rs ON rs.schema_id = rt.schema_id
JOIN sys.foreign_key_columns fc ON fc.constraint_object_id = f.object_id
JOIN sys.columns pc ON pc.object_id = fc.parent_object_id AND pc.column_id = fc.parent_column_id
JOIN sys.columns rc
  ON rc.object_id = fc.referenced_object_id AND rc.column_id = fc.referenced_column_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out
GROUP BY t.name, f.name, f.is_system_named, rs.name, rt.name, f.delete_referential_action_desc,
         f.update_referential_action_desc, f.is_disabled;
SELECT t.name AS [table], k.name, k.is_system_named, k.definition, k.is_disabled
FROM sys.check_constraints k JOIN sys.tables t ON t.object_id = k.parent_object_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out;
SELECT t.name AS [table], i.name, i.is_unique, i.type_desc AS kind, i.filter_definition AS filter,
       s.tessellation_scheme, s.bounding_box_xmin, s.bounding_box_ymin, s.bounding_box_xmax,
       s.bounding_box_ymax, s.level_1_grid_desc, s.level_2_grid_desc, s.level_3_grid_desc,
       s.level_4_grid_desc, s.cells_per_object,
       STRING_AGG(CASE WHEN x.is_included_column = 0 THEN CAST(c.name AS nvarchar(max))
                  + CASE WHEN x.is_descending_key = 1 THEN N' DESC' ELSE N'' END END, N', ')
         WITHIN GROUP (ORDER BY x.key_ordinal, x.index_column_id) AS columns,
       STRING_AGG(CASE WHEN x.is_included_column = 1 THEN CAST(c.name AS nvarchar(max)) END,
                  N', ')
         WITHIN GROUP (ORDER BY x.key_ordinal, x.index_column_id) AS included
FROM sys.indexes i
JOIN sys.tables t ON t.object_id = i.object_id
JOIN sys.index_columns x ON x.object_id = i.object_id AND x.index_id = i.index_id
JOIN sys.columns c ON c.object_id = x.object_id AND c.column_id = x.column_id
LEFT JOIN sys.spatial_index_tessellations s
  ON s.object_id = i.object_id AND s.index_id = i.index_id
WHERE t.schema_id = @schema_id AND t.name <> @leave_out AND i.type > 0
  AND i.is_primary_key = 0 AND i.is_unique_constraint = 0 AND i.is_hypothetical = 0
GROUP BY t.name, i.name, i.is_unique, i.type_desc, i.filter_definition, s.tessellation_scheme,
         s.bounding_box_xmin, s.bounding_box_ymin, s.bounding_box_xmax, s.bounding_box_ymax,
         s.level_1_grid_desc, s.level_2_grid_desc, s.level_3_grid_desc, s.level_4_grid_desc,
         s.cells_per_object;
SELECT t.name AS [table], g.name, g.is_disabled, g.is_instead_of_trigger, m.definition
FROM sys.triggers g
JOIN sys.tables t ON t.object_id = g.parent_id
JOIN sys.sql_modules m ON m.object_id = g.object_id
WHERE t.schema_id = @schema_id;
SELECT o.name, o.type, m.definition
FROM sys.objects o JOIN sys.sql_modules m ON m.object_id = o.object_id
WHERE o.schema_id = @schema_id AND o.type IN ('V', 'FN', 'IF', 'TF', 'P');
SELECT q.name, TYPE_NAME(q.user_type_id) AS [type], CAST(q.increment AS varchar(40)) AS increment,
       CAST(q.start_value AS varchar(40)) AS start, q.is_cycling
FROM sys.sequences q WHERE q.schema_id = @schema_id;
SELECT y.name, y.is_table_type, b.name AS base, y.max_length, y.precision, y.scale, y.is_nullable
FROM sys.types y LEFT JOIN sys.types b ON b.user_type_id = y.system_type_id
WHERE y.is_user_defined = 1 AND y.schema_id = @schema_id;
SET NOCOUNT OFF;
"""
# Kinds of sys.objects, and sys.key_constraints.type, as the document names them.
_MODULES = {
    "V": "views",
    "FN": "functions",
    "IF": "functions",
    "TF": "functions",
    "P": "procedures",
}
_KEYS = {"PK": "PRIMARY KEY", "UQ": "UNIQUE"}
# Types whose length is in bytes, of which a character takes two.
_WIDE = {"nchar", "nvarchar"}
_SIZED = {"char", "varchar", "binary", "varbinary", "nchar", "nvarchar"}
_SCALED = {"datetime2", "datetimeoffset", "time"}


def catalogue_document(sets: dict[str, list[dict[str, Any]]], schema: str) -> dict[str, Any]:
    """The schema document from the catalogue batch's result sets, by name.

    A constraint SQL Server named itself (``is_system_named``: ``PK__Item__3213E83F``
    with a suffix new every time the table is created) is keyed by what it is,
    its kind, columns and referred table; one a revision named keeps its name.
    """
    tables: dict[str, dict[str, Any]] = {}

    def table(name: str) -> dict[str, Any]:
        return tables.setdefault(
            name,
            {"kind": "table", "columns": {}, "constraints": {}, "indexes": {}, "triggers": {}},
        )

    for row in sets["columns"]:
        table(row["table"])["columns"][row["column"]] = {
            "type": column_type(row["type"], row["max_length"], row["precision"], row["scale"]),
            "nullable": bool(row["is_nullable"]),
            "default": row["default"],
            "identity": f"IDENTITY({row['seed']},{row['step']})" if row["seed"] else None,
            "computed": (
                f"{row['computed']}{' PERSISTED' if row['is_persisted'] else ''}"
                if row["computed"]
                else None
            ),
            "collation": row["collation"],
        }
    for row in sets["keys"]:
        kind = _KEYS[row["type"].strip()]
        definition = f"{kind} {row['index_type']} ({row['columns']})"
        unnamed = f"<{kind.lower()} ({row['columns']})>"
        _constraint(table(row["table"]), row, unnamed, definition)
    for row in sets["foreign_keys"]:
        referred = row["referred_table"]
        if row["referred_schema"] != schema:
            referred = f"{row['referred_schema']}/{referred}"
        what = f"({row['columns']}) REFERENCES {referred} ({row['referred_columns']})"
        definition = (
            f"FOREIGN KEY {what} ON DELETE {row['on_delete']} ON UPDATE {row['on_update']}"
            + (" DISABLED" if row["is_disabled"] else "")
        )
        _constraint(table(row["table"]), row, f"<foreign key {what}>", definition)
    for row in sets["checks"]:
        definition = f"CHECK {row['definition']}" + (" DISABLED" if row["is_disabled"] else "")
        digest = hashlib.md5(row["definition"].encode()).hexdigest()[:12]
        _constraint(table(row["table"]), row, f"<check {digest}>", definition)
    for row in sets["indexes"]:
        table(row["table"])["indexes"][row["name"]] = _index_definition(row)
    for row in sets["triggers"]:
        table(row["table"])["triggers"][row["name"]] = (
            ("INSTEAD OF " if row["is_instead_of_trigger"] else "")
            + ("DISABLED " if row["is_disabled"] else "")
            + hashlib.md5(row["definition"].encode()).hexdigest()
        )
    document: dict[str, Any] = {"tables": tables, "views": {}, "functions": {}, "procedures": {}}
    for row in sets["modules"]:
        kind = _MODULES[row["type"].strip()]
        body = row["definition"] or ""
        document[kind][row["name"]] = (
            body if kind == "views" else hashlib.md5(body.encode()).hexdigest()
        )
    document["sequences"] = {
        row["name"]: {
            "type": row["type"],
            "increment": row["increment"],
            "start": row["start"],
            "cycle": bool(row["is_cycling"]),
        }
        for row in sets["sequences"]
    }
    document["types"] = {
        row["name"]: "TABLE"
        if row["is_table_type"]
        else column_type(row["base"], row["max_length"], row["precision"], row["scale"])
        + ("" if row["is_nullable"] else " NOT NULL")
        for row in sets["types"]
    }
    return document


def _constraint(table: dict[str, Any], row: dict[str, Any], unnamed: str, definition: str) -> None:
    """Key a constraint by its name, or by what it is when SQL Server named it."""
    key = unnamed if row["is_system_named"] else row["name"]
    table["constraints"][key.replace(".", "·")] = definition


def _index_definition(row: dict[str, Any]) -> str:
    text = f"{'UNIQUE ' if row['is_unique'] else ''}{row['kind']} INDEX ({row['columns'] or ''})"
    if row["included"]:
        text += f" INCLUDE ({row['included']})"
    if row["filter"]:
        text += f" WHERE {row['filter']}"
    if row["tessellation_scheme"]:
        box = (
            ", ".join(
                f"{row[f'bounding_box_{edge}']:g}" for edge in ("xmin", "ymin", "xmax", "ymax")
            )
            if row["bounding_box_xmin"] is not None
            else "none"
        )
        levels = [row[f"level_{n}_grid_desc"] for n in range(1, 5)]
        # The automatic grids (SQL Server 2012 on) have no levels: NULL in the catalogue.
        grids = f" GRIDS = ({', '.join(map(str, levels))})" if any(levels) else ""
        text += (
            f" USING {row['tessellation_scheme']} BOUNDING_BOX = ({box}){grids}"
            f" CELLS_PER_OBJECT = {row['cells_per_object']}"
        )
    return text


def column_type(name: str, max_length: int, precision: int, scale: int) -> str:
    """A column's type as T-SQL writes it: ``nvarchar(50)``, ``decimal(10,2)``, ``datetime2(3)``.

    ``sys.columns.max_length`` is in bytes (-1 for max), two per character of
    ``nchar``/``nvarchar``; ``scale`` is the fractional seconds of the time types.
    """
    if name in _SIZED:
        if max_length == -1:
            return f"{name}(max)"
        return f"{name}({max_length // 2 if name in _WIDE else max_length})"
    if name in ("decimal", "numeric"):
        return f"{name}({precision},{scale})"
    if name in _SCALED:
        return f"{name}({scale})"
    if name == "float":
        return f"float({precision})"
    return name
