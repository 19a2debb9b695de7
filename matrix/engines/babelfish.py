"""Babelfish for PostgreSQL: T-SQL over TDS from a PostgreSQL, never SQL Server.

No SQL Server can run where this harness is built; Babelfish can (see
``docs/babelfish.md`` for what was built and how it behaves). It accepts
pymssql logins, Alembic's mssql DDL and ``GO`` batches, and emulates much of
SQL Server's catalogue, so the SQL Server path runs live on it: the checks
send :class:`MssqlEngine`'s statements, except those Babelfish cannot answer
(the schema's catalogue, the objects outside it, a table's identity, a
database's drop; each says why), and the plugin's migrations
go through the mssql dialect, less the probes and catalogue reads Babelfish
cannot answer (:class:`BabelfishDialect`). This module says what the server
is: its name in every report, how its image is started, and that a server
is one only when it calls itself Babelfish. Where Babelfish behaves
otherwise than SQL Server, ``docs/babelfish.md`` decides which of the two is
wrong; nothing of Babelfish's own behaviour is built into the SQL Server path.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.dialects.mssql.pymssql import MSDialect_pymssql

from matrix.engines.babelfish_catalogue import CATALOGUE, CATALOGUE_SETS, babelfish_sets
from matrix.engines.base import ContainerRecipe, ServerInfo
from matrix.engines.mssql import BABELFISH, MssqlEngine, result_sets
from matrix.engines.mssql_catalogue import catalogue_document

# Primary keys by constraint name: Babelfish's sys.key_constraints.unique_index_id
# is the PostgreSQL index's oid, not the sys.indexes.index_id the dialect joins on.
_PRIMARY_KEYS = """
    SELECT t.name AS table_name, k.name AS name, c.name AS column_name, i.type AS index_type
    FROM sys.key_constraints k
    JOIN sys.tables t ON t.object_id = k.parent_object_id
    JOIN sys.schemas s ON s.schema_id = t.schema_id
    JOIN sys.indexes i ON i.object_id = k.parent_object_id AND i.name = k.name
    JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
    JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
    WHERE s.name = :owner AND k.type = 'PK'
    ORDER BY t.name, ic.key_ordinal
"""
# Foreign keys from sys.foreign_keys: Babelfish has no
# INFORMATION_SCHEMA.REFERENTIAL_CONSTRAINTS, which the dialect reads them from.
_FOREIGN_KEYS = """
    SELECT t.name AS table_name, fk.name AS name, pc.name AS column_name,
           rs.name AS referred_schema, rt.name AS referred_table, rc.name AS referred_column,
           fk.update_referential_action_desc AS onupdate,
           fk.delete_referential_action_desc AS ondelete
    FROM sys.foreign_keys fk
    JOIN sys.tables t ON t.object_id = fk.parent_object_id
    JOIN sys.schemas s ON s.schema_id = t.schema_id
    JOIN sys.foreign_key_columns fkc ON fkc.constraint_object_id = fk.object_id
    JOIN sys.columns pc ON pc.object_id = fkc.parent_object_id
                       AND pc.column_id = fkc.parent_column_id
    JOIN sys.tables rt ON rt.object_id = fkc.referenced_object_id
    JOIN sys.schemas rs ON rs.schema_id = rt.schema_id
    JOIN sys.columns rc ON rc.object_id = fkc.referenced_object_id
                       AND rc.column_id = fkc.referenced_column_id
    WHERE s.name = :owner
    ORDER BY t.name, fk.name, fkc.constraint_column_id
"""


# The names as created: Babelfish keeps their case only in INFORMATION_SCHEMA
# (sys.tables, sys.columns, sys.indexes and OBJECT_NAME() fold it to lower case).
_NAMES = """
    SELECT c.TABLE_NAME AS table_name, c.COLUMN_NAME AS column_name
    FROM INFORMATION_SCHEMA.COLUMNS c
    WHERE c.TABLE_SCHEMA = :owner
