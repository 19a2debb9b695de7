"""Rows written earlier, looked for again: which are gone or changed, and who is to blame.

The ledger of :mod:`matrix.check.synthetic` says what was written at which
revision; :func:`verify` reads every table back and compares in each
column's own semantics (instants in the server's zone, floats within their
precision, geometry as normalised WKT). A row found neither by key nor by
its distinctive values is lost; one found with other values is changed.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from matrix.check.column_values import Geometry, is_geometry
from matrix.check.synthetic import Ledger, WrittenRow, generated_key, reflect
from matrix.engines import Engine


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
            if not generated_key(table, column) and column.identity is None:
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
        if is_geometry(c.type)
        else alias.c[c.name]
        for c in table.columns
    ]
    return sa.select(*columns)


def _read(conn: sa.Connection, engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(read_statement(engine, table)).mappings()]


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
