"""SQL Server: pymssql, ``sys.*`` catalogs, ``GO`` batches and method-call geometry.

No SQL Server can run where this harness is built, so every statement here
is compiled in the unit tests and read as a SQL Server DBA would; what only
a live server can prove runs in the GitLab pipeline (see the README).

What differs from PostgreSQL, in one place:

- databases are created empty (no templates) and dropped after
  ``SET SINGLE_USER WITH ROLLBACK IMMEDIATE``, which ends other sessions;
- there is no database-wide statement or lock timeout: the harness bounds
  its own sessions with ``SET LOCK_TIMEOUT`` and the check process as a whole
  with the per-check timeout;
- a spatial index and Query Store create *internal tables* (type ``IT``);
  they are the server's, never the plugin's, and are left out of the
  objects outside the schema;
- geometry is read with the ``STAsText()`` method, which SQL Server accepts
  only on a column of an aliased table (``t.[geom].STAsText()``), never on a
  schema-qualified one (``pl_x.[T].geom.STAsText()`` is a four-part name).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mssql import (
    DATETIME2,
    DATETIMEOFFSET,
    SMALLDATETIME,
    TIME,
    TIMESTAMP,
)

from matrix.engines.base import ConnectFailure, ContainerRecipe, Engine, ServerInfo
from matrix.engines.drivers import MssqlDriver
from matrix.engines.mssql_catalogue import CATALOGUE, CATALOGUE_SETS, catalogue_document
from matrix.engines.mssql_errors import error_number, reported
from matrix.engines.sqlscript import Statement, split_tsql

# sys.objects types that belong to the server, not to any plugin: internal
# tables (spatial indexes, Query Store, change tracking) and system tables.
INTERNAL_TYPES = ("IT", "S")
# Login error numbers (Microsoft's "Database engine events and errors" pages; 20003 and
# 20009 are DB-Lib's, FreeTDS's sybdb.h SYBETIME and SYBECONN) and what waiting can do.
_LOGIN_FAILURES = {
    18456: ConnectFailure.AUTHENTICATION,  # Login failed for user
    18452: ConnectFailure.AUTHENTICATION,  # the login is from an untrusted domain
    18470: ConnectFailure.AUTHENTICATION,  # the account is disabled
    18486: ConnectFailure.AUTHENTICATION,  # the account is locked out
    18487: ConnectFailure.AUTHENTICATION,  # the password has expired
    18488: ConnectFailure.AUTHENTICATION,  # the password must be changed
    4060: ConnectFailure.NO_DATABASE,  # Cannot open database requested by the login
    18401: ConnectFailure.STARTING,  # Server is in script upgrade mode (first boot, upgrades)
    17187: ConnectFailure.STARTING,  # not ready to accept new client connections
    922: ConnectFailure.STARTING,  # Database is being recovered
    20009: ConnectFailure.REFUSED,  # DB-Lib: Unable to connect, server unavailable
    20003: ConnectFailure.TIMEOUT,  # DB-Lib: server connection timed out
}
# The types whose precision is the number of fractional-second digits they keep.
_TIME_TYPES = (DATETIME2, DATETIMEOFFSET, TIME)
# SERVERPROPERTY('ProductVersion') major -> the release year the matrix names.
_RELEASES = {"15": "2019", "16": "2022", "17": "2025"}
# How server_info names a Babelfish for PostgreSQL that answered in SQL Server's place.
BABELFISH = "Babelfish"


def _spatial_kind(type_: sa.types.TypeEngine) -> str | None:
    """``geometry`` or ``geography`` for a spatial column's type (GeoAlchemy2's or a plugin's)."""
    name = type(type_).__name__.lower()
    return next((kind for kind in ("geography", "geometry") if kind in name), None)


def with_scale(column_info: dict, scale: int | None) -> None:
    """Give a reflected time column the precision ``sys.columns.scale`` says it has."""
    if scale is not None:
        column_info["type"] = type(column_info["type"])(precision=int(scale))


