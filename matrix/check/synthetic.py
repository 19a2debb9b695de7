"""Synthetic rows for any plugin's tables (:mod:`matrix.check.survival` finds them again).

``data_survives`` (and the upgrade checks that reuse it) need rows in the
plugin's tables, for plugins the harness has never seen, without fixtures.
Values come from each column's reflected type. Three rules keep the verdict
honest:

- **Every row is identifiable for the whole walk.** One counter numbers every
  value the walk ever writes and is never reseeded, so a row written later can
  never pass for a lost one, even when a table is dropped, created again and
  its keys restart.
- **Values compare in their column's own semantics**: time zones as instants,
  floats within their precision, numerics as decimals, JSON as documents,
  geometry as normalised WKT read back by the database itself; and across a
  column's change of type, as text.
- **What cannot be filled is said, not guessed.** A column type the generator
  cannot fill, or an insert the database refuses, leaves that table *not
  covered*, with the reason; it never makes the plugin fail.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

# values imports geoalchemy2, without which geometry columns do not reflect as geometry
from matrix.check.column_values import Geometry, decode, encode, value_for
from matrix.check.snapshot import VERSION_TABLE
from matrix.engines import Engine
from matrix.provide.databases import first_line

ROWS_PER_TABLE = 3


class Unfillable(Exception):
    """A table the generator cannot put rows into; the reason says why."""


@dataclass(frozen=True)
class WrittenRow:
    """A row the harness wrote: where, when, and exactly what."""

    table: str
    identity: int | None  # the table's identity (oid, object_id) when written
    revision: str
    serial: int  # the counter value all its generated values derive from
    key: tuple[tuple[str, Any], ...]
    values: tuple[tuple[str, Any], ...]

    def describe(self) -> str:
        key = ", ".join(f"{k}={v!r}" for k, v in self.key) or f"serial {self.serial}"
        return f"{self.table}({key}) written at {self.revision}"


@dataclass
class Ledger:
    """Everything one walk wrote, and what happened to the tables since.

    ``identities`` follows each table's identity revision by revision, so
    that a table dropped (or dropped and re-created) is blamed on the
    revision that did it; ``counts`` does the same for rows deleted.
    """

    counter: Iterable[int] = field(default_factory=lambda: itertools.count(1))
    rows: list[WrittenRow] = field(default_factory=list)
    revisions: list[str] = field(default_factory=list)  # in walk order
    identities: dict[str, int] = field(default_factory=dict)
    drops: dict[int, str] = field(default_factory=dict)  # identity -> revision that dropped it
    recreated: dict[tuple[str, int], str] = field(default_factory=dict)  # (name, old id) -> rev
    # identity -> (rows, hash) as the walk last left it, and the revisions that changed either
    fingerprints: dict[int, tuple[int, str]] = field(default_factory=dict)
    touched: dict[int, list[str]] = field(default_factory=dict)
    shrunk: dict[int, list[str]] = field(default_factory=dict)  # revisions that lowered the count
    uncovered: dict[str, str] = field(default_factory=dict)  # table -> why it has no rows
    dropped_columns: dict[tuple[str, str], str] = field(default_factory=dict)  # -> revision

    def next(self) -> int:
        return next(self.counter)  # type: ignore[call-overload]

    def observe(self, conn: sa.Connection, engine: Engine, schema: str, revision: str) -> None:
        """After a revision, before any row is written: what did it do to our tables?

        A table whose identity is gone was dropped (or dropped and created
        again); a table whose rows' fingerprint (count and hash of every row)
        changed had rows deleted, added or rewritten by the revision. Both are
        kept per table identity, so a lost or changed row can be blamed on the
        first revision after its writing that touched its table.
        """
        self.revisions.append(revision)
        now = {
            row.name: int(row.identity)
            for row in conn.execute(sa.text(engine.table_identity_sql), {"schema": schema})
        }
        by_identity = {identity: name for name, identity in now.items()}
        for name, identity in self.identities.items():
            if identity in by_identity:
                continue  # still there, perhaps renamed
            self.drops.setdefault(identity, revision)
            if name in now:
                self.recreated.setdefault((name, identity), revision)
        self.identities = now
        for identity, fingerprint in self._fingerprints(conn, engine, schema).items():
            before = self.fingerprints.get(identity, fingerprint)
            if before != fingerprint:
                self.touched.setdefault(identity, []).append(revision)
            if fingerprint[0] < before[0]:
                self.shrunk.setdefault(identity, []).append(revision)
            self.fingerprints[identity] = fingerprint

    def settle(self, conn: sa.Connection, engine: Engine, schema: str) -> None:
        """Take the tables' fingerprints after the harness wrote its rows (every table's:
        a trigger may have written into another than the one written to)."""
        self.fingerprints.update(self._fingerprints(conn, engine, schema))

    def _fingerprints(
        self, conn: sa.Connection, engine: Engine, schema: str
    ) -> dict[int, tuple[int, str]]:
        by_identity = {identity: name for name, identity in self.identities.items()}
        ours = sorted({r.identity for r in self.rows if r.identity in by_identity})
        if not ours:
            return {}
        names = [by_identity[identity] for identity in ours]
        unhashed: dict[str, list[tuple[str, str]]] = {}
        if engine.unhashed_columns_sql:
            for row in conn.execute(sa.text(engine.unhashed_columns_sql), {"schema": schema}):
                unhashed.setdefault(row.table, []).append((row.column, row.type))
        rows = conn.execute(sa.text(engine.fingerprint_sql(schema, names, unhashed))).all()
        return {ours[row.n]: (int(row.c), str(row.h)) for row in rows}

    def wrote(self, row: WrittenRow) -> None:
        self.rows.append(row)

    def forget(self, rows: set[int]) -> None:
        """Stop following the rows whose ``id()`` is in ``rows``."""
        self.rows = [row for row in self.rows if id(row) not in rows]

    def forget_column(self, table: str, column: str) -> None:
        """Stop following one column of a table's rows: a revision dropped it."""
        self.rows = [
            replace(row, values=tuple(v for v in row.values if v[0] != column))
            if row.table == table
            else row
            for row in self.rows
        ]
        self.dropped_columns.pop((table, column), None)

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to go on with this walk in another process (another release)."""
        return {
            "next": max((r.serial for r in self.rows), default=0) + 1,
            "rows": [
                {
                    "table": r.table,
                    "identity": r.identity,
                    "revision": r.revision,
                    "serial": r.serial,
                    "key": [[k, encode(v)] for k, v in r.key],
                    "values": [[k, encode(v)] for k, v in r.values],
                }
                for r in self.rows
            ],
            "revisions": self.revisions,
            "identities": self.identities,
            "drops": {str(k): v for k, v in self.drops.items()},
            "recreated": [
                [name, identity, rev] for (name, identity), rev in self.recreated.items()
            ],
            "fingerprints": {str(k): list(v) for k, v in self.fingerprints.items()},
            "touched": {str(k): v for k, v in self.touched.items()},
            "shrunk": {str(k): v for k, v in self.shrunk.items()},
            "uncovered": self.uncovered,
            "dropped_columns": [[t, c, rev] for (t, c), rev in self.dropped_columns.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        return cls(
            counter=itertools.count(int(data["next"])),
            rows=[
                WrittenRow(
                    table=r["table"],
                    identity=r["identity"],
                    revision=r["revision"],
                    serial=r["serial"],
                    key=tuple((k, decode(v)) for k, v in r["key"]),
                    values=tuple((k, decode(v)) for k, v in r["values"]),
                )
                for r in data["rows"]
            ],
            revisions=list(data["revisions"]),
            identities={k: int(v) for k, v in data["identities"].items()},
            drops={int(k): v for k, v in data["drops"].items()},
            recreated={(n, int(i)): rev for n, i, rev in data["recreated"]},
            fingerprints={int(k): (int(v[0]), str(v[1])) for k, v in data["fingerprints"].items()},
            touched={int(k): v for k, v in data["touched"].items()},
            shrunk={int(k): v for k, v in data["shrunk"].items()},
            uncovered=dict(data["uncovered"]),
            dropped_columns={(t, c): rev for t, c, rev in data.get("dropped_columns", [])},
        )

    def touched_after(self, row: WrittenRow) -> str | None:
        """The first revision after ``row`` was written that touched its table's rows."""
        return self._first_after(row, self.touched)

    def deleted_after(self, row: WrittenRow) -> str | None:
        """The first revision after ``row`` was written that lowered its table's row count,
        else the first that touched its rows (a table emptied and refilled)."""
        return self._first_after(row, self.shrunk) or self.touched_after(row)

    def _first_after(self, row: WrittenRow, events: dict[int, list[str]]) -> str | None:
        written = self.revisions.index(row.revision) if row.revision in self.revisions else -1
        for revision in events.get(row.identity, []):
            if self.revisions.index(revision) > written:
                return revision
        return None


