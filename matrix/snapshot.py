"""Reflected pictures of a database, to compare before and after a migration.

A snapshot is plain data (dicts, lists, strings) so that two of them compare
with ``==`` and their difference prints as a readable unified diff. The
plugin schema's snapshot leaves out Alembic's own version table; the picture
of everything outside the plugin schema leaves out what extensions own
(PostGIS puts ``spatial_ref_sys`` in ``public``), since only the plugin's
migrations are on trial.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import sqlalchemy as sa

Snapshot = dict[str, Any]
VERSION_TABLE = "alembic_version"


def plugin_schema(conn: sa.Connection, schema: str) -> Snapshot:
    """Tables, columns, keys, indexes, constraints, sequences and types of a schema."""
    inspector = sa.inspect(conn)
    if schema not in inspector.get_schema_names():
        return {"tables": {}, "sequences": [], "types": [], "views": []}
    tables = {
        name: _table(inspector, schema, name)
        for name in sorted(inspector.get_table_names(schema=schema))
        if name != VERSION_TABLE
    }
    snapshot: Snapshot = {
        "tables": tables,
        "views": sorted(inspector.get_view_names(schema=schema)),
        "sequences": sorted(_sequences(inspector, schema)),
        "types": [],
    }
    if conn.dialect.name == "postgresql":
        snapshot["types"] = sorted(
            f"{e['name']}: {', '.join(e['labels'])}" for e in inspector.get_enums(schema=schema)
        )
    return snapshot


def _table(inspector: sa.Inspector, schema: str, name: str) -> dict[str, Any]:
    columns = [
        {
            "name": c["name"],
            "type": _type_name(c["type"]),
            "nullable": c["nullable"],
            "default": str(c.get("default")),
        }
        for c in inspector.get_columns(name, schema=schema)
    ]
    pk = inspector.get_pk_constraint(name, schema=schema)
    return {
        "columns": columns,
        "primary_key": {
            "name": pk.get("name"),
            "columns": pk.get("constrained_columns"),
        },
        "foreign_keys": sorted(
            (
                {
                    "name": fk.get("name"),
                    "columns": fk["constrained_columns"],
                    "refers_to": f"{fk.get('referred_schema')}.{fk['referred_table']}"
                    f"({', '.join(fk['referred_columns'])})",
                    "options": {k: v for k, v in sorted(fk.get("options", {}).items())},
                }
                for fk in inspector.get_foreign_keys(name, schema=schema)
            ),
            key=json.dumps,
        ),
        "indexes": sorted(
            (
                {
                    "name": ix.get("name"),
                    "columns": ix.get("column_names"),
                    "unique": bool(ix.get("unique")),
                    "dialect_options": {
                        k: str(v) for k, v in sorted(ix.get("dialect_options", {}).items())
                    },
                }
                for ix in inspector.get_indexes(name, schema=schema)
            ),
            key=json.dumps,
        ),
        "unique_constraints": sorted(
            (
                {"name": uc.get("name"), "columns": uc.get("column_names")}
                for uc in inspector.get_unique_constraints(name, schema=schema)
            ),
            key=json.dumps,
        ),
        "check_constraints": sorted(
            (
                {"name": ck.get("name"), "sql": ck.get("sqltext")}
                for ck in _check_constraints(inspector, schema, name)
            ),
            key=json.dumps,
        ),
    }


def _type_name(type_: sa.types.TypeEngine) -> str:
    try:
        return str(type_)
    except (sa.exc.CompileError, NotImplementedError, TypeError):  # uncompilable type
        return type(type_).__name__


def _sequences(inspector: sa.Inspector, schema: str) -> list[str]:
    try:
        return inspector.get_sequence_names(schema=schema)
    except NotImplementedError:
        return []


def _check_constraints(inspector: sa.Inspector, schema: str, name: str) -> list[dict]:
    try:
        return inspector.get_check_constraints(name, schema=schema)
    except NotImplementedError:
        return []


_OUTSIDE_SQL = {
    "postgresql": """
        SELECT n.nspname AS schema, c.relkind::text AS kind, c.relname AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
          AND n.nspname <> :schema
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.deptype = 'e')
        UNION ALL
        SELECT n.nspname, 'type', t.typname
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname <> :schema AND t.typtype IN ('e', 'd')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                            AND d.deptype = 'e')
        UNION ALL
        SELECT n.nspname, 'function', p.proname
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname <> :schema
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                            AND d.deptype = 'e')
        UNION ALL
        SELECT nspname, 'schema', nspname FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'
          AND nspname <> :schema
    """,
    "mssql": """
        SELECT s.name AS [schema], o.type_desc AS kind, o.name AS name
        FROM sys.objects o JOIN sys.schemas s ON s.schema_id = o.schema_id
        WHERE o.is_ms_shipped = 0 AND s.name <> :schema
        UNION ALL
        SELECT s.name, 'SCHEMA', s.name FROM sys.schemas s
        WHERE s.principal_id = 1 AND s.name <> :schema
    """,
}


def outside_plugin_schema(conn: sa.Connection, schema: str) -> Snapshot:
    """Every object outside the plugin schema that no extension owns."""
    rows = conn.execute(sa.text(_OUTSIDE_SQL[conn.dialect.name]), {"schema": schema})
    return {"objects": sorted(f"{r.schema}.{r.name} ({r.kind})" for r in rows)}


def describe_difference(before: Snapshot, after: Snapshot) -> str:
    """A unified diff of two snapshots, one fact per line, empty when equal.

    Each line carries its full path (``tables.Item.indexes.idx_Item_name.columns``)
    so that a difference reads on its own, without context lines.
    """
    return "\n".join(
        difflib.unified_diff(
            list(_flatten(before)), list(_flatten(after)), "before", "after", lineterm="", n=0
        )
    )


def _flatten(value: Any, path: str = "") -> Any:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _flatten(value[key], f"{path}.{key}" if path else str(key))
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(item, dict) and item.get("name") for item in value)
    ):
        for item in sorted(value, key=lambda item: str(item["name"])):
            rest = {k: v for k, v in item.items() if k != "name"}
            yield from _flatten(rest, f"{path}.{item['name']}")
    else:
        yield f"{path} = {json.dumps(value, sort_keys=True, default=str)}"
