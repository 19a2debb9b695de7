"""Synthetic rows for any plugin's tables, generated from reflected types.

``data_survives`` needs data in every table at every revision, for plugins
the harness has never seen, without fixtures. Values come from each column's
reflected type; foreign keys take a key of a row already written to the
parent table, so tables are filled parent first.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from matrix.snapshot import VERSION_TABLE

try:  # PostGIS columns reflect as geoalchemy2 types only once it is imported
    import geoalchemy2
except ImportError:  # pragma: no cover - geoalchemy2 is a harness dependency
    geoalchemy2 = None

ROWS_PER_TABLE = 3
_WKT = {
    "POINT": "POINT({0} {0})",
    "LINESTRING": "LINESTRING({0} {0}, {1} {1})",
    "POLYGON": "POLYGON(({0} {0}, {1} {0}, {1} {1}, {0} {0}))",
}


@dataclass(frozen=True)
class WrittenRow:
    """A row the harness wrote, found again later by its primary key."""

    table: str
    revision: str
    key: tuple[tuple[str, Any], ...]
    values: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        key = ", ".join(f"{k}={v!r}" for k, v in self.key)
        return f"{self.table}({key}) written at revision {self.revision}"


class UnsupportedColumn(Exception):
    """A NOT NULL column whose type the generator cannot fill."""


def reflect(conn: sa.Connection, schema: str) -> sa.MetaData:
    metadata = sa.MetaData(schema=schema)
    metadata.reflect(conn, schema=schema)
    return metadata


def write_rows(conn: sa.Connection, schema: str, revision: str) -> list[WrittenRow]:
    """Insert ``ROWS_PER_TABLE`` rows into every table of the schema."""
    metadata = reflect(conn, schema)
    counter = itertools.count(_seed(conn, metadata))
    keys_by_table: dict[str, list[dict[str, Any]]] = {}
    written: list[WrittenRow] = []
    for table in metadata.sorted_tables:
        if table.name == VERSION_TABLE:
            continue
        for _ in range(ROWS_PER_TABLE):
            values = row_values(table, next(counter), keys_by_table)
            result = conn.execute(table.insert().values(values))
            key = dict(
                zip(
                    [c.name for c in table.primary_key],
                    result.inserted_primary_key or (),
                    strict=False,
                )
            )
            keys_by_table.setdefault(table.fullname, []).append(key | values)
            written.append(
                WrittenRow(
                    table=table.name,
                    revision=revision,
                    key=tuple(sorted(key.items())),
                    values=tuple(sorted((k, _comparable(v)) for k, v in values.items())),
                )
            )
    return written


def missing_rows(conn: sa.Connection, schema: str, rows: list[WrittenRow]) -> list[str]:
    """Describe every written row that is gone or changed now."""
    metadata = reflect(conn, schema)
    problems = []
    for row in rows:
        table = metadata.tables.get(f"{schema}.{row.table}")
        if table is None:
            problems.append(f"{row.describe()}: table {row.table} is gone")
            continue
        if not row.key:
            continue  # without a primary key a row cannot be found again
        where = [table.c[k] == v for k, v in row.key if k in table.c]
        found = conn.execute(sa.select(table).where(*where)).mappings().first()
        if found is None:
            problems.append(f"{row.describe()}: missing")
            continue
        changed = [
            f"{name} was {old!r}, now {_comparable(found[name])!r}"
            for name, old in row.values
            if name in found and old is not None and _comparable(found[name]) != old
        ]
        if changed:
            problems.append(f"{row.describe()}: {'; '.join(changed)}")
    return problems


def _seed(conn: sa.Connection, metadata: sa.MetaData) -> int:
    """A start for generated values above any integer key already present."""
    highest = 0
    for table in metadata.sorted_tables:
        for column in table.primary_key:
            if isinstance(column.type, sa.Integer):
                value = conn.execute(sa.select(sa.func.max(column))).scalar()
                highest = max(highest, value or 0)
    return highest + 1000


def row_values(
    table: sa.Table, n: int, keys_by_table: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in table.columns:
        if (
            column.primary_key
            and column.autoincrement in (True, "auto")
            and isinstance(column.type, sa.Integer)
            and len(table.primary_key) == 1
        ):
            continue
        foreign = next(iter(column.foreign_keys), None)
        if foreign is not None:
            parent = keys_by_table.get(foreign.column.table.fullname)
            if parent:
                values[column.name] = parent[n % len(parent)][foreign.column.name]
                continue
            if column.nullable:
                continue
        if column.computed is not None:
            continue
        value = _value_for(column, n)
        if value is None and not column.nullable:
            raise UnsupportedColumn(
                f"cannot generate a value for NOT NULL column {table.name}.{column.name} "
                f"of type {column.type!r}"
            )
        if value is not None:
            values[column.name] = value
    return values


def _value_for(column: sa.Column, n: int) -> Any:
    type_ = column.type
    if geoalchemy2 is not None and isinstance(type_, geoalchemy2.types._GISType):
        kind = (type_.geometry_type or "POINT").upper()
        wkt = _WKT.get(kind, _WKT["POINT"]).format(n % 90, n % 90 + 1)
        srid = type_.srid if type_.srid and type_.srid > 0 else -1
        return geoalchemy2.WKTElement(wkt, srid=srid)
    if isinstance(type_, sa.Boolean):
        return n % 2 == 0
    if isinstance(type_, sa.Enum):
        return type_.enums[n % len(type_.enums)] if type_.enums else None
    if isinstance(type_, sa.Integer):
        return n % 32000 if isinstance(type_, sa.SmallInteger) else n
    if isinstance(type_, sa.Numeric):
        return decimal.Decimal(n) + decimal.Decimal("0.5") if type_.asdecimal else n + 0.5
    if isinstance(type_, sa.String):
        text = f"m{n}"
        return text[: type_.length] if type_.length else text
    if isinstance(type_, sa.DateTime):
        return datetime.datetime(2020, 1, 1) + datetime.timedelta(minutes=n)
    if isinstance(type_, sa.Date):
        return datetime.date(2020, 1, 1) + datetime.timedelta(days=n % 3000)
    if isinstance(type_, sa.Time):
        return datetime.time(n % 24, n % 60)
    if isinstance(type_, sa.Interval):
        return datetime.timedelta(seconds=n)
    if isinstance(type_, sa.LargeBinary):
        return f"m{n}".encode()
    if isinstance(type_, sa.Uuid):
        return uuid.UUID(int=n)
    if isinstance(type_, sa.JSON):
        return {"n": n}
    return None


def _comparable(value: Any) -> str | None:
    """A form of a value that survives a round trip through any driver."""
    if value is None:
        return None
    if geoalchemy2 is not None and isinstance(value, geoalchemy2.elements._SpatialElement):
        return None  # geometry equality is the database's business, not text's
    if isinstance(value, float | decimal.Decimal):
        return f"{float(value):.6g}"
    return str(value)
