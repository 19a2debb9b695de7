"""Synthetic rows for any plugin's tables, and the proof that they survived.

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

import base64
import datetime
import decimal
import itertools
import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from matrix.check.snapshot import VERSION_TABLE
from matrix.engines import Engine
from matrix.provide.databases import first_line

try:  # geometry columns reflect as geoalchemy2 types only once it is imported
    import geoalchemy2
except ImportError:  # a plugin environment without geoalchemy2 has no geometry
    geoalchemy2 = None

ROWS_PER_TABLE = 3
EPOCH = datetime.datetime(2020, 1, 1)
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_WKT = {
    "POINT": "POINT({x} {y})",
    "LINESTRING": "LINESTRING({x} {y}, {x2} {y2})",
    "POLYGON": "POLYGON(({x} {y}, {x2} {y}, {x2} {y2}, {x} {y}))",
    "MULTIPOINT": "MULTIPOINT({x} {y}, {x2} {y2})",
    "MULTILINESTRING": "MULTILINESTRING(({x} {y}, {x2} {y2}))",
    "MULTIPOLYGON": "MULTIPOLYGON((({x} {y}, {x2} {y}, {x2} {y2}, {x} {y})))",
}


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
        """Take the tables' fingerprints after the harness wrote its rows."""
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
        if _generated_key(table, column):
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


def _generated_key(table: sa.Table, column: sa.Column) -> bool:
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


@dataclass(frozen=True)
class Geometry:
    """A generated geometry (or geography) value: WKT and SRID, compared as normalised WKT."""

    wkt: str
    srid: int
    kind: str = "geometry"  # or "geography": SQL Server builds each with its own type

    @property
    def ewkt(self) -> str:
        """PostGIS's extended WKT, as COPY takes it."""
        return f"SRID={self.srid};{self.wkt}" if self.srid else self.wkt