def result_sets(conn: sa.Connection, batch: str, names: tuple[str, ...]) -> dict[str, list[dict]]:
    """Each result set of one batch, by name in order, as rows of column -> value."""
    cursor = conn.connection.dbapi_connection.cursor()
    sets: dict[str, list[dict[str, Any]]] = {}
    try:
        cursor.execute(batch)
        for name in names:
            columns = [column[0] for column in cursor.description or ()]
            sets[name] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            cursor.nextset()
    finally:
        cursor.close()
    return sets


class MssqlEngine(Engine):
    name = "mssql"
    label = "SQL Server"
    driver = "mssql+pymssql"
    driver_requirement = "pymssql>=2.2"
    maintenance_database = "master"
    sqlglot_dialect = "tsql"
    # Port 1 of the loopback: refused at once, never another host.
    offline_url = "mssql+pymssql://offline@127.0.0.1:1/offline"
    # What `sqlcmd -I` sets: spatial and filtered indexes need QUOTED_IDENTIFIER.
    script_session_sql = ("SET QUOTED_IDENTIFIER ON", "SET ANSI_NULLS ON")
    container = ContainerRecipe(
        user="sa",
        database="master",
        # No MSSQL_PID: every image (2019, 2022, 2025) runs the Developer edition by default
        # ("Quickstart: Run SQL Server Linux container images with Docker"), and 2025's
        # edition table no longer lists "Developer" ("Configure SQL Server settings with
        # environment variables on Linux": EnterpriseDeveloper, StandardDeveloper, ...).
        environment={"ACCEPT_EULA": "Y"},
        password_env="MSSQL_SA_PASSWORD",
        port_env="MSSQL_TCP_PORT",
        host_command=None,
        # mssql-conf's network.ipaddress, "IP address for incoming connections".
        host_environment={"MSSQL_IP_ADDRESS": "127.0.0.1"},
        # The password is expanded inside the container, never shown.
        client_hint=(
            "docker exec -it {name} bash -c '/opt/mssql-tools18/bin/sqlcmd -C "
            '-S {host},{port} -U sa -d {database} -P "$MSSQL_SA_PASSWORD"\''
        ),
    )

    def connect_args(self, login_timeout: float) -> dict[str, Any]:
        return {"login_timeout": max(1, round(login_timeout))}

    def classify(self, error: BaseException) -> ConnectFailure:
        """By the error number, never the English text.

        pymssql raises ``OperationalError((number, message))`` (``args[0]``),
        the number of the most severe message of the login: the server's
        (18456, 18401, ...) or, where no server spoke, DB-Lib's own (20009
        for a refused or unreachable port), so every failure has a number.
        Text would mislead: 18401, a server in script upgrade mode on its
        first boot, reads "Login failed for user 'sa'" like a wrong password.
        """
        return _LOGIN_FAILURES.get(error_number(error), ConnectFailure.OTHER)

    def missing_permission(self, error: BaseException) -> str | None:
        """Error 300, "VIEW SERVER STATE permission was denied on object 'server'".

        Server-scoped views (``sys.dm_os_sys_info``, ``sys.dm_tran_locks``) need
        VIEW SERVER STATE up to SQL Server 2019 and VIEW SERVER PERFORMANCE STATE
        from 2022 (their "Permissions" sections); ``sys.dm_exec_requests``
        without it shows the login's own session only.
        """
        if error_number(error) != 300:
            return None
        return (
            f"{self.driver_message(getattr(error, 'orig', None) or error)}; grant it to the "
            "login: GRANT VIEW SERVER STATE TO [login] (SQL Server 2019), "
            "GRANT VIEW SERVER PERFORMANCE STATE TO [login] (2022 and later)"
        )

    def driver_message(self, error: BaseException) -> str | None:
        """The server's message (or DB-Lib's, where no server spoke) and its number.

        pymssql raises its errors with ``(number, message)`` (:mod:`.mssql_errors`), the
        message as bytes: the server's text, then DB-Lib's own lines, each
        after a ``DB-Lib error message N, severity S:`` header (``_mssql.pyx``
        ``maybe_raise_MSSQLDatabaseException``, ``err_handler``).
        """
        said = reported(error)
        if said is None:
            return None
        number, message = said
        return f"{message} (error {number})"

    def quote(self, name: str) -> str:
        return "[" + name.replace("]", "]]") + "]"

    def _literal(self, name: str) -> str:
        return "N'" + name.replace("'", "''") + "'"

    def create_database_sql(self, name: str, template: str | None = None) -> list[str]:
        return [f"CREATE DATABASE {self.quote(name)}"]

    def drop_database_sql(self, name: str) -> list[str]:
        quoted = self.quote(name)
        return [
            f"IF DB_ID({self._literal(name)}) IS NOT NULL BEGIN "
            f"ALTER DATABASE {quoted} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; "
            f"DROP DATABASE {quoted}; END"
        ]

    def create_schema_sql(self, schema: str) -> str:
        # CREATE SCHEMA must be alone in its batch; EXEC gives it one.
        create = f"CREATE SCHEMA {self.quote(schema)}"
        return f"IF SCHEMA_ID({self._literal(schema)}) IS NULL EXEC({self._literal(create)})"

    def session_settings_sql(self, statement_timeout_s: float, lock_timeout_s: float) -> list[str]:
        # 0 means "never wait" in T-SQL but "no limit" here and in PostgreSQL: -1.
        return [f"SET LOCK_TIMEOUT {int(lock_timeout_s * 1000) if lock_timeout_s else -1}"]

    # "sys.dm_os_sys_info": physical_memory_kb is "the total amount of physical memory on
    # the machine", the figure Microsoft's 2 GB minimum is about (committed_target_kb is the
    # memory manager's moving target, lowered by max server memory: no measure of the
    # machine). On Linux, memory.memorylimitmb "controls the memory visible to SQL Server"
    # (80 % of the machine's or the container's by default: "Performance best practices: SQL
    # Server memory on Linux"), and the documentation does not say whether this figure is
    # the machine's or that visible share; so a lower figure is said, never refused.
    memory_sql = "SELECT CAST(physical_memory_kb / 1024 AS INT) FROM sys.dm_os_sys_info"
    memory_figure = (
        "sys.dm_os_sys_info.physical_memory_kb; on Linux it may be only the memory SQL Server "
        "is allowed (memory.memorylimitmb, 80 % of the machine's or container's by default)"
    )
    not_ready_hint = (
        "SQL Server needs at least 2 GB of memory: a service given less exits after "
        "starting and never accepts a login; check the service's memory"
    )

    def release_of(self, server_version: str) -> str:
        """``16.0.4135.4`` is SQL Server 2022: the matrix names releases by year."""
        major = server_version.split(".")[0]
        return _RELEASES.get(major, major)

    def server_info(self, conn: sa.Connection) -> ServerInfo:
        """``ProductVersion``, or ``Babelfish <version>`` from a Babelfish for PostgreSQL.

        Babelfish reports a SQL Server ``ProductVersion`` (12.0.2000.8 by
        default, any SQL Server's with ``babelfishpg_tds.product_version``),
        so that alone would let it pass for SQL Server 2022. SQL Server
        answers NULL for a property it does not know; Babelfish answers
        ``BabelfishVersion``.
        """
        version, babelfish = conn.execute(
            sa.text(
                "SELECT CAST(SERVERPROPERTY('ProductVersion') AS VARCHAR(64)), "
                "CAST(SERVERPROPERTY('BabelfishVersion') AS VARCHAR(64))"
            )
        ).one()
        return ServerInfo(f"{BABELFISH} {babelfish}" if babelfish else str(version))

    def describe(self, info: ServerInfo) -> str:
        if info.server_version.startswith(f"{BABELFISH} "):
            return f"T-SQL over TDS on {info.server_version}, not SQL Server"
        return super().describe(info)

    def schema_document(self, conn: sa.Connection, schema: str, leave_out: str) -> dict:
        """``sys.*`` in one batch, read as its result sets (see :func:`catalogue_document`).

        ``get_check_constraints`` is not implemented in SQLAlchemy's mssql
        dialect, its reflected types lose their precision (``DATETIME2(3)``
        prints as ``DATETIME2``) and geometry reflects without its SRID, so the
        inspector cannot give this: the catalogue can.
        """
        batch = CATALOGUE.format(schema=self._literal(schema), leave_out=self._literal(leave_out))
        return catalogue_document(result_sets(conn, batch, CATALOGUE_SETS), schema)

    @property
    def outside_schema_sql(self) -> str:
        """Schema-scoped objects, and the database-scoped ones no schema holds.

        Types, XML schema collections, partition functions and schemes, and
        DDL triggers live outside ``sys.objects``' schemas or outside any
        schema at all; a schema counts whoever owns it (only the fixed ones,
        ``dbo``, ``guest``, ``sys``, ``INFORMATION_SCHEMA`` and the ``db_*`` role
        schemas, ids 16384 to 16399, are the server's).
        """
        internal = ", ".join(f"'{t}'" for t in INTERNAL_TYPES)
        return f"""
            SELECT s.name AS [schema], o.type_desc AS kind, o.name AS name
            FROM sys.objects o JOIN sys.schemas s ON s.schema_id = o.schema_id
            WHERE o.is_ms_shipped = 0 AND o.type NOT IN ({internal})
              AND s.name NOT IN ('sys', 'INFORMATION_SCHEMA') AND s.name <> :schema
            UNION ALL
            SELECT s.name, 'SCHEMA', s.name FROM sys.schemas s
            WHERE s.schema_id > 4 AND s.schema_id NOT BETWEEN 16384 AND 16399
              AND s.name <> :schema
            UNION ALL
            SELECT s.name, 'TYPE', y.name
            FROM sys.types y JOIN sys.schemas s ON s.schema_id = y.schema_id
            WHERE y.is_user_defined = 1 AND s.name <> :schema
            UNION ALL
            SELECT s.name, 'XML_SCHEMA_COLLECTION', x.name
            FROM sys.xml_schema_collections x JOIN sys.schemas s ON s.schema_id = x.schema_id
            WHERE s.name NOT IN ('sys', :schema)
            UNION ALL
            SELECT '', 'PARTITION_FUNCTION', f.name FROM sys.partition_functions f
            UNION ALL
            SELECT '', 'PARTITION_SCHEME', p.name FROM sys.partition_schemes p
            UNION ALL
            SELECT '', 'DATABASE_DDL_TRIGGER', g.name FROM sys.triggers g
            WHERE g.parent_class = 0 AND g.is_ms_shipped = 0
        """

    @property
    def table_identity_sql(self) -> str:
        return """
            SELECT t.name AS name, CAST(t.object_id AS BIGINT) AS [identity]
            FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id
            WHERE s.name = :schema
        """

    session_id_sql = "SELECT @@SPID"
    lock_order = ("Sch-S", "IS", "S", "IU", "U", "IX", "SIU", "SIX", "UIX", "X", "Sch-M")
    storage_sql = None  # no cheap trace of a rewrite; reported as unknown
    exclusive_setting_sql = (
        "SELECT CAST(is_read_committed_snapshot_on AS INT) FROM sys.databases "
        "WHERE database_id = DB_ID()"
    )

    def exclusive_modes(self, setting: Any = None) -> frozenset[str]:
        """Sch-M always; a table-level X too unless readers read row versions.

        Sch-M blocks every session, as ACCESS EXCLUSIVE does. An X lock on the
        whole table (lock escalation, past about 5,000 row locks) blocks every
        reader under READ COMMITTED with locking, the default outside Azure
        SQL Database; with READ_COMMITTED_SNAPSHOT on
        (``sys.databases.is_read_committed_snapshot_on``) readers take no S
        lock and pass it. ``setting`` unknown counts as off, the default.
        """
        return frozenset({"Sch-M"} if setting else {"Sch-M", "X"})

    def lock_assumption(self, setting: Any = None) -> str:
        """Which READ COMMITTED the table-level X locks were judged under.

        The setting is read in the harness's own new database, which takes
        ``model``'s (off unless a DBA changed it); a site's database may differ.
        """
        if setting:
            return (
                "table-level X locks judged as not blocking readers: READ_COMMITTED_SNAPSHOT "
                "is ON in the test database; on a site's database with it OFF they block reads"
            )
        return (
            "table-level X locks judged under locking READ COMMITTED (READ_COMMITTED_SNAPSHOT "
            "OFF in the test database, a new database's default); on a site's database with "
            "it ON readers read row versions and pass them"
        )

    @property
    def locks_sql(self) -> str:
        # No OBJECT_NAME() or OBJECT_SCHEMA_NAME(): they read metadata under READ
        # COMMITTED and so wait on the very Sch-M lock being sampled.
        return """
            SELECT CAST(l.resource_associated_entity_id AS BIGINT) AS relation,
                   l.request_mode AS mode
            FROM sys.dm_tran_locks l
            WHERE l.resource_type = 'OBJECT' AND l.request_status = 'GRANT'
              AND l.resource_database_id = DB_ID()
              AND l.request_session_id NOT IN (SELECT CAST(value AS INT)
                                               FROM STRING_SPLIT(:sessions, ','))
        """

    @property
    def relations_sql(self) -> str:
        return """
            SELECT CAST(o.object_id AS BIGINT) AS id, o.name AS name
            FROM sys.objects o JOIN sys.schemas s ON s.schema_id = o.schema_id
            WHERE s.name = :schema AND o.parent_object_id = 0
        """

    def bulk_statement(self, table, columns: list[str], rows: list[tuple]) -> tuple[str, list]:
        """The INSERT and its parameter rows, as pymssql must be given them.

        Geometry and geography go through their own static constructor
        (``geography::STGeomFromText`` for a geography column), with the WKT and
        the SRID as two parameters: STGeomFromText takes no EWKT, and
        GeoAlchemy2's CHECK constraints refuse SRID 0 for a 4326 column; every
        other value goes as :meth:`driver_value` gives it.
        """
        spatial = {c.name: kind for c in table.columns if (kind := _spatial_kind(c.type))}
        marks = ", ".join(
            f"{spatial[name]}::STGeomFromText(%s, %s)" if name in spatial else "%s"
            for name in columns
        )
        names = ", ".join(self.quote(c) for c in columns)
        target = f"{self.quote(table.schema)}.{self.quote(table.name)}"
        flat = []
        for row in rows:
            values: list = []
            for name, value in zip(columns, row, strict=True):
                if name in spatial:
                    values += [getattr(value, "wkt", None), getattr(value, "srid", None)]
                else:
                    values.append(self.driver_value(value))
            flat.append(tuple(values))
        return f"INSERT INTO {target} ({names}) VALUES ({marks})", flat

    def driver_value(self, value: Any) -> Any:
        """Bytes as a ``bytearray``, which pymssql sends as ``0x...``.

        Plain ASCII ``bytes`` pymssql sends as a varchar literal (``'r5'``,
        ``_mssql.pyx`` ``_quote_simple_value``), which a VARBINARY column refuses:
        error 257, implicit conversion from varchar to varbinary not allowed.
        """
        if isinstance(value, bytes):
            return bytearray(value)
        return super().driver_value(value)

    def bulk_load(self, conn, table, columns: list[str], rows: list[tuple]) -> None:
        """Batched ``executemany`` of :meth:`bulk_statement`."""
        sql, rows = self.bulk_statement(table, columns, rows)
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        try:
            for start in range(0, len(rows), 1000):
                cursor.executemany(sql, rows[start : start + 1000])
            raw.commit()
        finally:
            cursor.close()

    def key_sequence_sql(self, schema: str, table: str, column: str) -> tuple[str, dict]:
        qualified = f"{self.quote(schema)}.{self.quote(table)}"
        return (
            "SELECT CAST(IDENT_CURRENT(:table) + IDENT_INCR(:table) AS BIGINT) AS next_value, "
            f"(SELECT MAX({self.quote(column)}) FROM {qualified}) AS highest",
            {"table": qualified},
        )

    # BINARY_CHECKSUM(*) skips "noncomparable" types: text, ntext, image, xml and CLR types
    # such as geometry and geography ("BINARY_CHECKSUM (Transact-SQL)").
    unhashed_columns_sql = """
        SELECT t.name AS [table], c.name AS [column], y.name AS [type]
        FROM sys.tables t
        JOIN sys.columns c ON c.object_id = t.object_id
        JOIN sys.types y ON y.user_type_id = c.user_type_id
        WHERE t.schema_id = SCHEMA_ID(:schema)
          AND y.name IN ('geometry', 'geography', 'text', 'ntext', 'image', 'xml')
    """

    def fingerprint_sql(
        self,
        schema: str,
        tables: list[str],
        unhashed: dict[str, list[tuple[str, str]]] | None = None,
    ) -> str:
        """``CHECKSUM_AGG(BINARY_CHECKSUM(*))``, and the skipped columns hashed on their own.

        A geometry is hashed as its ``STAsBinary()``, the others as their text
        or bytes (``HASHBYTES`` takes any length since SQL Server 2016).
        """
        parts = []
        for i, table in enumerate(tables):
            hashed = [
                f"HASHBYTES('SHA2_256', {self._hashable(column, kind)})"
                for column, kind in (unhashed or {}).get(table, [])
            ]
            extra = (
                " + ':' + CAST(CHECKSUM_AGG(BINARY_CHECKSUM("
                + ", ".join(hashed)
                + ")) AS VARCHAR(20))"
                if hashed
                else ""
            )
            parts.append(
                f"SELECT {i} AS n, COUNT_BIG(*) AS c, "
                f"CAST(CHECKSUM_AGG(BINARY_CHECKSUM(*)) AS VARCHAR(20)){extra} AS h "
                f"FROM {self.quote(schema)}.{self.quote(table)} AS t"
            )
        return " UNION ALL ".join(parts)

    def _hashable(self, column: str, kind: str) -> str:
        quoted = f"t.{self.quote(column)}"
        if kind in ("geometry", "geography"):
            return f"{quoted}.STAsBinary()"
        if kind == "image":
            return f"CAST({quoted} AS VARBINARY(MAX))"
        return f"CAST({quoted} AS NVARCHAR(MAX))"

    @property
    def list_databases_sql(self) -> str:
        return "SELECT name FROM sys.databases"

    @property
    def active_statements_sql(self) -> str:
        return """
            SELECT r.session_id AS session, r.status AS state,
                   r.total_elapsed_time / 1000.0 AS seconds, r.wait_type AS waiting,
                   t.text AS statement
            FROM sys.dm_exec_requests r CROSS APPLY sys.dm_exec_sql_text(r.sql_handle) t
            WHERE r.database_id = DB_ID(:database) AND r.session_id <> @@SPID
            ORDER BY r.start_time
        """

    def geometry_as_text(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """``alias.[column].STAsText()``: the method call on an aliased table's column.

        The column must come from an alias (``table.alias("t")``): SQL Server
        rejects a method call on a schema-qualified column.
        """
        table = getattr(column, "table", None)
        if not isinstance(table, sa.sql.Alias):
            raise ValueError(
                "SQL Server reads geometry with a method call, which needs the "
                "column of an aliased table"
            )
        return sa.literal_column(
            f"{self.quote(table.name)}.{self.quote(column.name)}.STAsText()", sa.UnicodeText
        )

    def geometry_from_text(self, wkt: str, srid: int, kind: str = "geometry") -> sa.ColumnElement:
        """``geometry::STGeomFromText(N'...', srid)`` (or ``geography::``), inlined.

        The WKT is the harness's own (numbers and keywords only), so inlining
        it is safe; a bound parameter cannot sit in a static method call.
        """
        if not re.fullmatch(r"[A-Z() ,.0-9-]+", wkt) or kind not in ("geometry", "geography"):
            raise ValueError(f"not a generated {kind}: {wkt!r}")
        return sa.literal_column(f"{kind}::STGeomFromText(N'{wkt}', {int(srid)})")

    # pymssql without use_datetime2 sends a datetime as HH:MM:SS.mmm (_mssql.pyx,
    # _quote_simple_value): milliseconds, whatever the column holds.
    driver_time_step = datetime.timedelta(milliseconds=1)
    # OUTPUT inserted.id without INTO is refused on a table with an enabled trigger (error 334);
    # SQLAlchemy then reads the new key with SCOPE_IDENTITY() instead.
    returning_with_triggers = False

    def time_resolution(self, type_: sa.types.TypeEngine) -> datetime.timedelta | None:
        """The steps of "Date and time types (Transact-SQL)".

        ``datetime`` rounds to 1/300 s (.000, .003, .007), ``smalldatetime`` to
        the minute, ``datetime2(n)``, ``datetimeoffset(n)`` and ``time(n)`` keep n
        digits (7 when unsaid, of which Python keeps 6).
        """
        if isinstance(type_, SMALLDATETIME):
            return datetime.timedelta(minutes=1)
        if isinstance(type_, DATETIME2 | DATETIMEOFFSET | sa.Time):
            precision = getattr(type_, "precision", None)
            digits = 7 if precision is None else int(precision)
            return datetime.timedelta(microseconds=10 ** (6 - min(digits, 6)))
        if isinstance(type_, sa.DateTime):
            return datetime.timedelta(seconds=1 / 300)
        return None

    def server_generated(self, type_: sa.types.TypeEngine) -> bool:
        """``rowversion`` (``timestamp``): the server writes it on every insert and update.

        "rowversion (Transact-SQL)": a table has at most one, it cannot be
        inserted into explicitly, and it is NOT NULL without a default.
        """
        return isinstance(type_, TIMESTAMP)

    # The fractional-second digits of a time column ("sys.columns": scale).
    _time_scale_sql = (
        "SELECT CAST(c.scale AS INT) FROM sys.columns c "
        "WHERE c.object_id = OBJECT_ID(:table) AND c.name = :column"
    )

    def column_reflect(self, inspector: Any, table: sa.Table, column_info: dict) -> None:
        """A ``datetime2``, ``datetimeoffset`` or ``time`` column gets its catalogue precision.

        SQLAlchemy's mssql reflection (``_parse_column_info``) reads
        ``sys.columns.scale`` but passes it to numeric types only, so a
        ``datetime2(0)`` reflects as ``DATETIME2()`` and would be taken for
        seven digits while the column rounds to the second.
        """
        type_ = column_info["type"]
        if not isinstance(type_, _TIME_TYPES) or type_.precision is not None:
            return
        qualified = f"{self.quote(table.schema)}.{self.quote(table.name)}"
        scale = inspector.bind.execute(
            sa.text(self._time_scale_sql), {"table": qualified, "column": column_info["name"]}
        ).scalar()
        with_scale(column_info, scale)

    def split_script(self, sql: str) -> list[Statement]:
        return split_tsql(sql)

    def bench_driver(self, engine: sa.Engine) -> Any:
        return MssqlDriver(engine, self)