def row_counts(
    conn: sa.Connection, engine: Engine, schema: str, tables: list[str]
) -> dict[str, int]:
    """Row counts of several tables in one round trip."""
    parts = [
        f"SELECT {i} AS n, COUNT(*) AS c FROM {engine.quote(schema)}.{engine.quote(t)}"
        for i, t in enumerate(tables)
    ]
    rows = conn.execute(sa.text(" UNION ALL ".join(parts))).all()
    return {tables[row.n]: int(row.c) for row in rows}


def reflect(
    conn: sa.Connection, engine: Engine, schema: str, only: Iterable[str] | None = None
) -> sa.MetaData:
    """The schema's tables (or ``only`` those) as SQLAlchemy tables.

    Each column passes the engine's :meth:`~matrix.engines.Engine.column_reflect`,
    which completes what the dialect's reflection leaves out (a ``datetime2(0)``
    reflects without its precision on SQL Server), so that values are generated
    and compared at the precision the column really keeps.
    """
    metadata = sa.MetaData(schema=schema)
    names = None if only is None else [n for n in only if n != VERSION_TABLE]
    if names == []:
        return metadata
    sa.event.listen(metadata, "column_reflect", engine.column_reflect)
    if names is not None and len(names) == 1:
        # The most common case of a walk (a revision touched one table): MetaData.reflect
        # would first list every table of the schema to check the name, a query that
        # grows with the schema; several tables are reflected in one batch by it.
        sa.Table(names[0], metadata, autoload_with=conn, resolve_fks=True)
        return metadata
    metadata.reflect(conn, schema=schema, only=names, resolve_fks=True)
    return metadata