def value_for(
    type_: sa.types.TypeEngine,
    n: int,
    column: sa.Column | None = None,
    engine: Engine | None = None,
) -> Any:
    """A valid value of ``type_`` derived from ``n``, unique where the type allows.

    A date-time holds only what its column keeps through ``engine``'s driver
    (:func:`time_step`), so that it reads back as it was written.
    """
    type_ = getattr(type_, "impl_instance", None) or type_
    geometry = _geometry(type_, n)
    if geometry is not None:
        return geometry
    name = type(type_).__name__.upper()
    if isinstance(type_, sa.Boolean):
        return n % 2 == 0
    if isinstance(type_, sa.Enum):
        return type_.enums[n % len(type_.enums)] if type_.enums else None
    if isinstance(type_, sa.Float):  # before Numeric: 2.1 made them siblings
        return n + 0.5
    if isinstance(type_, sa.Integer):
        if isinstance(type_, sa.SmallInteger):
            return n % 32767
        if name == "TINYINT":  # SQL Server's: 0 to 255
            return n % 256
        return n
    if isinstance(type_, sa.Numeric):
        precision, scale = type_.precision or 18, type_.scale or 0
        whole = n % (10 ** max(precision - scale, 1))
        value = decimal.Decimal(whole) + (decimal.Decimal("0.5") if scale else 0)
        return value if type_.asdecimal else float(value)
    if isinstance(type_, sa.DateTime):
        step = time_step(engine, type_)
        within_a_minute = max(1, min(1000, datetime.timedelta(minutes=1) // step))
        stamp = EPOCH + datetime.timedelta(minutes=n) + step * (n % within_a_minute)
        return stamp.replace(tzinfo=datetime.UTC) if type_.timezone else stamp
    if isinstance(type_, sa.Date):
        return EPOCH.date() + datetime.timedelta(days=n % 30000)
    if isinstance(type_, sa.Time):
        seconds = n % 86400
        moment = datetime.time(seconds // 3600, seconds // 60 % 60, seconds % 60)
        return moment.replace(tzinfo=datetime.UTC) if getattr(type_, "timezone", False) else moment
    if isinstance(type_, sa.Interval):
        return datetime.timedelta(seconds=n)
    if isinstance(type_, sa.Uuid):
        value = uuid.UUID(int=n)
        return value if type_.as_uuid else str(value)
    if isinstance(type_, sa.JSON):
        return {"n": n}
    if isinstance(type_, sa.ARRAY):
        item = value_for(type_.item_type, n)
        return None if item is None else [item]
    if name in ("INET", "CIDR"):
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}" + (
            "/32" if name == "CIDR" else ""
        )
    if name in ("MACADDR", "MACADDR8"):
        return ":".join(f"{(n >> s) & 255:02x}" for s in (40, 32, 24, 16, 8, 0))
    if name in ("TSVECTOR", "MONEY"):
        return f"r{n}" if name == "TSVECTOR" else n
    if isinstance(type_, sa.LargeBinary):
        return f"r{n}".encode()
    if isinstance(type_, sa.String):  # Text, Unicode, CHAR, VARCHAR, NVARCHAR...
        return _text(n, type_.length)
    return None


def time_step(engine: Engine | None, type_: sa.types.TypeEngine) -> datetime.timedelta:
    """The step generated date-times take: kept exactly by the column and by the driver.

    The finer of the two rounded up to a power of ten of a second (SQL Server's
    ``datetime`` keeps 1/300 s, whose multiples of 10 ms are exact), or the
    column's own step from a second up (``smalldatetime``: the minute).
    """
    if engine is None:
        return datetime.timedelta(microseconds=1)
    kept = engine.time_resolution(type_) or datetime.timedelta(microseconds=1)
    finest = max(kept, engine.driver_time_step)
    if finest >= datetime.timedelta(seconds=1):
        return finest
    step = datetime.timedelta(microseconds=1)
    while step < finest:
        step *= 10
    return step


def _text(n: int, length: int | None) -> str:
    """``r<n>``, or ``n`` in base 36 squeezed into a short column."""
    text = f"r{n}"
    if length is None or len(text) <= length:
        return text
    digits = ""
    while n:
        n, rest = divmod(n, 36)
        digits = _BASE36[rest] + digits
    return (digits or "0")[-length:]


def _geometry(type_: sa.types.TypeEngine, n: int) -> Geometry | None:
    if geoalchemy2 is None or not isinstance(type_, geoalchemy2.types._GISType):
        return None
    kind = (type_.geometry_type or "POINT").upper().rstrip("ZM")
    x, y = (n % 170) - 85 + 0.25, (n % 80) - 40 + 0.25
    wkt = _WKT.get(kind, _WKT["POINT"]).format(x=x, y=y, x2=x + 1, y2=y + 1)
    srid = type_.srid if type_.srid and type_.srid > 0 else 0
    if isinstance(type_, geoalchemy2.Geography):
        return Geometry(wkt, srid or 4326, "geography")
    return Geometry(wkt, srid)


def bulk_rows(
    conn: sa.Connection, engine: Engine, table: sa.Table, count: int, ledger: Ledger
) -> tuple[list[str], list[tuple]]:
    """``count`` rows for a bulk load: the columns and their values, keys left to the database.

    Foreign keys take the parent's existing keys in turn; every other value
    comes from :func:`value_for`, numbered by the ledger so rows stay distinct.
    Geometry is EWKT text, which COPY takes.
    """
    generated = {c.name for c in table.columns if _generated_key(table, c)}
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


def encode(value: Any) -> Any:
    """A generated value as JSON, its Python type kept (a tag for those JSON lacks)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Geometry):
        return {"$": "geometry", "wkt": value.wkt, "srid": value.srid, "kind": value.kind}
    if isinstance(value, decimal.Decimal):
        return {"$": "decimal", "v": str(value)}
    if isinstance(value, datetime.datetime):
        return {"$": "datetime", "v": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$": "date", "v": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"$": "time", "v": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"$": "timedelta", "v": value.total_seconds()}
    if isinstance(value, bytes | memoryview):
        return {"$": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, uuid.UUID):
        return {"$": "uuid", "v": str(value)}
    return {"$": "json", "v": value}


def decode(value: Any) -> Any:
    if not isinstance(value, dict) or "$" not in value:
        return value
    kind = value["$"]
    if kind == "geometry":
        return Geometry(value["wkt"], value["srid"], value.get("kind", "geometry"))
    readers = {
        "decimal": decimal.Decimal,
        "datetime": datetime.datetime.fromisoformat,
        "date": datetime.date.fromisoformat,
        "time": datetime.time.fromisoformat,
        "timedelta": lambda v: datetime.timedelta(seconds=v),
        "bytes": base64.b64decode,
        "uuid": uuid.UUID,
        "json": lambda v: v,
    }
    return readers[kind](value["v"])


# -- reading back --------------------------------------------------------------------


def verify(conn: sa.Connection, engine: Engine, schema: str, ledger: Ledger) -> list[Loss]:
    """Every written row that is gone or changed now, with the revision to blame.

    Naive timestamps compare in the server's own zone (:meth:`Engine.server_timezone`).
    """
    timezone = engine.server_timezone(conn)
    metadata = reflect(conn, engine, schema)
    by_identity = {identity: name for name, identity in ledger.identities.items()}
    losses: list[Loss] = []
    groups: dict[tuple[str, int | None], list[WrittenRow]] = {}
    for row in ledger.rows:
        groups.setdefault((row.table, row.identity), []).append(row)
    for (name, identity), rows in groups.items():
        moved = by_identity.get(identity) if identity is not None else None
        recreated = moved is None and identity is not None and name in ledger.identities
        current = moved or (name if name in ledger.identities else None)
        table = metadata.tables.get(f"{schema}.{current}") if current else None
        if table is None:
            dropped_at = ledger.drops.get(identity) if identity is not None else None
            losses.append(Loss(name, rows, "table", dropped_at, "its table is gone"))
            continue
        written = {name for row in rows for name, _ in row.values}
        for column in sorted(written - set(table.c.keys()) if not recreated else ()):
            revision = ledger.dropped_columns.get((name, column))
            had = [row for row in rows if any(key == column for key, _ in row.values)]
            why = f"column {column} was dropped"
            losses.append(Loss(name, had, "column", revision, why, column=column))
        present = _read(conn, engine, table)
        steps = {c.name: engine.time_resolution(c.type) for c in table.columns}
        missing, changed = [], []
        for row in rows:
            # In a table created again, keys restarted: only the values identify a row.
            match = _find(row, present, table, timezone, steps, by_key=not recreated)
            if match is None:
                missing.append(row)
            elif match:
                changed.append((row, match))
        if missing and recreated:
            blame = ledger.recreated.get((name, identity)) or ledger.drops.get(identity)
            losses.append(
                Loss(name, missing, "rows", blame, f"{name} was dropped and created again")
            )
        elif missing:
            by_blame: dict[str | None, list[WrittenRow]] = {}
            for row in missing:
                by_blame.setdefault(ledger.deleted_after(row), []).append(row)
            for blame, lost in by_blame.items():
                losses.append(Loss(name, lost, "rows", blame, "deleted"))
        by_change: dict[str | None, list[tuple[WrittenRow, list[str]]]] = {}
        for row, differences in changed:
            by_change.setdefault(ledger.touched_after(row), []).append((row, differences))
        for blame, group in by_change.items():
            first = "; ".join(group[0][1])
            more = f"; and {len(group) - 1} more row(s)" if len(group) > 1 else ""
            losses.append(Loss(name, [r for r, _ in group], "values", blame, first + more))
    return losses


def lagging_sequences(
    conn: sa.Connection, engine: Engine, schema: str, ledger: Ledger
) -> dict[str, tuple[str | None, str]]:
    """Tables whose key sequence would hand out a key their rows already hold.

    A revision that copies rows back into a re-created table, or inserts rows
    with explicit keys, must move the key's sequence past them; otherwise the
    first row a site writes after the upgrade fails with a duplicate key. For
    every table of the schema, the sequence behind its generated key is
    compared with the highest key present. Returns table -> (revision to
    blame, what was found).
    """
    lagging: dict[str, tuple[str | None, str]] = {}
    metadata = reflect(conn, engine, schema)
    for table in metadata.tables.values():
        for column in table.primary_key:
            if not _generated_key(table, column) and column.identity is None:
                continue
            statement, params = engine.key_sequence_sql(schema, table.name, column.name)
            row = conn.execute(sa.text(statement), params).first()
            if row is None or row.next_value is None or row.highest is None:
                continue
            if int(row.next_value) <= int(row.highest):
                lagging[table.name] = (
                    _last_rebuild(ledger, table.name),
                    f"its sequence gives {column.name} = {int(row.next_value)} next, at or below "
                    f"the highest key the rows hold ({int(row.highest)})",
                )
    return lagging


def _last_rebuild(ledger: Ledger, table: str) -> str | None:
    """The last revision that created ``table`` again, else the last that touched its rows."""
    rebuilt = [rev for (name, _), rev in ledger.recreated.items() if name == table]
    if rebuilt:
        return max(rebuilt, key=ledger.revisions.index)
    identity = ledger.identities.get(table)
    touched = ledger.touched.get(identity, []) if identity is not None else []
    return touched[-1] if touched else None


@dataclass
class Loss:
    """Rows of one table that did not survive, and why."""

    table: str
    rows: list[WrittenRow]
    kind: str  # table | rows | values | column
    revision: str | None
    why: str
    column: str | None = None  # the dropped column, for kind "column"

    def describe(self) -> str:
        revisions = sorted({r.revision for r in self.rows})
        where = f" at {self.revision}" if self.revision else ""
        return (
            f"{self.table}: {len(self.rows)} row(s) written at {', '.join(revisions)} "
            f"{_VERBS[self.kind]}{where} ({self.why})"
        )


_VERBS = {"table": "lost", "rows": "lost", "values": "changed", "column": "lost a value"}


def read_statement(engine: Engine, table: sa.Table) -> sa.Select:
    """Every row of ``table``, geometry read back as WKT by the database.

    The table is aliased: SQL Server reads geometry with a method call, which
    it accepts on an aliased table's column only (``t.[geom].STAsText()``).
    """
    alias = table.alias("t")
    columns = [
        engine.geometry_as_text(alias.c[c.name]).label(c.name)
        if _is_geometry(c.type)
        else alias.c[c.name]
        for c in table.columns
    ]
    return sa.select(*columns)


def _read(conn: sa.Connection, engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(read_statement(engine, table)).mappings()]


def _is_geometry(type_: sa.types.TypeEngine) -> bool:
    return geoalchemy2 is not None and isinstance(type_, geoalchemy2.types._GISType)


def _find(
    row: WrittenRow,
    present: list[dict[str, Any]],
    table: sa.Table,
    timezone: str,
    steps: dict[str, datetime.timedelta | None],
    by_key: bool = True,
) -> list[str] | None:
    """The differences of ``row`` from its match ([] when equal), None when absent.

    A row matches by its key when every key value is ours; otherwise, and when
    the key finds nothing, by the generated values that still have a column.
    Date-times compare at their column's own step (``steps``).
    """
    values = {k: v for k, v in row.values if k in table.c}
    key = dict(row.key)

    def equal(found: dict[str, Any], name: str, written: Any) -> bool:
        return same(found[name], written, timezone, steps.get(name))

    candidates = []
    usable = key and all(v is not None for v in key.values()) and all(k in table.c for k in key)
    if by_key and usable:
        candidates = [p for p in present if all(equal(p, k, v) for k, v in key.items())]
    if not candidates:
        distinctive = {k: v for k, v in values.items() if _distinctive(v, table.c[k])}
        if distinctive:
            candidates = [p for p in present if all(equal(p, k, v) for k, v in distinctive.items())]
    if not candidates:
        return None
    found = candidates[0]
    return [
        f"{name} was {_show(old)}, now {_show(found[name])}"
        for name, old in values.items()
        if not equal(found, name, old)
    ]


def _distinctive(value: Any, column: sa.Column) -> bool:
    """Whether a generated value identifies its row (it carries the counter).

    An enum label or a boolean repeats from row to row, and a foreign key
    holds its parent's key, shared by the parent's other children: none of
    them can tell a lost row from one that is still there.
    """
    if isinstance(value, bool) or isinstance(column.type, sa.Enum) or column.foreign_keys:
        return False
    return isinstance(value, str | int | float | decimal.Decimal | datetime.datetime)


def same(
    found: Any, written: Any, timezone: str = "UTC", step: datetime.timedelta | None = None
) -> bool:
    """Whether a value read back is the value written, in the column's semantics.

    Date-times are the same instant to within their column's ``step``: a
    revision that moves a column to a coarser type rounds what it holds (SQL
    Server's ``datetime`` turns .995 into .997), and that is not a changed value.
    """
    if found is None or written is None:
        return found is None and written is None
    if isinstance(written, Geometry):
        return _wkt(found) == _wkt(written.wkt)
    if isinstance(written, datetime.datetime) and isinstance(found, datetime.datetime):
        apart = abs(_instant(found, timezone) - _instant(written, timezone))
        return not apart or (step is not None and apart < step)
    if isinstance(written, bool) or isinstance(found, bool):
        return _as_bool(found) == _as_bool(written)
    if isinstance(written, float) or isinstance(found, float):
        try:
            return math.isclose(float(found), float(written), rel_tol=1e-6)
        except (TypeError, ValueError):
            return False
    if isinstance(written, int | decimal.Decimal) and isinstance(found, int | decimal.Decimal):
        return decimal.Decimal(found) == decimal.Decimal(written)
    if isinstance(written, dict | list):
        try:
            return (json.loads(found) if isinstance(found, str) else found) == written
        except ValueError:
            return False
    if isinstance(written, bytes):
        return bytes(found) == written if not isinstance(found, str) else found == written.decode()
    if isinstance(found, str) and isinstance(written, str) and len(found) != len(written):
        return found.rstrip() == written.rstrip()  # CHAR(n) pads
    if type(found) is not type(written):
        return _plain(found) == _plain(written)
    return found == written


def _instant(value: datetime.datetime, timezone: str) -> datetime.datetime:
    """Naive values are wall-clock times in the server's time zone."""
    if value.tzinfo is None:
        try:
            from zoneinfo import ZoneInfo

            value = value.replace(tzinfo=ZoneInfo(timezone))
        except (ImportError, KeyError, ValueError):
            value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def _wkt(text: Any) -> str:
    """WKT with spacing and number formatting normalised, as both sides print it.

    A multipoint's points may stand in parentheses of their own: SQL Server's
    ``STAsText()`` writes ``MULTIPOINT ((1 2), (3 4))``, PostGIS ``MULTIPOINT(1 2,3 4)``.
    """
    text = re.sub(r"\s+", " ", str(text).upper()).strip()
    text = re.sub(r"\s*([(),])\s*", r"\1", text)
    if text.startswith("MULTIPOINT"):
        text = _POINT_IN_PARENTHESES.sub(r"\1", text)
    return _NUMBER.sub(lambda m: repr(float(m.group())), text)


_POINT_IN_PARENTHESES = re.compile(r"(?<=[(,])\(([^(),]+)\)")


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:E[-+]?\d+)?")


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, str):
        return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}.get(
            value.strip().lower()
        )
    return bool(value)


def _plain(value: Any) -> str:
    text = str(value).strip()
    try:
        return str(decimal.Decimal(text).normalize())
    except decimal.InvalidOperation:
        return text


def _show(value: Any) -> str:
    return repr(value.wkt) if isinstance(value, Geometry) else repr(value)


def _type_text(type_: sa.types.TypeEngine) -> str:
    try:
        return str(type_)
    except Exception:  # noqa: BLE001 - only for a message
        return type(type_).__name__
