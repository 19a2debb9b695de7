"""The raw DBAPI driver: the yardstick the ORM figures are held against.

Each engine names its driver class (:meth:`matrix.engines.Engine.bench_driver`):
psycopg 3 (the driver Peek uses) with ``executemany`` (pipelined) and ``COPY``
for PostgreSQL, pymssql with ``executemany`` for SQL Server. The driver shares
the ORM's one connection, so both layers run on the same server backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from matrix.engines.base import Engine

BatchLoad = Callable[[sa.Table, list[str], list[tuple]], None]


class Driver(ABC):
    """The engine's DBAPI connection, used raw, and the fastest ways to load rows."""

    def __init__(self, engine: sa.Engine, database: Engine) -> None:
        self._pooled = engine.raw_connection()
        self.connection = self._pooled.driver_connection
        self.dialect = engine.dialect
        self.database = database  # the harness's engine: how values reach this driver

    def compile(self, statement: sa.Executable) -> Compiled:
        return Compiled.of(statement, self.dialect, self.database)

    def close(self) -> None:
        self._pooled.close()

    def quoted(self, table: sa.Table) -> str:
        return self.dialect.identifier_preparer.format_table(table)

    def columns(self, names: Sequence[str]) -> str:
        return ", ".join(self.dialect.identifier_preparer.quote(n) for n in names)

    @classmethod
    def statements(cls, dialect: sa.Dialect, table: sa.Table, names: list[str]) -> list[str]:
        """Every statement this driver sends for ``table``, for review without a server."""
        plain = cls.__new__(cls)
        plain.dialect = dialect
        return plain._statements(table, names)

    def _statements(self, table: sa.Table, names: list[str]) -> list[str]:
        return [self.insert_sql(table, names), self.analyze_sql(table)]

    @abstractmethod
    def insert_sql(self, table: sa.Table, names: list[str]) -> str:
        """The driver's INSERT (or COPY) of ``names`` into ``table``."""

    @abstractmethod
    def analyze_sql(self, table: sa.Table) -> str:
        """The statement refreshing the planner's statistics."""

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

    def analyze(self, table: sa.Table) -> None:
        """Refresh the planner's statistics after a load."""
        self.execute(self.analyze_sql(table))


class PostgresDriver(Driver):
    def batch_loads(self) -> dict[str, BatchLoad]:
        return {"executemany": self._executemany, "COPY": self._copy}

    def insert_sql(self, table: sa.Table, names: list[str]) -> str:
        marks = ", ".join(["%s"] * len(names))
        return f"INSERT INTO {self.quoted(table)} ({self.columns(names)}) VALUES ({marks})"

    def analyze_sql(self, table: sa.Table) -> str:
        return f"ANALYZE {self.quoted(table)}"

    def _statements(self, table: sa.Table, names: list[str]) -> list[str]:
        return [*super()._statements(table, names), self.copy_sql(table, names)]

    def copy_sql(self, table: sa.Table, names: list[str]) -> str:
        return f"COPY {self.quoted(table)} ({self.columns(names)}) FROM STDIN"

    def _executemany(self, table: sa.Table, names: list[str], rows: list[tuple]) -> None:
        # psycopg 3 sends the rows in pipeline mode: one round trip per batch.
        with closing(self.connection.cursor()) as cursor:
            cursor.executemany(self.insert_sql(table, names), rows)
        self.connection.commit()

    def _copy(self, table: sa.Table, names: list[str], rows: list[tuple]) -> None:
        # As Peek's own pgCopyInsert does: psycopg 3 escapes each value for COPY.
        with closing(self.connection.cursor()) as cursor:
            with cursor.copy(self.copy_sql(table, names)) as copy:
                for row in rows:
                    copy.write_row(row)
        self.connection.commit()


class MssqlDriver(Driver):
    def batch_loads(self) -> dict[str, BatchLoad]:
        return {"executemany": self._executemany}

    def insert_sql(self, table: sa.Table, names: list[str]) -> str:
        marks = ", ".join(["%s"] * len(names))
        return f"INSERT INTO {self.quoted(table)} ({self.columns(names)}) VALUES ({marks})"

    def analyze_sql(self, table: sa.Table) -> str:
        return f"UPDATE STATISTICS {self.quoted(table)}"

    def _executemany(self, table: sa.Table, names: list[str], rows: list[tuple]) -> None:
        sql = self.insert_sql(table, names)
        with closing(self.connection.cursor()) as cursor:
            cursor.executemany(sql, rows)
        self.connection.commit()


@dataclass(frozen=True)
class Compiled:
    """A statement compiled once for the driver: the very SQL the ORM sends."""

    sql: str
    compiled: sa.engine.Compiled
    database: Engine  # whose rule turns a value into what its driver takes

    @classmethod
    def of(cls, statement: sa.Executable, dialect: sa.Dialect, database: Engine) -> Compiled:
        compiled = statement.compile(dialect=dialect)
        return cls(str(compiled), compiled, database)

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Values as the driver takes them without SQLAlchemy's help, by the engine's rule
        (:meth:`matrix.engines.Engine.driver_value`, the one its bulk loads use)."""
        return self.compiled.construct_params(
            {k: self.database.driver_value(v) for k, v in values.items()}
        )
