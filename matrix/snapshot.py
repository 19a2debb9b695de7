"""Pictures of a plugin schema, as sets of facts, to compare states.

A schema state is a frozen set of one-line facts, each with its full path
(``tables.Item.indexes.idx_Item_name = CREATE INDEX ...``), so that two
states compare with set arithmetic: what a revision changed is two small
sets (added and removed), and a difference reads on its own, without
context lines. Walks keep one state and the per-revision changes, never a
picture of every revision.

Columns, constraints and indexes are keyed by name, not position: a column
added by a later revision sits at the end of the table while ``create_all``
puts it where the model declares it, and no Peek code depends on the order.

On PostgreSQL the state comes from one catalog query per schema (a few
milliseconds for a hundred tables); elsewhere from SQLAlchemy's inspector
(:func:`inspected`), which ``tests/test_snapshot.py`` also runs on PostgreSQL,
with and without the constraint reflection SQL Server's dialect lacks.
Alembic's own version table is left out: only the plugin's objects are on
trial.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class SchemaState:
    """A schema's objects as facts; equal states have equal fact sets."""

    facts: frozenset[str]

    def changes_to(self, other: SchemaState) -> Change:
        return Change(
            added=frozenset(other.facts - self.facts), removed=frozenset(self.facts - other.facts)
        )

    def revert(self, change: Change) -> SchemaState:
        return SchemaState((self.facts - change.added) | change.removed)

    def tables(self) -> set[str]:
        return {fact.split(".")[1] for fact in self.facts if fact.startswith("tables.")}


@dataclass(frozen=True)
class Change:
    """What changed between two states: facts added and facts removed."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def tables(self) -> set[str]:
        """Tables whose definition this change touches."""
        return {
            fact.split(".")[1] for fact in self.added | self.removed if fact.startswith("tables.")
        }

    def summary(self) -> list[str]:
        """One short line per object created (+), dropped (-) or altered (~)."""
        signs: dict[tuple[str, str], set[str]] = {}
        for sign, facts in (("+", self.added), ("-", self.removed)):
            for fact in facts:
                path = fact.split(" = ", 1)[0].split(".")
                if path[0] == "tables" and len(path) > 2:
                    whole = signs.setdefault(("table", path[1]), set())
                    if path[2] == "kind":
                        whole.add(sign)
                    elif len(path) > 3:
                        kind = _SINGULAR.get(path[2], path[2])
                        signs.setdefault((kind, f"{path[1]}.{path[3]}"), set()).add(sign)
                elif len(path) > 1:
                    kind = _SINGULAR.get(path[0], path[0])
                    signs.setdefault((kind, path[1]), set()).add(sign)
        created_or_dropped = {
            name for (kind, name), marks in signs.items() if kind == "table" and len(marks) == 1
        }
        lines = []
        for (kind, name), marks in sorted(signs.items()):
            if kind != "table" and name.split(".")[0] in created_or_dropped:
                continue  # shown as the table's creation or drop
            if kind == "table" and not marks:
                continue  # only its parts changed; they have lines of their own
            lines.append(f"{'~' if len(marks) > 1 else next(iter(marks))} {kind} {name}")
        return lines


_SINGULAR = {
    "tables": "table",
    "columns": "column",
    "constraints": "constraint",
    "indexes": "index",
    "triggers": "trigger",
    "views": "view",
    "sequences": "sequence",
    "types": "type",
    "functions": "function",
}


def describe(expected: Iterable[str], actual: Iterable[str]) -> str:
    """The facts only in ``expected`` (``-``) and only in ``actual`` (``+``), sorted."""
    expected, actual = set(expected), set(actual)
    lines = [(f, "-") for f in expected - actual] + [(f, "+") for f in actual - expected]
    return "\n".join(f"{sign} {fact}" for fact, sign in sorted(lines, key=lambda x: x[0]))


# -- taking a state ---------------------------------------------------------------


def plugin_schema(conn: sa.Connection, schema: str) -> SchemaState:
    """The state of ``schema`` on this connection's database."""
    if conn.dialect.name == "postgresql":
        return catalogued(conn, schema)
    return inspected(conn, schema)