"""


class _Names:
    """Lower-case names back to the names the DDL gave."""

    def __init__(self, rows) -> None:
        self.tables = {r.table_name.lower(): r.table_name for r in rows}
        self.columns = {(r.table_name.lower(), r.column_name.lower()): r.column_name for r in rows}

    def table(self, name: str) -> str:
        return self.tables.get(name.lower(), name)

    def column(self, table: str, name: str) -> str:
        return self.columns.get((table.lower(), name.lower()), name)


class BabelfishDialect(MSDialect_pymssql):
    """SQLAlchemy's pymssql dialect, where Babelfish 4.2 cannot answer it.

    Without the first three no SQLAlchemy 2 engine connects to Babelfish at
    all; without the last three the inspector (the harness's snapshot,
    Alembic's autogenerate) fails or misreads every table
    (docs/babelfish.md, "Connecting" and "Catalogue"). The first connection:

    - reads the version from ``@@VERSION`` with a pattern that needs
      "Microsoft", which Babelfish's does not say (None, then a TypeError);
    - asks ``fn_listextendedproperty(default, ...)``, which Babelfish fails
      ("unrecognized node type": no DEFAULT argument to a table-valued function);
    - looks the session view up in ``sys.system_views``, which Babelfish lacks.

    Babelfish maps either error to no SQL Server error number and so rolls the
    open transaction back, where SQL Server keeps it; the dialect's own
    ROLLBACK then fails with error 3903. Here the version is
    ``SERVERPROPERTY('ProductVersion')``, comments are off, and the isolation
    level is read from ``sys.dm_exec_sessions`` (the view the dialect finds on
    SQL Server). The inspector reads primary and foreign keys from ``sys.*``
    views Babelfish fills correctly (:data:`_PRIMARY_KEYS`, :data:`_FOREIGN_KEYS`)
    and undoes Babelfish's internal index names. Everything else (compiler,
    DDL, types, columns, indexes) is the mssql dialect's own, as Alembic and
    the plugin use it.
    """

    supports_statement_cache = True

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("supports_comments", False)
        super().__init__(**kwargs)

    def _get_server_version_info(self, connection):
        version = connection.exec_driver_sql(
            "SELECT CAST(SERVERPROPERTY('ProductVersion') AS VARCHAR(64))"
        ).scalar()
        return tuple(int(part) for part in str(version).split("."))

    def get_isolation_level(self, dbapi_connection):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(
                "SELECT CASE transaction_isolation_level WHEN 1 THEN 'READ UNCOMMITTED' "
                "WHEN 2 THEN 'READ COMMITTED' WHEN 3 THEN 'REPEATABLE READ' "
                "WHEN 4 THEN 'SERIALIZABLE' WHEN 5 THEN 'SNAPSHOT' END "
                "FROM sys.dm_exec_sessions WHERE session_id = @@SPID"
            )
            return cursor.fetchone()[0]
        finally:
            cursor.close()

    def get_multi_columns(self, connection, schema=None, filter_names=None, **kw):
        names = self._names(connection, schema)
        return [
            (key, [{**c, "name": names.column(key[1], c["name"])} for c in columns])
            for key, columns in super().get_multi_columns(
                connection, schema=schema, filter_names=filter_names, **kw
            )
        ]

    def get_multi_pk_constraint(self, connection, schema=None, filter_names=None, **kw):
        names = self._names(connection, schema)
        found: dict[str, dict] = {}
        for row in self._rows(connection, _PRIMARY_KEYS, schema):
            table = names.table(row.table_name)
            key = found.setdefault(
                table,
                {
                    "name": row.name,
                    "constrained_columns": [],
                    "dialect_options": {"mssql_clustered": row.index_type == 1},
                },
            )
            key["constrained_columns"].append(names.column(table, row.column_name))
        empty = {"name": None, "constrained_columns": []}
        return self._per_table(connection, schema, filter_names, found, empty)

    def get_multi_foreign_keys(self, connection, schema=None, filter_names=None, **kw):
        owner = schema or self.default_schema_name
        names = self._names(connection, schema)
        referred_names: dict[str, _Names] = {}
        found: dict[str, dict[str, dict]] = {}
        for row in self._rows(connection, _FOREIGN_KEYS, schema):
            table = names.table(row.table_name)
            referred_in = (
                names
                if row.referred_schema == owner
                else referred_names.setdefault(
                    row.referred_schema, self._names(connection, row.referred_schema)
                )
            )
            referred_table = referred_in.table(row.referred_table)
            keys = found.setdefault(table, {})
            fk = keys.get(row.name)
            if fk is None:
                options = {
                    option: action.replace("_", " ")
                    for option, action in (("onupdate", row.onupdate), ("ondelete", row.ondelete))
                    if action != "NO_ACTION"
                }
                referred = row.referred_schema
                if schema is None and referred == owner:
                    referred = None  # as the dialect says it: the default schema unnamed
                fk = keys[row.name] = {
                    "name": row.name,
                    "constrained_columns": [],
                    "referred_schema": referred,
                    "referred_table": referred_table,
                    "referred_columns": [],
                    "options": options,
                }
            fk["constrained_columns"].append(names.column(table, row.column_name))
            fk["referred_columns"].append(referred_in.column(referred_table, row.referred_column))
        lists = {table: list(keys.values()) for table, keys in found.items()}
        return self._per_table(connection, schema, filter_names, lists, [])

    def get_multi_indexes(self, connection, schema=None, filter_names=None, **kw):
        names = self._names(connection, schema)
        return [
            (
                key,
                [
                    {
                        **ix,
                        "name": _tsql_index_name(ix["name"], key[1]),
                        "column_names": [
                            names.column(key[1], c) if c else c for c in ix["column_names"]
                        ],
                    }
                    for ix in indexes
                ],
            )
            for key, indexes in super().get_multi_indexes(
                connection, schema=schema, filter_names=filter_names, **kw
            )
        ]

    def _names(self, connection, schema: str | None) -> _Names:
        return _Names(self._rows(connection, _NAMES, schema))

    def _rows(self, connection, sql: str, schema: str | None):
        owner = schema or self.default_schema_name
        return connection.execute(sa.text(sql), {"owner": owner}).all()

    def _per_table(self, connection, schema, filter_names, found: dict, empty) -> list:
        names = filter_names or self.get_table_names(connection, schema=schema)
        return [((schema, name), found.get(name, empty)) for name in names]


def _tsql_index_name(name: str | None, table: str) -> str | None:
    """The T-SQL name of an index, in lower case.

    Babelfish names an index ``<name><table><md5(name)>``, folded to lower
    case (PostgreSQL's index names are per schema, SQL Server's per table),
    and a name past 63 characters its first 31 characters and the md5 of the
    whole (``construct_unique_index_name``, ``pltsql_truncate_identifier``).
    ``sys.indexes`` shows that; the name's case is kept nowhere.
    """
    table = table.lower()
    if not name or len(name) <= 32:
        return name
    stem, digest = name[:-32], name[-32:]
    short = stem.removesuffix(table)
    if stem.endswith(table) and _md5(short) == digest:
        return short
    for cut in range(len(stem), 0, -1):
        original = stem[:cut]
        whole = original + table + _md5(original)
        if whole.startswith(stem) and _md5(whole) == digest:
            return original
    return name


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class BabelfishEngine(MssqlEngine):
    flavour = "babelfish"
    label = BABELFISH
    driver = "mssql+babelfish"  # BabelfishDialect: pymssql's, minus three probes
    # The contract of the local image peek-matrix/babelfish (docs/babelfish.md): a
    # cluster initialised in multi-db mode, whose T-SQL login babelfish_admin gets
    # BABELFISH_PASSWORD at start; `postgres -c name=value` passes settings.
    container = ContainerRecipe(
        user="babelfish_admin",
        database="master",
        environment={},
        password_env="BABELFISH_PASSWORD",
        port_env="BABELFISH_TDS_PORT",
        # The TDS listener would take every interface of the host otherwise. Babelfish
        # 4.2's TDS listener binds PostgreSQL's listen_addresses (its own setting is
        # defined but unread); later releases read babelfishpg_tds.listen_addresses.
        host_command=(
            "postgres",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "babelfishpg_tds.listen_addresses=127.0.0.1",
        ),
        client_hint="docker exec -it {name} psql -h /tmp -U babelfish_admin -d babelfish_db",
    )
    memory_sql = None  # a PostgreSQL: no sys.dm_os_sys_info, and no 2 GB floor
    keeps_index_name_case = False  # see _tsql_index_name
    not_ready_hint = (
        "Babelfish starts in seconds from its image; a login that never comes means "
        "the container's PostgreSQL did not start: read its log"
    )

    def drop_database_sql(self, name: str) -> list[str]:
        """Without SQL Server's ``SET SINGLE_USER``: Babelfish has no ALTER DATABASE
        (error "'ALTER DATABASE' is not currently supported"), so a session still
        in the database makes the drop fail ("currently in use in another
        session") instead of being ended; the harness's own have ended by then."""
        return [f"IF DB_ID({self._literal(name)}) IS NOT NULL DROP DATABASE {self.quote(name)}"]

    def schema_document(self, conn: sa.Connection, schema: str, leave_out: str) -> dict:
        """SQL Server's document, from the catalogue as Babelfish fills it
        (:mod:`~matrix.engines.babelfish_catalogue`: SQL Server's batch fails there)."""
        batch = CATALOGUE.format(schema=self._literal(schema), leave_out=self._literal(leave_out))
        sets = babelfish_sets(result_sets(conn, batch, CATALOGUE_SETS), _tsql_index_name)
        return catalogue_document(sets, schema)

    @property
    def outside_schema_sql(self) -> str:
        """SQL Server's query, less partition functions and schemes, with a typed empty schema.

        Babelfish 4.2 has no ``sys.partition_functions`` or ``sys.partition_schemes``
        (the query failed before the first revision ran), and none can exist there
        ("'CREATE PARTITION FUNCTION' is not currently supported in Babelfish"). Its
        ``UNION`` types the column by the literal ``''``, ``varchar(0)``, where SQL Server
        takes the widest type ("value too long for type character varying(0)").
        """
        parts = super().outside_schema_sql.split("UNION ALL")
        kept = "UNION ALL".join(part for part in parts if "sys.partition_" not in part)
        return kept.replace("SELECT '', ", "SELECT CAST('' AS sysname), ")

    @property
    def table_identity_sql(self) -> str:
        """SQL Server's query folds every name to lower case on Babelfish (its
        ``sys.tables``), so that each table looked lost; the names as created
        come from INFORMATION_SCHEMA.TABLES, the identity from ``OBJECT_ID``."""
        return """
            SELECT t.TABLE_NAME AS name,
                   CAST(OBJECT_ID(QUOTENAME(t.TABLE_SCHEMA) + '.' + QUOTENAME(t.TABLE_NAME))
                        AS BIGINT) AS [identity]
            FROM INFORMATION_SCHEMA.TABLES t
            WHERE t.TABLE_SCHEMA = :schema AND t.TABLE_TYPE = 'BASE TABLE'
        """

    def release_of(self, server_version: str) -> str:
        """``Babelfish 4.2.0`` is release 4.2; anything else is not Babelfish at all."""
        prefix = f"{BABELFISH} "
        if not server_version.startswith(prefix):
            return server_version
        return ".".join(server_version.removeprefix(prefix).split(".")[:2])

    def describe(self, info: ServerInfo) -> str:
        if info.server_version.startswith(f"{BABELFISH} "):
            return super().describe(info)
        return f"SQL Server {info.server_version}"

    def target_label(self, version: str, postgis: str | None) -> str:
        return f"T-SQL over TDS on Babelfish {version}, not SQL Server"
