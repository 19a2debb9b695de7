"""PostgreSQL (with PostGIS): psycopg 3, ``pg_catalog`` and dollar quoting.

Peek 5 connects with psycopg 3 (``postgresql+psycopg://`` in peek-platform's
configuration), so the plugin's migrations run on that driver here too.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import sqlalchemy as sa

from matrix.engines.base import ConnectFailure, ContainerRecipe, Engine, ServerInfo
from matrix.engines.drivers import PostgresDriver
from matrix.engines.sqlscript import Statement, split_postgresql

_SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"
# The plugin schema as one JSON document, in one query (see Engine.schema_document).
_SCHEMA_DOCUMENT = """
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

# SQLSTATEs ("PostgreSQL Error Codes", the documentation's appendix A) and what waiting can do.
_SQLSTATES = {
    "28P01": ConnectFailure.AUTHENTICATION,  # invalid_password
    "28000": ConnectFailure.AUTHENTICATION,  # invalid_authorization_specification
    "3D000": ConnectFailure.NO_DATABASE,  # invalid_catalog_name
    "57P03": ConnectFailure.STARTING,  # cannot_connect_now: starting, recovering, stopping
    "57P01": ConnectFailure.STARTING,  # admin_shutdown: a restart in progress
}


class PostgresqlEngine(Engine):
    name = "postgresql"
    lints_with_squawk = True
    has_postgis = True
    # A server thrown away with its data: nothing it writes needs to survive a crash.
    throwaway_settings = (
        *("-c", "fsync=off"),
        *("-c", "synchronous_commit=off"),
        *("-c", "full_page_writes=off"),
    )
    postgis_available_sql = "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
    runs_natively = True
    label = "PostgreSQL"
    driver = "postgresql+psycopg"
    # The binary wheel needs no compiler or libpq headers on a CI runner.
    driver_requirement = "psycopg[binary]>=3.1"
    maintenance_database = "postgres"
    stable_constraint_names = True
    sqlglot_dialect = "postgres"
    # A Unix socket that does not exist: the connection fails before any packet.
    offline_url = "postgresql+psycopg://offline@/offline?host=/nonexistent-peek-matrix-offline"
    container = ContainerRecipe(
        user="peek",
        database="peek",
        environment={"POSTGRES_USER": "peek", "POSTGRES_DB": "peek"},
        # The offline images start from their prebuilt cluster (PostGIS in template1) for
        # this user and database; the upstream image ignores the variable. Only for a
        # target with PostGIS: one without must not find it in every new database.
        postgis_environment={"PEEK_MATRIX_CLUSTER": "prebuilt"},
        password_env="POSTGRES_PASSWORD",
        port_env="PGPORT",
        command=("postgres",),
        # The server would listen on every interface of the host otherwise.
        host_command=("postgres", "-c", "listen_addresses=127.0.0.1"),
        client_hint="docker exec -it {name} psql -U peek -d {database}",
    )

    def connect_args(self, login_timeout: float) -> dict[str, Any]:
        # No server-side prepared statements: a migration that changes a
        # column's type invalidates them ("cached plan must not change result
        # type"), and the harness repeats the same inserts at every revision.
        return {"connect_timeout": max(1, round(login_timeout)), "prepare_threshold": None}

    def classify(self, error: BaseException) -> ConnectFailure:
        """By the SQLSTATE where the error has one; by libpq's message where it has none.

        libpq reports a failure to connect as a message only, without the
        SQLSTATE the server sent (no result exists yet), so psycopg's
        ``sqlstate`` is None for a wrong password, an unknown role or database,
        a server starting up, a refused port alike (measured: psycopg 3.3.9,
        PostgreSQL 15). Those are read from the text, the only thing the
        driver gives; a server with non-English ``lc_messages`` reads as
        ``other``, which the readiness wait treats as worth waiting for.
        """
        original = getattr(error, "orig", None) or error
        state = getattr(original, "sqlstate", None)
        if state:
            return _SQLSTATES.get(state, ConnectFailure.OTHER)
        text = str(original).lower()
        if "password authentication failed" in text or "no pg_hba.conf entry" in text:
            return ConnectFailure.AUTHENTICATION
        if "role" in text and "does not exist" in text:
            return ConnectFailure.AUTHENTICATION
        if "database" in text and "does not exist" in text:
            return ConnectFailure.NO_DATABASE
        if "connection refused" in text or "no such file or directory" in text:
            return ConnectFailure.REFUSED
        if "could not translate host name" in text or "network is unreachable" in text:
            return ConnectFailure.REFUSED
        if "timeout expired" in text or "timed out" in text:
            return ConnectFailure.TIMEOUT
        if "starting up" in text or "shutting down" in text or "recovery" in text:
            return ConnectFailure.STARTING
        if "not yet accepting connections" in text:
            return ConnectFailure.STARTING
        return ConnectFailure.OTHER

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def create_database_sql(self, name: str, template: str | None = None) -> list[str]:
        suffix = f" TEMPLATE {self.quote(template)}" if template else ""
        return [f"CREATE DATABASE {self.quote(name)}{suffix}"]

    def drop_database_sql(self, name: str) -> list[str]:
        literal = name.replace("'", "''")
        return [
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{literal}' AND pid <> pg_backend_pid()",
            f"DROP DATABASE IF EXISTS {self.quote(name)}",
        ]

    def create_schema_sql(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}"

    def prepare_database_sql(self, postgis: bool) -> list[str]:
        # Peek expects its administrator to install PostGIS; plugins only use it.
        return ["CREATE EXTENSION IF NOT EXISTS postgis"] if postgis else []

    def database_settings_sql(
        self, name: str, statement_timeout_s: float, lock_timeout_s: float
    ) -> list[str]:
        """Set on the database, so the plugin's own env.py connections get them too."""
        return [
            f"ALTER DATABASE {self.quote(name)} SET statement_timeout = "
            f"{int(statement_timeout_s * 1000)}",
            f"ALTER DATABASE {self.quote(name)} SET lock_timeout = {int(lock_timeout_s * 1000)}",
        ]

    def session_settings_sql(self, statement_timeout_s: float, lock_timeout_s: float) -> list[str]:
        return [
            f"SET statement_timeout = {int(statement_timeout_s * 1000)}",
            f"SET lock_timeout = {int(lock_timeout_s * 1000)}",
        ]

    def server_info(self, conn: sa.Connection) -> ServerInfo:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        postgis = conn.execute(
            sa.text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
        ).scalar_one_or_none()
        return ServerInfo(str(version).split()[0], postgis)

    @property
    def clones_databases(self) -> bool:
        return True

    def schema_document(self, conn: sa.Connection, schema: str, leave_out: str) -> dict:
        """``pg_catalog`` in one query; PostgreSQL names an unnamed constraint after its
        table and columns (``Item_pkey``), the same on every site, so names key them."""
        raw = conn.execute(
            sa.text(_SCHEMA_DOCUMENT), {"schema": schema, "version_table": leave_out}
        ).scalar_one()
        return raw if isinstance(raw, dict) else json.loads(raw)

    @property
    def outside_schema_sql(self) -> str:
        return f"""
            SELECT n.nspname AS schema, c.relkind::text AS kind, c.relname AS name
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN {_SYSTEM_SCHEMAS}
              AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
              AND n.nspname <> :schema
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                AND d.deptype = 'e')
            UNION ALL
            SELECT n.nspname, 'type', t.typname
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname NOT IN {_SYSTEM_SCHEMAS}
              AND n.nspname <> :schema AND t.typtype IN ('e', 'd')
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                                AND d.deptype = 'e')
            UNION ALL
            SELECT n.nspname, 'function', p.proname
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname <> :schema
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                AND d.deptype = 'e')
            UNION ALL
            SELECT nspname, 'schema', nspname FROM pg_namespace
            WHERE nspname NOT IN {_SYSTEM_SCHEMAS}
              AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'
              AND nspname <> :schema
        """

    @property
    def table_identity_sql(self) -> str:
        return """
            SELECT c.relname AS name, c.oid::bigint AS identity
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
        """

    session_id_sql = "SELECT pg_backend_pid()"
    lock_order = (
        "AccessShareLock",
        "RowShareLock",
        "RowExclusiveLock",
        "ShareUpdateExclusiveLock",
        "ShareLock",
        "ShareRowExclusiveLock",
        "ExclusiveLock",
        "AccessExclusiveLock",
    )

    @property
    def locks_sql(self) -> str:
        return """
            SELECT l.relation::bigint AS relation, l.mode AS mode
            FROM pg_locks l
            WHERE l.locktype = 'relation' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.pid <> ALL(string_to_array(:sessions, ',')::int[])
        """

    @property
    def relations_sql(self) -> str:
        return """
            SELECT c.oid::bigint AS id, c.relname AS name
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :schema
        """

    @property
    def storage_sql(self) -> str | None:
        """A table's storage changes when it is rewritten (ALTER COLUMN TYPE, some defaults)."""
        return """
            SELECT c.relname AS name, c.relfilenode AS storage
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
        """

    def bulk_load(self, conn, table, columns: list[str], rows: list[tuple]) -> None:
        """COPY, as Peek's own ``pgCopyInsert`` loads bulk rows."""
        names = ", ".join(self.quote(c) for c in columns)
        target = f"{self.quote(table.schema)}.{self.quote(table.name)}"
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([getattr(value, "ewkt", value) for value in row])
        finally:
            cursor.close()

    def key_sequence_sql(self, schema: str, table: str, column: str) -> tuple[str, dict]:
        qualified = f"{self.quote(schema)}.{self.quote(table)}"
        # pg_sequences shows last_value as NULL until nextval() is called, also
        # after ALTER SEQUENCE ... RESTART WITH n: only the sequence relation
        # itself says n (with is_called false), so it is read through query_to_xml.
        return (
            "SELECT CASE WHEN v.is_called THEN v.last_value + q.seqincrement "
            "ELSE v.last_value END AS next_value, "
            f"(SELECT max({self.quote(column)}) FROM {qualified}) AS highest "
            "FROM (SELECT pg_get_serial_sequence(:table, :column) AS name) s "
            "JOIN pg_sequence q ON q.seqrelid = s.name::regclass "
            "CROSS JOIN LATERAL (SELECT "
            "(xpath('/row/last_value/text()', x))[1]::text::bigint AS last_value, "
            "(xpath('/row/is_called/text()', x))[1]::text::boolean AS is_called "
            "FROM query_to_xml('SELECT last_value, is_called FROM ' || s.name, false, true, '')"
            " AS x) v",
            {"table": qualified, "column": column},
        )

    def fingerprint_sql(
        self,
        schema: str,
        tables: list[str],
        unhashed: dict[str, list[tuple[str, str]]] | None = None,
    ) -> str:
        parts = [
            f"SELECT {i} AS n, COUNT(*) AS c, "
            f"md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h "
            f"FROM {self.quote(schema)}.{self.quote(table)} AS t"
            for i, table in enumerate(tables)
        ]
        return " UNION ALL ".join(parts)

    @property
    def list_databases_sql(self) -> str:
        return "SELECT datname AS name FROM pg_database"

    @property
    def active_statements_sql(self) -> str:
        return """
            SELECT pid AS session, state,
                   EXTRACT(EPOCH FROM clock_timestamp() - query_start)::float AS seconds,
                   wait_event_type || ':' || wait_event AS waiting, query AS statement
            FROM pg_stat_activity
            WHERE datname = :database AND pid <> pg_backend_pid() AND state <> 'idle'
            ORDER BY query_start
        """

    def geometry_as_text(self, column: sa.ColumnElement) -> sa.ColumnElement:
        return sa.func.ST_AsText(column)

    def geometry_from_text(self, wkt: str, srid: int, kind: str = "geometry") -> sa.ColumnElement:
        if kind == "geography":
            return sa.func.ST_GeogFromText(f"SRID={srid};{wkt}" if srid else wkt)
        return sa.func.ST_GeomFromText(wkt, srid)

    def server_timezone(self, conn: sa.Connection) -> str:
        return str(conn.execute(sa.text("SHOW TimeZone")).scalar_one())

    def time_resolution(self, type_: sa.types.TypeEngine) -> datetime.timedelta | None:
        """``timestamp(p)`` and ``time(p)`` keep p fractional digits, 6 when unsaid."""
        if not isinstance(type_, sa.DateTime | sa.Time):
            return None
        precision = getattr(type_, "precision", None)
        digits = 6 if precision is None else min(int(precision), 6)
        return datetime.timedelta(microseconds=10 ** (6 - digits))

    def split_script(self, sql: str) -> list[Statement]:
        return split_postgresql(sql)

    def bench_driver(self, engine: sa.Engine) -> Any:
        return PostgresDriver(engine, self)