_PG_SCHEMA = """
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = :schema),
rel AS (
    SELECT c.oid, c.relname, c.relkind FROM pg_class c
    WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relname <> :version_table
)
SELECT json_build_object(
  'tables', (SELECT json_object_agg(t.relname, json_build_object(
      'kind', t.relkind,
      'columns', (SELECT json_object_agg(a.attname, json_build_object(
              'type', format_type(a.atttypid, a.atttypmod),
              'nullable', NOT a.attnotnull,
              'default', pg_get_expr(d.adbin, d.adrelid),
              'identity', a.attidentity,
              'generated', a.attgenerated,
              'collation', CASE WHEN a.attcollation <> 0
                                 AND a.attcollation <> (SELECT typcollation FROM pg_type
                                                        WHERE oid = a.atttypid)
                                THEN (SELECT collname FROM pg_collation
                                      WHERE oid = a.attcollation) END))
          FROM pg_attribute a
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped),
      'constraints', (SELECT json_object_agg(k.conname, pg_get_constraintdef(k.oid))
          FROM pg_constraint k WHERE k.conrelid = t.oid),
      'indexes', (SELECT json_object_agg(ic.relname, pg_get_indexdef(i.indexrelid))
          FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = t.oid AND NOT EXISTS (
              SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                AND k.conrelid = t.oid AND k.contype IN ('p', 'u', 'x'))),
      'triggers', (SELECT json_object_agg(g.tgname, pg_get_triggerdef(g.oid))
          FROM pg_trigger g WHERE g.tgrelid = t.oid AND NOT g.tgisinternal)
    )) FROM rel t WHERE t.relkind IN ('r', 'p', 'f')),
  'views', (SELECT json_object_agg(v.relname, pg_get_viewdef(v.oid))
      FROM rel v WHERE v.relkind IN ('v', 'm')),
  'sequences', (SELECT json_object_agg(s.relname, json_build_object(
          'type', format_type(q.seqtypid, NULL), 'increment', q.seqincrement,
          'start', q.seqstart, 'cycle', q.seqcycle))
      FROM rel s JOIN pg_sequence q ON q.seqrelid = s.oid WHERE s.relkind = 'S'),
  'types', (SELECT json_object_agg(y.typname, CASE y.typtype
          WHEN 'e' THEN (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
                         FROM pg_enum e WHERE e.enumtypid = y.oid)
          ELSE format_type(y.typbasetype, y.typtypmod) END)
      FROM pg_type y WHERE y.typnamespace = (SELECT oid FROM ns) AND y.typtype IN ('e', 'd')),
  'functions', (SELECT json_object_agg(
          p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
          md5(pg_get_functiondef(p.oid)))
      FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns) AND p.prokind IN ('f', 'p'))
)
"""


def catalogued(conn: sa.Connection, schema: str) -> SchemaState:
    """PostgreSQL: the whole schema in one catalog query."""
    raw = conn.execute(
        sa.text(_PG_SCHEMA), {"schema": schema, "version_table": VERSION_TABLE}
    ).scalar_one()
    document = raw if isinstance(raw, dict) else json.loads(raw)
    return SchemaState(frozenset(_facts({k: v or {} for k, v in document.items()})))


