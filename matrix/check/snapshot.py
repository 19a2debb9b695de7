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

The engine reads the state from its catalogue in one round trip (a few
milliseconds for a hundred tables on PostgreSQL) and hands it over as one
document (:meth:`~matrix.engines.Engine.schema_document`); this module only
turns documents into facts and compares them, so both engines are judged by
the same kinds of facts: columns with their exact types, nullability,
defaults, identity and computed definitions; keys, foreign keys with their
actions, checks; indexes; triggers, views, sequences, types and functions.
Alembic's own version table is left out: only the plugin's objects are on
trial.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from matrix.engines import Engine

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
        return {_table(fact) for fact in self.facts if fact.startswith("tables.")}


@dataclass(frozen=True)
class Change:
    """What changed between two states: facts added and facts removed."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def tables(self) -> set[str]:
        """Tables whose definition this change touches."""
        return {_table(fact) for fact in self.added | self.removed if fact.startswith("tables.")}

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


def _table(fact: str) -> str:
    """The table a ``tables.`` fact is about (``tables.T = {}``, an empty table, too)."""
    return fact.split(" = ", 1)[0].split(".")[1]


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
    "procedures": "procedure",
}


def describe(expected: Iterable[str], actual: Iterable[str]) -> str:
    """The facts only in ``expected`` (``-``) and only in ``actual`` (``+``), sorted."""
    expected, actual = set(expected), set(actual)
    lines = [(f, "-") for f in expected - actual] + [(f, "+") for f in actual - expected]
    return "\n".join(f"{sign} {fact}" for fact, sign in sorted(lines, key=lambda x: x[0]))


# -- taking a state ---------------------------------------------------------------


def plugin_schema(conn: sa.Connection, engine: Engine, schema: str) -> SchemaState:
    """The state of ``schema`` on this connection's database, from the engine's catalogue."""
    return state_of(engine.schema_document(conn, schema, VERSION_TABLE))


def state_of(document: dict[str, Any]) -> SchemaState:
    """A schema document (see :meth:`Engine.schema_document`) as facts."""
    facts: list[str] = []
    for key, value in document.items():
        if key == "tables":
            for name, table in (value or {}).items():
                facts.extend(_table_facts(name, table))
        else:
            facts.extend(_facts(value or {}, key))
    return SchemaState(frozenset(facts))


# A walk takes a state after every revision, and most tables are as they were: a table's
# facts are taken again only when its part of the document differs (a dict comparison,
# a tenth of the cost). Bounded: emptied when it holds more tables than any plugin has.
_TABLE_FACTS: dict[str, tuple[Any, tuple[str, ...]]] = {}
_TABLE_FACTS_KEPT = 5000


def _table_facts(name: str, table: Any) -> tuple[str, ...]:
    known = _TABLE_FACTS.get(name)
    if known is not None and known[0] == table:
        return known[1]
    if len(_TABLE_FACTS) >= _TABLE_FACTS_KEPT:
        _TABLE_FACTS.clear()
    facts = tuple(_facts(table, f"tables.{name}"))
    _TABLE_FACTS[name] = (table, facts)
    return facts


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