# -- writing ------------------------------------------------------------------------


def fill(
    conn: sa.Connection,
    engine: Engine,
    tables: list[sa.Table],
    revision: str,
    ledger: Ledger,
    rows_per_table: int = ROWS_PER_TABLE,
) -> None:
    """Write rows into ``tables`` (parents first); record what could not be filled.

    ``conn`` is in autocommit mode: each row stands on its own, so a table the
    generator cannot fill leaves the rows of the others (and its own earlier
    ones) written and recorded.
    """
    for table in sa.sql.util.sort_tables(tables):
        if table.name == VERSION_TABLE:
            continue
        try:
            for _ in range(rows_per_table):
                _insert(conn, engine, table, revision, ledger)
            ledger.uncovered.pop(table.name, None)
        except (Unfillable, sa.exc.DBAPIError, sa.exc.StatementError) as error:
            ledger.uncovered[table.name] = f"at {revision}: {first_line(error)}"


def _insert(
    conn: sa.Connection,
    engine: Engine,
    table: sa.Table,
    revision: str,
    ledger: Ledger,
    depth: int = 0,
) -> None:
    serial = ledger.next()
    values = row_values(conn, engine, table, serial, ledger, revision, depth)
    result = conn.execute(insert_statement(engine, table, values))
    key_names = [c.name for c in table.primary_key]
    inserted = dict(zip(key_names, result.inserted_primary_key or (), strict=False))
    key = {name: values.get(name, inserted.get(name)) for name in key_names}
    ledger.wrote(
        WrittenRow(
            table=table.name,
            identity=ledger.identities.get(table.name),
            revision=revision,
            serial=serial,
            key=tuple(sorted(key.items())),
            values=tuple(sorted(values.items())),
        )
    )


def insert_statement(engine: Engine, table: sa.Table, values: dict[str, Any]) -> sa.Insert:
    """One generated row; geometry goes in as WKT through the database's own constructor.

    Where a table with a trigger refuses ``OUTPUT inserted...`` (SQL Server),
    the new key is read without it.
    """
    if not engine.returning_with_triggers:
        table.implicit_returning = False
    return table.insert().values({name: _bindable(engine, value) for name, value in values.items()})


def row_values(
    conn: sa.Connection,
    engine: Engine,
    table: sa.Table,
    serial: int,
    ledger: Ledger,
    revision: str,
    depth: int = 0,
) -> dict[str, Any]:
    """Values for one row: generated from the types, foreign keys from parent rows."""
    values: dict[str, Any] = {}
    for constraint in table.foreign_key_constraints:
        parent = _parent_key(conn, engine, table, constraint, ledger, revision, depth)
        if parent is None:
            if all(c.nullable for c in constraint.columns):
                continue
            raise Unfillable(
                f"{table.name}.{constraint.column_keys} refers to "
                f"{constraint.referred_table.name}, which has no row to refer to"
            )
        values.update(parent)
    for column in table.columns:
        if column.name in values or _server_writes(engine, column):
            continue
        if generated_key(table, column):
            continue
        value = value_for(column.type, serial, column, engine)
        if value is None:
            if column.nullable or column.server_default is not None:
                continue
            raise Unfillable(
                f"no value can be generated for the NOT NULL column {table.name}.{column.name} "
                f"of type {_type_text(column.type)}"
            )
        values[column.name] = value
    return values


