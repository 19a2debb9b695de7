"""Session throughput of a plugin's storage code, beside what the driver can do.

A plugin developer wants three answers per database: how fast is my storage
code, how close is it to what the driver itself can do, and did this change
make it slower. So every operation is measured twice in the same run, on the
same server, table and kind of rows: once through SQLAlchemy ORM sessions on
the plugin's own mapped classes, once with the raw DBAPI driver (psycopg2's
``execute_values`` and ``COPY``, pymssql's ``executemany``). The ORM figure
divided by the best driver figure is the fraction of the driver's limit the
storage code reaches.

The numbers are meant to be trusted: warm-up rounds are discarded, each
figure is the median of several rounds with its spread (min, max,
coefficient of variation), ORM and driver rounds alternate so that drift hits
both alike, and only the database work is timed. Rows are generated, tables
truncated and data loaded before the clock starts; statements are counted in
the warm-up only, since counting costs time.

:func:`run_benchmark` runs in a cell's child process (:mod:`matrix.cell`) once
every check passed, so the plugin is importable and its schema is at head.
``python -m matrix bench`` runs the matrix with it and writes
``reports/benchmark.json``, the baseline comparison and ``index.html``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import io
import itertools
import json
import pkgutil
import statistics
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import WKTElement
from geoalchemy2.types import _GISType
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import URL
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.pool import StaticPool

from matrix import databases, html_report, masking, reports, synthetic
from matrix.errors import HarnessError
from matrix.plugin import Plugin
from matrix.results import RunReport

BENCHMARK_FILE = "benchmark.json"
ORM, DRIVER = "orm", "driver"


# -- settings and statistics --------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Sizes and rounds. The defaults finish one target in well under 30 s."""

    rows: int = 2000  # rows per batched insert, and rows in the tables read from
    ops: int = 200  # single operations per round: commits, key reads, settings
    queries: int = 20  # filtered queries per round
    rounds: int = 5  # measured rounds per figure
    warmup: int = 2  # rounds run first and discarded: caches, plans, autovacuum after loads

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        return cls(**{f.name: int(data[f.name]) for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float
    cv: float  # sample standard deviation over mean; 0 for a single value


def spread(values: Sequence[float]) -> Spread:
    """The median, range and coefficient of variation of ``values``."""
    if not values:
        raise ValueError("no values to summarise")
    mean = statistics.fmean(values)
    cv = statistics.stdev(values) / mean if len(values) > 1 and mean else 0.0
    return Spread(statistics.median(values), min(values), max(values), cv)


@dataclass
class Figure:
    """One throughput figure: an operation on one layer, over several rounds."""

    operation: str
    layer: str  # ORM or DRIVER
    method: str  # how the layer did it, e.g. "Session.add_all + commit", "COPY"
    unit: str
    median: float
    min: float
    max: float
    cv: float
    rounds: int
    size: int  # units of work (rows, transactions, operations) per round
    seconds: list[float] = field(default_factory=list)  # per measured round
    statements: float | None = None  # SQL statements per call, counted in the warm-up

    @classmethod
    def from_seconds(
        cls,
        operation: str,
        layer: str,
        method: str,
        unit: str,
        size: int,
        seconds: list[float],
        statements: float | None = None,
    ) -> Figure:
        """Throughput per round is ``size / seconds``; the figure summarises those."""
        stats = spread([size / s for s in seconds])
        return cls(
            operation,
            layer,
            method,
            unit,
            stats.median,
            stats.min,
            stats.max,
            stats.cv,
            len(seconds),
            size,
            [round(s, 6) for s in seconds],
            statements,
        )


# -- what the plugin offers -----------------------------------------------------


class Skipped(Exception):
    """The plugin lacks what an operation needs; the reason is reported, not faked."""


@dataclass
class MappedTable:
    """One of the plugin's mapped classes, filled with synthetic values."""

    mapper: Mapper

    @property
    def table(self) -> sa.Table:
        return self.mapper.local_table

    @property
    def key(self) -> sa.Column:
        return self.table.primary_key.columns[0]

    @property
    def geometry(self) -> sa.Column | None:
        return next((c for c in self.table.columns if isinstance(c.type, _GISType)), None)

    def rows(self, count: int, serial: Iterator[int]) -> list[dict[str, Any]]:
        """Column values of ``count`` new rows, from the synthetic generator."""
        return [synthetic.row_values(self.table, next(serial), {}) for _ in range(count)]

    def attributes(self, count: int, serial: Iterator[int]) -> list[dict[str, Any]]:
        """The same rows keyed by attribute name, ready for the mapped class's constructor."""
        prop = self.mapper.get_property_by_column
        return [
            {prop(self.table.c[k]).key: v for k, v in row.items()}
            for row in self.rows(count, serial)
        ]


@dataclass
class Storage:
    """What the benchmark found in the plugin: tables to use and ``globalSetting``."""

    plain: MappedTable | None
    spatial: MappedTable | None
    global_setting: Callable[..., Any] | None

    @classmethod
    def discover(cls, package: str, schema: str) -> Storage:
        _import_storage(package)
        modules = [
            module
            for name, module in list(sys.modules.items())
            if name == package or name.startswith(package + ".")
        ]
        tables = [MappedTable(m) for m in _plugin_mappers(modules, schema) if _fillable(m)]
        setting = next(
            (m.globalSetting for m in modules if callable(getattr(m, "globalSetting", None))),
            None,
        )
        return cls(
            _widest(t for t in tables if t.geometry is None),
            _widest(t for t in tables if t.geometry is not None),
            setting,
        )

    def describe(self) -> dict[str, str | None]:
        return {
            "table": self.plain.table.fullname if self.plain else None,
            "spatial_table": self.spatial.table.fullname if self.spatial else None,
            "global_setting": (
                f"{self.global_setting.__module__}.{self.global_setting.__name__}"
                if self.global_setting
                else None
            ),
        }


def _import_storage(package: str) -> None:
    """Import every module of ``<package>._private.storage``, Peek's storage layout.

    A mapped class joins its declarative registry only once its module is
    imported; the plugin's env.py normally did that already.
    """
    try:
        storage = importlib.import_module(f"{package}._private.storage")
    except ModuleNotFoundError:
        return
    for module in pkgutil.iter_modules(storage.__path__, storage.__name__ + "."):
        importlib.import_module(module.name)


def _plugin_mappers(modules: list[Any], schema: str) -> list[Mapper]:
    """Every mapper of the plugin's declarative registries with its table in the schema."""
    registries = {}
    for module in modules:
        for value in list(vars(module).values()):
            mapper = sa.inspect(value, raiseerr=False) if isinstance(value, type) else None
            if isinstance(mapper, Mapper):
                registries[id(mapper.registry)] = mapper.registry
    mappers = [m for r in registries.values() for m in r.mappers]
    return sorted(
        (m for m in mappers if m.local_table.schema == schema),
        key=lambda m: m.class_.__name__,
    )


def _fillable(mapper: Mapper) -> bool:
    """Whether the generic operations can fill and truncate this class's table alone.

    One integer key, no inheritance, no foreign key either way (a truncate must
    not cascade) and a synthetic value for every NOT NULL column.
    """
    table = mapper.local_table
    keys = list(table.primary_key.columns)
    referenced = any(
        fk.column.table is table
        for other in table.metadata.tables.values()
        for fk in other.foreign_keys
    )
    if (
        mapper.inherits is not None
        or mapper.polymorphic_on is not None
        or len(keys) != 1
        or not isinstance(keys[0].type, sa.Integer)
        or table.foreign_keys
        or referenced
    ):
        return False
    try:
        synthetic.row_values(table, 1, {})
    except synthetic.UnsupportedColumn:
        return False
    return True


def _widest(tables: Iterator[MappedTable]) -> MappedTable | None:
    """The table with the most columns: the most work per row."""
    return max(tables, key=lambda t: len(t.table.columns), default=None)


# -- the raw driver ---------------------------------------------------------------

BatchLoad = Callable[[sa.Table, list[str], list[tuple]], None]


class Driver(ABC):
    """The engine's DBAPI connection, used raw, and the fastest ways to load rows."""

    def __init__(self, engine: sa.Engine) -> None:
        self._pooled = engine.raw_connection()
        self.connection = self._pooled.driver_connection
        self.dialect = engine.dialect

    def close(self) -> None:
        self._pooled.close()

    def quoted(self, table: sa.Table) -> str:
        return self.dialect.identifier_preparer.format_table(table)

    def columns(self, names: Sequence[str]) -> str:
        return ", ".join(self.dialect.identifier_preparer.quote(n) for n in names)

    def execute(self, sql: str, params: Any = None) -> list[tuple]:
        """Run one statement untimed, commit, and return its rows."""
        with closing(self.connection.cursor()) as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall() if cursor.description else []
        self.connection.commit()
        return rows

    def truncate(self, table: sa.Table) -> None:
        self.execute(f"TRUNCATE TABLE {self.quoted(table)}")

    @abstractmethod
    def batch_loads(self) -> dict[str, BatchLoad]:
        """The driver's ways to insert many rows and commit, fastest last."""

    @abstractmethod
    def analyze(self, table: sa.Table) -> None:
        """Refresh the planner's statistics after a load."""


class PostgresDriver(Driver):
    def batch_loads(self) -> dict[str, BatchLoad]:
        return {"execute_values": self._execute_values, "COPY": self._copy}

    def analyze(self, table: sa.Table) -> None:
        self.execute(f"ANALYZE {self.quoted(table)}")

    def _execute_values(self, table: sa.Table, names: list[str], rows: list[tuple]) -> None:
        from psycopg2.extras import execute_values

        sql = f"INSERT INTO {self.quoted(table)} ({self.columns(names)}) VALUES %s"
        with closing(self.connection.cursor()) as cursor:
            execute_values(cursor, sql, rows, page_size=1000)  # SQLAlchemy's batch size
        self.connection.commit()

    def _copy(self, table: sa.Table, names: list[str], rows: list[tuple]) -> None:
        text = "".join("\t".join(_copy_text(v) for v in row) + "\n" for row in rows)
        sql = f"COPY {self.quoted(table)} ({self.columns(names)}) FROM STDIN"
        with closing(self.connection.cursor()) as cursor:
            cursor.copy_expert(sql, io.StringIO(text))
        self.connection.commit()


class MssqlDriver(Driver):
    def batch_loads(self) -> dict[str, BatchLoad]:
        return {"executemany": self._executemany}

    def analyze(self, table: sa.Table) -> None:
        self.execute(f"UPDATE STATISTICS {self.quoted(table)}")

    def _executemany(self, table: sa.Table, names: list[str], rows: list[tuple]) -> None:
        marks = ", ".join(["%s"] * len(names))
        sql = f"INSERT INTO {self.quoted(table)} ({self.columns(names)}) VALUES ({marks})"
        with closing(self.connection.cursor()) as cursor:
            cursor.executemany(sql, rows)
        self.connection.commit()


DRIVERS: dict[str, type[Driver]] = {"postgresql": PostgresDriver, "mssql": MssqlDriver}


def driver_value(value: Any) -> Any:
    """A synthetic value in the form the DBAPI driver takes (geometry as EWKT)."""
    if isinstance(value, WKTElement):
        return value.data if value.srid < 0 else f"SRID={value.srid};{value.data}"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _copy_text(value: Any) -> str:
    """A value in the text format of PostgreSQL's COPY."""
    value = driver_value(value)
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    text = str(value)
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(raw, escaped)
    return text


@dataclass(frozen=True)
class Compiled:
    """A statement compiled once for the driver: the very SQL the ORM sends."""

    sql: str
    compiled: sa.engine.Compiled

    @classmethod
    def of(cls, statement: sa.Executable, dialect: sa.Dialect) -> Compiled:
        compiled = statement.compile(dialect=dialect)
        return cls(str(compiled), compiled)

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        return self.compiled.construct_params({k: driver_value(v) for k, v in values.items()})


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


# -- the operations -----------------------------------------------------------------


@dataclass
class Layer:
    layer: str
    method: str
    run: Callable[[], float]  # one round; returns the seconds of database work only


@dataclass
class Operation:
    size: int  # units of work per round
    calls: int  # calls of the storage code per round: what statements are counted by
    layers: list[Layer]
    reset: Callable[[], None] = lambda: None  # untimed, before every round of every layer


def timed(work: Callable[[Any], None], prepare: Callable[[], Any] = lambda: None):
    """A round that prepares its data untimed, then times only ``work``.

    A collection before the clock starts leaves every round the same garbage
    to begin with; with the harness's own objects frozen (:func:`run_benchmark`)
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
        if self.engine.dialect.name != "postgresql":
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
        return names, [tuple(driver_value(r[n]) for n in names) for r in rows]

    def load(self, mapped: MappedTable) -> list[Any]:
        """Fill a table with ``rows`` rows through the driver; their keys, in order."""
        self.driver.truncate(mapped.table)
        load = next(iter(self.driver.batch_loads().values()))
        load(mapped.table, *self.driver_rows(mapped, self.settings.rows))
        self.driver.analyze(mapped.table)
        return self.driver.execute(
            Compiled.of(sa.select(mapped.key).order_by(mapped.key), self.driver.dialect).sql
        )


def single_inserts(ctx: Context) -> Operation:
    """A row saved on its own, committed: what a handler storing one object does."""
    mapped = ctx.plain()
    names = list(mapped.rows(1, ctx.serial)[0])
    insert = Compiled.of(
        sa.insert(mapped.table)
        .values({n: sa.bindparam(n, type_=mapped.table.c[n].type) for n in names})
        .returning(mapped.key),
        ctx.driver.dialect,
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
    select = Compiled.of(
        sa.select(mapped.mapper.class_).where(mapped.key == sa.bindparam("key")),
        ctx.driver.dialect,
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
    select = Compiled.of(statement, ctx.driver.dialect)
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


# -- measuring --------------------------------------------------------------------


def run_benchmark(plugin: Plugin, url: URL, schema: str, settings: dict[str, Any]) -> dict:
    """Measure every operation on one target; the cell reports the result as is."""
    started = time.perf_counter()
    chosen = Settings.from_dict(settings)
    storage = Storage.discover(plugin.package, schema)
    # One connection for both layers: a second server backend would land on
    # another CPU than the first, and the ratio would measure the scheduler.
    engine = sa.create_engine(databases.with_driver(url), poolclass=StaticPool)
    driver = DRIVERS[engine.dialect.name](engine)
    gc.collect()
    gc.freeze()  # the harness's and the plugin's long-lived objects: not the rounds' garbage
    try:
        context = Context(engine, driver, chosen, storage)
        operations = [measure(benchmark, context) for benchmark in BENCHMARKS]
    finally:
        gc.unfreeze()
        driver.close()
        engine.dispose()
    timed_s = sum(sum(f["seconds"]) for o in operations for f in o.get("figures", []))
    return {
        "settings": asdict(chosen),
        **storage.describe(),
        "operations": operations,
        "timed_s": round(timed_s, 3),
        "wall_s": round(time.perf_counter() - started, 3),
    }


def measure(benchmark: Benchmark, ctx: Context) -> dict[str, Any]:
    """One operation's figures, or why it was skipped or failed."""
    head = {"operation": benchmark.name, "title": benchmark.title, "unit": benchmark.unit}
    try:
        operation = benchmark.build(ctx)
        figures = _rounds(benchmark, operation, ctx)
    except Skipped as reason:
        return {**head, "skipped": str(reason)}
    except Exception as error:  # noqa: BLE001 - one operation's failure must not lose the rest
        ctx.driver.connection.rollback()
        return {**head, "error": masking.mask(f"{type(error).__name__}: {error}")}
    return {
        **head,
        "size": operation.size,
        "figures": [asdict(f) for f in figures],
        **driver_ratio(figures),
    }


def _rounds(benchmark: Benchmark, operation: Operation, ctx: Context) -> list[Figure]:
    """Warm-up then measured rounds, ORM and driver alternating within each round."""
    seconds: dict[str, list[float]] = {layer.method: [] for layer in operation.layers}
    statements = None
    for number in range(ctx.settings.warmup + ctx.settings.rounds):
        for layer in operation.layers:
            operation.reset()
            if number >= ctx.settings.warmup:
                seconds[layer.method].append(layer.run())
            elif layer.layer == ORM:
                with recorded(ctx.engine) as sent:
                    layer.run()
                statements = len(sent) / operation.calls
            else:
                layer.run()
    return [
        Figure.from_seconds(
            benchmark.name,
            layer.layer,
            layer.method,
            benchmark.unit,
            operation.size,
            seconds[layer.method],
            statements if layer.layer == ORM else None,
        )
        for layer in operation.layers
    ]


def driver_ratio(figures: list[Figure]) -> dict[str, Any]:
    """The ORM's median as a fraction of the fastest driver method's median."""
    orm = next(f for f in figures if f.layer == ORM)
    best = max((f for f in figures if f.layer == DRIVER), key=lambda f: f.median)
    return {"orm_to_driver": orm.median / best.median, "driver_limit": best.method}


# -- benchmark.json and the baseline ------------------------------------------------


def benchmark_document(report: RunReport) -> dict[str, Any]:
    """``benchmark.json``: the run's figures by target, with what served each."""
    return {
        "plugin": asdict(report.plugin),
        "git_commit": report.git_commit,
        "run_id": report.run_id,
        "started_at": report.started_at,
        "targets": {
            t.id: {
                "provider": t.provider,
                "server_version": t.server_version,
                "postgis_version": t.postgis_version,
                **t.benchmark,
            }
            for t in report.targets
            if t.benchmark
        },
    }


@dataclass
class Change:
    """One figure against the baseline's."""

    target: str
    operation: str
    layer: str
    method: str
    unit: str
    baseline: float
    current: float
    ratio: float  # current / baseline throughput: below 1 is slower
    slower: bool  # fell by more than the threshold


FigureKey = tuple[str, str, str, str]


def compare(current: dict, baseline: dict, threshold: float) -> list[Change]:
    """Every figure found in both documents, flagged when it fell by more than ``threshold``."""
    before = figures(baseline)
    changes = []
    for key, figure in figures(current).items():
        if key in before:
            old, new = before[key]["median"], figure["median"]
            changes.append(
                Change(*key, figure["unit"], old, new, new / old, new / old < 1 - threshold)
            )
    return changes


def figures(document: dict) -> dict[FigureKey, dict[str, Any]]:
    """Every figure of a ``benchmark.json`` by (target, operation, layer, method)."""
    return {
        (target, f["operation"], f["layer"], f["method"]): f
        for target, measured in document.get("targets", {}).items()
        for operation in measured.get("operations", [])
        for f in operation.get("figures", [])
    }


def load_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise HarnessError(
            f"The benchmark baseline {path} cannot be read ({error}).",
            "Pass a file written by `python -m matrix bench --save-baseline`.",
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("targets"), dict):
        raise HarnessError(
            f"{path} is not a benchmark document (no targets).",
            "Pass a file written by `python -m matrix bench --save-baseline`.",
        )
    return document


def comparison(current: dict, baseline: dict, path: Path, threshold: float) -> dict[str, Any]:
    """The comparison section of ``benchmark.json``."""
    changes = compare(current, baseline, threshold)
    return {
        "baseline": str(path),
        "baseline_run": baseline.get("run_id"),
        "baseline_commit": baseline.get("git_commit"),
        "threshold": threshold,
        "slower": sum(c.slower for c in changes),
        "changes": [asdict(c) for c in changes],
    }


# -- the command ----------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction) -> None:
    """``python -m matrix bench``: ``run``'s options, plus sizes and the baseline."""
    run = sub.choices["run"]
    parser = sub.add_parser(
        "bench",
        parents=[run],
        add_help=False,
        help="run the matrix and benchmark session throughput on every live target",
        description="Run the matrix (all of `run`'s options apply) with the session "
        "throughput benchmark on, write reports/benchmark.json and reports/index.html.",
    )
    sizes = parser.add_argument_group("benchmark sizes")
    for name, help_text in (
        ("rows", "rows per batched insert and in the tables read"),
        ("ops", "single operations per round (commits, key reads, settings)"),
        ("queries", "filtered queries per round"),
        ("rounds", "measured rounds per figure"),
        ("warmup", "discarded rounds before them"),
    ):
        sizes.add_argument(
            f"--{name}",
            type=_count(minimum=0 if name == "warmup" else 1),
            default=getattr(Settings, name),
            help=f"{help_text} (default: %(default)s)",
        )
    baseline = parser.add_argument_group("baseline")
    baseline.add_argument("--save-baseline", type=Path, metavar="FILE", help="save the figures")
    baseline.add_argument(
        "--compare", type=Path, metavar="FILE", help="flag figures slower than this baseline"
    )
    baseline.add_argument(
        "--threshold",
        type=float,
        default=0.2,
        help="flag a figure whose throughput fell by more than this fraction (default: 0.2)",
    )
    parser.add_argument(
        "--screenshot", action="store_true", help="also render reports/index.png in Chromium"
    )
    # One target at a time: cells running side by side would measure each other.
    parser.set_defaults(jobs=1, handler=functools.partial(_bench, run.get_default("handler")))


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def _bench(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run the matrix exactly as ``run`` does, benchmark on; then the benchmark's reports.

    Exit status: ``run``'s, and 1 when a figure got slower than the baseline.
    """
    baseline = load_document(args.compare) if args.compare else None
    args.benchmark = asdict(Settings(args.rows, args.ops, args.queries, args.rounds, args.warmup))
    status = run(args)
    if status not in (0, 1):
        return status
    document = benchmark_document(reports.load_report(args.reports / "compat.json"))
    if args.save_baseline:
        reports.write_atomic(args.save_baseline, json.dumps(document, indent=2) + "\n")
    if baseline is not None:
        document["comparison"] = comparison(document, baseline, args.compare, args.threshold)
    reports.write_atomic(args.reports / BENCHMARK_FILE, json.dumps(document, indent=2) + "\n")
    print_benchmark(document)
    page = html_report.write_html(args.reports, screenshot=args.screenshot)
    Console(highlight=False).print(f"benchmark: {args.reports / BENCHMARK_FILE}, {page}")
    slower = document.get("comparison", {}).get("slower", 0)
    return 1 if status or slower else 0


def print_benchmark(document: dict[str, Any]) -> None:
    """One line per target and operation: ORM, best driver, their ratio, the baseline."""
    changes = {
        (c["target"], c["operation"]): c
        for c in document.get("comparison", {}).get("changes", [])
        if c["layer"] == ORM
    }
    table = Table(title="session throughput (median of the rounds, cv in brackets)")
    for column in (
        "target",
        "operation",
        "unit",
        "ORM",
        "driver",
        "ORM/driver",
        "stmts/op",
        "vs baseline",
    ):
        table.add_column(column, overflow="fold")
    for target, measured in document["targets"].items():
        if "operations" not in measured:
            table.add_row(target, "", "", f"[yellow]{measured.get('skipped', '')}[/]")
        for operation in measured.get("operations", []):
            name = operation["operation"]
            if "figures" not in operation:
                why = operation.get("skipped") or operation.get("error", "")
                table.add_row(target, name, "", f"[yellow]{why}[/]", "", "", "", "")
                continue
            orm = next(f for f in operation["figures"] if f["layer"] == ORM)
            limit = next(
                f for f in operation["figures"] if f["method"] == operation["driver_limit"]
            )
            change = changes.get((target, name))
            table.add_row(
                target,
                name,
                operation["unit"],
                f"{orm['median']:,.0f} ({orm['cv']:.1%})",
                f"{limit['median']:,.0f} ({limit['cv']:.1%}) {limit['method']}",
                f"{operation['orm_to_driver']:.0%}",
                "-" if orm["statements"] is None else f"{orm['statements']:g}",
                _change_text(change),
            )
    Console(highlight=False, width=max(Console().width, 140)).print(table)


def _figure(operation: dict[str, Any], method: str) -> dict[str, Any]:
    return next(f for f in operation["figures"] if f["method"] == method)


def _change_text(change: dict[str, Any] | None) -> str:
    if change is None:
        return ""
    text = f"×{change['ratio']:.2f}"
    return f"[bold red]{text} slower[/]" if change["slower"] else text
