"""The eight operations, each done by the plugin's ORM code and by the raw driver.

An operation is built once per target (its statements compiled, its tables
loaded) into layers, each of which runs one round and returns the seconds of
database work only: rows are generated and tables emptied before the clock
starts. The driver layer does the same work the ORM layer does, on the same
table and connection, in the fastest way the driver offers.
"""

from __future__ import annotations

import gc
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from matrix.bench.discovery import MappedTable, Storage
from matrix.engines.drivers import BatchLoad, Driver
from matrix.results.benchmark import DRIVER, ORM, Settings


class Skipped(Exception):
    """The plugin lacks what an operation needs; the reason is reported, not faked."""


@contextmanager
def recorded(engine: sa.Engine) -> Iterator[list[tuple[str, Any, bool]]]:
    """The statements the engine sends while inside, with parameters."""
    sent: list[tuple[str, Any, bool]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append((statement, parameters, executemany))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@dataclass
class Layer:
    """One way to do an operation: the ORM's, or one of the driver's."""

    layer: str
    method: str
    run: Callable[[], float]  # one round; returns the seconds of database work only


@dataclass
class Operation:
    """An operation built for one target: its layers, and how much work a round is."""

    size: int  # units of work per round
    calls: int  # calls of the storage code per round: what statements are counted by
    layers: list[Layer]
    reset: Callable[[], None] = lambda: None  # untimed, before every round of every layer


def timed(
    work: Callable[[Any], None], prepare: Callable[[], Any] = lambda: None
) -> Callable[[], float]:
    """A round that prepares its data untimed, then times only ``work``.

    A collection before the clock starts leaves every round the same garbage
    to begin with; with the harness's own objects frozen
    (:func:`matrix.bench.measure.run_benchmark`)
    a collection inside the round costs what the operation allocated.
    """

    def run() -> float:
        data = prepare()
        gc.collect()
        started = time.perf_counter()
        work(data)
        return time.perf_counter() - started

    return run


@dataclass
class Context:
    """What every operation of one target shares."""

    engine: sa.Engine
    driver: Driver
    settings: Settings
    storage: Storage
    serial: Iterator[int] = field(default_factory=lambda: itertools.count(1_000_000))

    def plain(self) -> MappedTable:
        if self.storage.plain is None:
            raise Skipped("no mapped table with one integer key and no foreign keys")
        return self.storage.plain

    def spatial(self) -> MappedTable:
        if not self.driver.database.has_postgis:
            raise Skipped("spatial operations are measured on PostGIS only")
        if self.storage.spatial is None:
            raise Skipped("no mapped table with a geometry column")
        return self.storage.spatial

    def global_setting(self) -> Callable[..., Any]:
        if self.storage.global_setting is None:
            raise Skipped("the plugin has no globalSetting function")
        return self.storage.global_setting

    def session(self) -> Session:
        return Session(self.engine)

    def driver_rows(self, mapped: MappedTable, count: int) -> tuple[list[str], list[tuple]]:
        rows = mapped.rows(count, self.serial)
        names = list(rows[0])
        value = self.driver.database.driver_value
        return names, [tuple(value(r[n]) for n in names) for r in rows]

    def load(self, mapped: MappedTable) -> list[Any]:
        """Fill a table with ``rows`` rows through the driver; their keys, in order."""
        self.driver.truncate(mapped.table)
        load = next(iter(self.driver.batch_loads().values()))
        load(mapped.table, *self.driver_rows(mapped, self.settings.rows))
        self.driver.analyze(mapped.table)
        return self.driver.execute(
            self.driver.compile(sa.select(mapped.key).order_by(mapped.key)).sql
        )


def single_inserts(ctx: Context) -> Operation:
    """A row saved on its own, committed: what a handler storing one object does."""
    mapped = ctx.plain()
    names = list(mapped.rows(1, ctx.serial)[0])
    insert = ctx.driver.compile(
        sa.insert(mapped.table)
        .values({n: sa.bindparam(n, type_=mapped.table.c[n].type) for n in names})
        .returning(mapped.key)
    )
    size = ctx.settings.ops

    def orm(rows: list[dict[str, Any]]) -> None:
        with ctx.session() as session:
            for row in rows:
                session.add(mapped.mapper.class_(**row))
                session.commit()

    def driver(params: list[dict[str, Any]]) -> None:
        connection = ctx.driver.connection
        with closing(connection.cursor()) as cursor:
            for values in params:
                cursor.execute(insert.sql, values)
                cursor.fetchone()
                connection.commit()

    return Operation(
        size,
        size,
        [
            Layer(
                ORM,
                "Session.add + commit",
                timed(orm, lambda: mapped.attributes(size, ctx.serial)),
            ),
            Layer(
                DRIVER,
                "execute + commit",
                timed(driver, lambda: [insert.params(r) for r in mapped.rows(size, ctx.serial)]),
            ),
        ],
        reset=lambda: ctx.driver.truncate(mapped.table),
    )


def batch_inserts(ctx: Context, mapped: MappedTable) -> Operation:
    """Many rows in one session and one commit: an import, a bulk update."""
    size = ctx.settings.rows

    def orm(rows: list[dict[str, Any]]) -> None:
        with ctx.session() as session:
            session.add_all([mapped.mapper.class_(**r) for r in rows])
            session.commit()

    def driver(method: str, load: BatchLoad) -> Layer:
        return Layer(
            DRIVER,
            method,
            timed(lambda data: load(mapped.table, *data), lambda: ctx.driver_rows(mapped, size)),
        )

    return Operation(
        size,
        1,
        [
            Layer(
                ORM,
                "Session.add_all + commit",
                timed(orm, lambda: mapped.attributes(size, ctx.serial)),
            ),
            *(driver(method, load) for method, load in ctx.driver.batch_loads().items()),
        ],
        reset=lambda: ctx.driver.truncate(mapped.table),
    )


def key_reads(ctx: Context) -> Operation:
    """Objects read one by one by primary key, each a round trip."""
    mapped = ctx.plain()
    keys = [row[0] for row in ctx.load(mapped)]
    keys = keys[:: max(1, len(keys) // ctx.settings.ops)][: ctx.settings.ops]  # distinct
    select = ctx.driver.compile(
        sa.select(mapped.mapper.class_).where(mapped.key == sa.bindparam("key"))
    )

    def orm(_: None) -> None:
        with ctx.session() as session:
            for key in keys:
                session.get(mapped.mapper.class_, key)

    def driver(params: list[dict[str, Any]]) -> None:
        connection = ctx.driver.connection
        with closing(connection.cursor()) as cursor:
            for values in params:
                cursor.execute(select.sql, values)
                cursor.fetchone()
        connection.rollback()

    return Operation(
        len(keys),
        len(keys),
        [
            Layer(ORM, "Session.get", timed(orm)),
            Layer(
                DRIVER,
                "execute + fetchone",
                timed(driver, lambda: [select.params({"key": k}) for k in keys]),
            ),
        ],
    )


def queries(
    ctx: Context, mapped: MappedTable, where: sa.ColumnElement, values: dict[str, Any]
) -> Operation:
    """The same query, many rows each, by a new session each time, and by the driver."""
    statement = sa.select(mapped.mapper.class_).where(where)
    select = ctx.driver.compile(statement)
    params = select.params(values)
    matched = len(ctx.driver.execute(select.sql, params))
    if not matched:
        raise Skipped("the query matched no rows")
    count = ctx.settings.queries

    def orm(_: None) -> None:
        for _ in range(count):
            with ctx.session() as session:
                session.scalars(statement, values).all()

    def driver(_: None) -> None:
        connection = ctx.driver.connection
        for _ in range(count):
            with closing(connection.cursor()) as cursor:
                cursor.execute(select.sql, params)
                cursor.fetchall()
            connection.rollback()

    return Operation(
        count * matched,
        count,
        [
            Layer(ORM, "Session.scalars(select).all", timed(orm)),
            Layer(DRIVER, "execute + fetchall", timed(driver)),
        ],
    )


def filtered_query(ctx: Context) -> Operation:
    """A range of keys covering half the table."""
    mapped = ctx.plain()
    keys = [row[0] for row in ctx.load(mapped)]
    low, high = (sa.bindparam(n, type_=mapped.key.type) for n in ("low", "high"))
    bounds = {"low": keys[len(keys) // 4], "high": keys[3 * len(keys) // 4]}
    return queries(ctx, mapped, mapped.key.between(low, high), bounds)


def spatial_query(ctx: Context) -> Operation:
    """``ST_DWithin`` around the middle row, a twentieth of the extent wide."""
    mapped = ctx.spatial()
    keys = [row[0] for row in ctx.load(mapped)]
    quote = ctx.driver.dialect.identifier_preparer.quote
    geometry, key = quote(mapped.geometry.name), quote(mapped.key.name)
    source = ctx.driver.quoted(mapped.table)
    [(center,)] = ctx.driver.execute(
        f"SELECT ST_AsEWKT({geometry}) FROM {source} WHERE {key} = %(key)s",
        {"key": keys[len(keys) // 2]},
    )
    [(distance,)] = ctx.driver.execute(
        f"SELECT (ST_XMax(e) - ST_XMin(e) + ST_YMax(e) - ST_YMin(e)) / 20 "
        f"FROM (SELECT ST_Extent({geometry}) AS e FROM {source}) AS extent"
    )
    column = mapped.mapper.get_property_by_column(mapped.geometry).class_attribute
    near = sa.func.ST_DWithin(
        column,
        sa.func.ST_GeomFromEWKT(sa.bindparam("center", type_=sa.String)),
        sa.bindparam("distance", type_=sa.Float),
    )
    return queries(ctx, mapped, near, {"center": center, "distance": float(distance or 1)})


def setting_calls(
    ctx: Context, call: Callable[[Session], Any], commit: bool, method: str
) -> Operation:
    """``globalSetting`` in a new session per call, and its statements replayed raw.

    The driver layer sends exactly the statements one ORM call sent (recorded
    untimed), so the ratio is the ORM's own cost; ``statements`` on the ORM
    figure shows how many round trips the plugin's code needs per call.
    """
    with ctx.session() as session:  # Peek's server creates the rows at first start
        ctx.global_setting()(session)
        session.commit()
    with recorded(ctx.engine) as sent, ctx.session() as session:
        call(session)
        if commit:
            session.commit()
    size = ctx.settings.ops

    def orm(_: None) -> None:
        for _ in range(size):
            with ctx.session() as session:
                call(session)
                if commit:
                    session.commit()

    def driver(_: None) -> None:
        connection = ctx.driver.connection
        for _ in range(size):
            with closing(connection.cursor()) as cursor:
                for sql, params, many in sent:
                    (cursor.executemany if many else cursor.execute)(sql, params)
                    if cursor.description:
                        cursor.fetchall()
            connection.commit() if commit else connection.rollback()

    return Operation(
        size,
        size,
        [
            Layer(ORM, method, timed(orm)),
            Layer(DRIVER, "the same statements, replayed", timed(driver)),
        ],
    )


def setting_reads(ctx: Context) -> Operation:
    function = ctx.global_setting()
    return setting_calls(ctx, function, commit=False, method="globalSetting(session)")


def setting_writes(ctx: Context) -> Operation:
    """Write an integer (or text) property, a new value each time, and commit."""
    function = ctx.global_setting()
    with ctx.session() as session:
        current = function(session)
    if not isinstance(current, dict):
        raise Skipped("globalSetting(session) does not return a {name: value} dict")
    name, kind = next(
        ((n, type(v)) for n, v in current.items() if type(v) in (int, str)), (None, None)
    )
    if name is None:
        raise Skipped("globalSetting has no integer or text property to write")
    key = _property_key(sys.modules[function.__module__], name)

    def call(session: Session) -> None:
        serial = next(ctx.serial)
        function(session, key=key, value=serial if kind is int else f"v{serial}")

    return setting_calls(ctx, call, commit=True, method="globalSetting(session, key, value)")


def _property_key(module: Any, name: str) -> Any:
    """The module's PropertyKey object named ``name``, or the name itself."""
    for value in vars(module).values():
        if isinstance(getattr(value, "name", None), str) and value.name == name:
            return value
    return name


@dataclass(frozen=True)
class Benchmark:
    """An operation as the reports name it, and how to build it for a target."""

    name: str
    title: str
    unit: str
    build: Callable[[Context], Operation]


BENCHMARKS = [
    Benchmark("insert_commit", "Insert one row, commit each", "tx/s", single_inserts),
    Benchmark(
        "insert_batch",
        "Insert many rows, one commit",
        "rows/s",
        lambda ctx: batch_inserts(ctx, ctx.plain()),
    ),
    Benchmark("read_pk", "Read by primary key", "ops/s", key_reads),
    Benchmark("query_many", "Filtered query, many rows", "rows/s", filtered_query),
    Benchmark("setting_read", "globalSetting read", "ops/s", setting_reads),
    Benchmark("setting_write", "globalSetting write + commit", "ops/s", setting_writes),
    Benchmark(
        "spatial_insert",
        "Spatial insert, one commit",
        "rows/s",
        lambda ctx: batch_inserts(ctx, ctx.spatial()),
    ),
    Benchmark("spatial_query", "Spatial query (ST_DWithin)", "rows/s", spatial_query),
]