MAX_PARENT_DEPTH = 3


def _parent_key(
    conn: sa.Connection,
    engine: Engine,
    table: sa.Table,
    constraint: sa.ForeignKeyConstraint,
    ledger: Ledger,
    revision: str,
    depth: int,
) -> dict[str, Any] | None:
    """A parent key no row of ``table`` refers to yet; a new parent row when there is none.

    Many child tables hold one row per parent (a user's password, a device's
    settings) and a later revision may say so with a unique index: rows the
    harness writes must not break an invariant real data keeps.
    """
    parent = constraint.referred_table
    pairs = [(element.parent.name, element.column.name) for element in constraint.elements]
    taken = {
        tuple(row)
        for row in conn.execute(sa.select(*[table.c[child] for child, _ in pairs]).distinct())
    }
    keys = conn.execute(sa.select(*[parent.c[p] for _, p in pairs]).limit(10000)).all()
    for key in keys:
        if tuple(key) not in taken and all(v is not None for v in key):
            return {child: key[i] for i, (child, _) in enumerate(pairs)}
    if depth < MAX_PARENT_DEPTH and parent is not table:
        try:
            _insert(conn, engine, parent, revision, ledger, depth + 1)
        except (Unfillable, sa.exc.DBAPIError, sa.exc.StatementError):
            pass
        else:
            return _parent_key(conn, engine, table, constraint, ledger, revision, MAX_PARENT_DEPTH)
    if keys:
        return {child: keys[0][i] for i, (child, _) in enumerate(pairs)}
    return None


def _server_writes(engine: Engine, column: sa.Column) -> bool:
    """A column the server fills and refuses a value for: computed, identity, rowversion."""
    return (
        column.computed is not None
        or column.identity is not None
        or engine.server_generated(column.type)
    )


def generated_key(table: sa.Table, column: sa.Column) -> bool:
    """An integer primary key the database numbers (serial, identity)."""
    return (
        column.primary_key
        and len(table.primary_key.columns) == 1
        and column.autoincrement in (True, "auto")
        and isinstance(column.type, sa.Integer)
        and column.server_default is not None
    )


def _bindable(engine: Engine, value: Any) -> Any:
    """Geometry goes in as WKT through the database's own constructor."""
    if isinstance(value, Geometry):
        return engine.geometry_from_text(value.wkt, value.srid, value.kind)
    return value


def bulk_rows(
    conn: sa.Connection, engine: Engine, table: sa.Table, count: int, ledger: Ledger
) -> tuple[list[str], list[tuple]]:
    """``count`` rows for a bulk load: the columns and their values, keys left to the database.

    Foreign keys take the parent's existing keys in turn; every other value
    comes from :func:`value_for`, numbered by the ledger so rows stay distinct.
    Geometry is EWKT text, which COPY takes.
    """
    generated = {c.name for c in table.columns if generated_key(table, c)}
    parents: dict[str, tuple[int, list]] = {}
    for constraint in table.foreign_key_constraints:
        pairs = [(e.parent.name, e.column.name) for e in constraint.elements]
        keys = conn.execute(
            sa.select(*[constraint.referred_table.c[p] for _, p in pairs]).limit(100_000)
        ).all()
        if not keys and not all(table.c[child].nullable for child, _ in pairs):
            raise Unfillable(f"{constraint.referred_table.name} has no row to refer to")
        for index, (child, _) in enumerate(pairs):
            parents[child] = (index, keys)
    columns = [
        c for c in table.columns if c.name not in generated and not _server_writes(engine, c)
    ]
    rows = []
    for i in range(count):
        n = ledger.next()
        row = []
        for column in columns:
            if column.name in parents:
                index, keys = parents[column.name]
                row.append(keys[i % len(keys)][index] if keys else None)
                continue
            value = value_for(column.type, n, column, engine)
            if value is None and not column.nullable and column.server_default is None:
                raise Unfillable(f"no value for the NOT NULL column {column.name}")
            if isinstance(value, dict | list):  # geometry stays a Geometry: each engine loads it
                value = json.dumps(value)
            row.append(value)
        rows.append(tuple(row))
    return [c.name for c in columns], rows


# -- values across processes ---------------------------------------------------------


# -- reading back --------------------------------------------------------------------


def _type_text(type_: sa.types.TypeEngine) -> str:
    try:
        return str(type_)
    except Exception:  # noqa: BLE001 - only for a message
        return type(type_).__name__