def inspected(conn: sa.Connection, schema: str) -> SchemaState:
    """Any engine: the schema through SQLAlchemy's inspector, one call per kind."""
    inspector = sa.inspect(conn)
    if schema not in inspector.get_schema_names():
        return SchemaState(frozenset())
    names = [n for n in inspector.get_table_names(schema=schema) if n != VERSION_TABLE]
    if not names:
        return SchemaState(frozenset(_facts(_objects(inspector, schema))))
    columns = inspector.get_multi_columns(schema=schema, filter_names=names)
    keys = inspector.get_multi_pk_constraint(schema=schema, filter_names=names)
    foreign = inspector.get_multi_foreign_keys(schema=schema, filter_names=names)
    indexes = inspector.get_multi_indexes(schema=schema, filter_names=names)
    # SQL Server's dialect reflects no unique or check constraints: its unique
    # constraints come back as unique indexes instead.
    uniques = _optional(inspector.get_multi_unique_constraints, schema, names)
    checks = _optional(inspector.get_multi_check_constraints, schema, names)
    tables: dict[str, Any] = {}
    for name in names:
        key = (schema, name)
        constraints: dict[str, str] = {}
        pk = keys.get(key) or {}
        if pk.get("constrained_columns"):
            constraints[pk.get("name") or "primary key"] = (
                f"PRIMARY KEY ({', '.join(pk['constrained_columns'])})"
            )
        for fk in foreign.get(key, []):
            options = " ".join(f"{k}={v}" for k, v in sorted((fk.get("options") or {}).items()))
            constraints[fk.get("name") or f"fk {fk['constrained_columns']}"] = (
                f"FOREIGN KEY ({', '.join(fk['constrained_columns'])}) REFERENCES "
                f"{fk.get('referred_schema')}.{fk['referred_table']}"
                f"({', '.join(fk['referred_columns'])}) {options}".strip()
            )
        for uq in uniques.get(key, []):
            constraints[uq.get("name") or f"unique {uq['column_names']}"] = (
                f"UNIQUE ({', '.join(uq['column_names'])})"
            )
        for ck in checks.get(key, []):
            constraints[ck.get("name") or f"check {ck['sqltext']}"] = f"CHECK ({ck['sqltext']})"
        tables[name] = {
            "kind": "table",
            "columns": {
                c["name"]: {
                    "type": _type_name(c["type"]),
                    "nullable": c["nullable"],
                    "default": c.get("default"),
                    "identity": bool(c.get("identity")),
                    "generated": bool(c.get("computed")),
                }
                for c in columns.get(key, [])
            },
            "constraints": constraints,
            "indexes": {
                ix.get("name") or f"index {ix.get('column_names')}": (
                    f"{'UNIQUE ' if ix.get('unique') else ''}INDEX ("
                    f"{', '.join(str(c) for c in ix.get('column_names') or [])})"
                    + "".join(
                        f" {k}={v}" for k, v in sorted((ix.get("dialect_options") or {}).items())
                    )
                )
                for ix in indexes.get(key, [])
                if not ix.get("duplicates_constraint")
            },
        }
    return SchemaState(frozenset(_facts({"tables": tables, **_objects(inspector, schema)})))


def _objects(inspector: sa.Inspector, schema: str) -> dict[str, Any]:
    views = {name: "view" for name in inspector.get_view_names(schema=schema)}
    try:
        sequences = {name: "sequence" for name in inspector.get_sequence_names(schema=schema)}
    except NotImplementedError:
        sequences = {}
    return {"views": views, "sequences": sequences}


def _optional(method, schema: str, names: list[str]) -> dict:
    try:
        return method(schema=schema, filter_names=names)
    except NotImplementedError:
        return {}


def _type_name(type_: sa.types.TypeEngine) -> str:
    try:
        return str(type_)
    except (sa.exc.CompileError, NotImplementedError, TypeError):  # uncompilable type
        return type(type_).__name__


def _facts(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, dict) and value:
        for key in value:
            yield from _facts(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, dict):
        if path.count(".") <= 1 and path.startswith("tables."):
            yield f"{path} = {{}}"  # a table with nothing in it is still a table
    else:
        yield f"{path} = {json.dumps(value, sort_keys=True, default=str)}"


# -- outside the plugin schema ----------------------------------------------------------


def outside_plugin_schema(conn: sa.Connection, sql: str, schema: str) -> frozenset[str]:
    """Every object outside the plugin schema that no extension or the server owns."""
    rows = conn.execute(sa.text(sql), {"schema": schema})
    return frozenset(f"{r.schema}.{r.name} ({r.kind})" for r in rows)
