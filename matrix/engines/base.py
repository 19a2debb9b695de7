"""What an engine is: everything that differs between PostgreSQL and SQL Server.

"How does SQL Server differ?" has one answer: :mod:`matrix.engines.mssql`.
Each engine is one class holding its driver and connect arguments, its
maintenance database, the SQL that creates, drops and describes databases,
the query for objects outside the plugin schema, how a script splits into
statements, how geometry reads back as text, what a stalled session was
running, its container recipe and the benchmark's raw driver. The rest of the
harness asks the engine and never branches on its name; a third engine is one
module here plus its targets in the matrix file.

A *flavour* is another product that speaks an engine's protocol and dialect
(Babelfish for PostgreSQL speaks T-SQL over TDS): a subclass of that engine,
registered by (engine, flavour), that says what it is and how its image is
run, replaces only the statements the product cannot answer (each one
documented where it is), and otherwise sends the engine's very statements.

Only SQLAlchemy is imported here: the check process, which runs in the
plugin's own environment, uses the engines too.
"""

from __future__ import annotations

import datetime
import json
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.engine import URL, make_url

from matrix.engines.sqlscript import Statement

if TYPE_CHECKING:
    import sqlalchemy as sa


@dataclass(frozen=True)
class ContainerRecipe:
    """How the engine's official image is configured and reached."""

    user: str
    database: str
    environment: dict[str, str]
    password_env: str
    port_env: str
    # What keeps the server on 127.0.0.1 on the host network: a command (PostgreSQL's
    # listen_addresses) or environment variables (SQL Server's MSSQL_IP_ADDRESS).
    host_command: tuple[str, ...] | None
    client_hint: str
    host_environment: dict[str, str] = field(default_factory=dict)
    # The command on a bridge network (the image's own when None).
    command: tuple[str, ...] | None = None
    # Added for a target with PostGIS only: what its images offer such targets alone.
    postgis_environment: dict[str, str] = field(default_factory=dict)


class ConnectFailure(StrEnum):
    """Why a login failed, which decides whether waiting can help."""

    REFUSED = "refused"  # nothing listens: the server is not there (yet)
    AUTHENTICATION = "authentication"  # wrong user or password: permanent
    NO_DATABASE = "no_database"  # the server answers, the database does not exist
    TIMEOUT = "timeout"  # something accepts TCP but does not answer in time
    STARTING = "starting"  # the server is up but not accepting logins yet
    OTHER = "other"


@dataclass(frozen=True)
class ServerInfo:
    """What the server says about itself, not what the matrix claims."""

    server_version: str
    postgis_version: str | None = None


class Engine(ABC):
    """One database engine the matrix can target."""

    name: ClassVar[str]
    # Another product speaking this engine's protocol, or None for the engine's own.
    flavour: ClassVar[str | None] = None
    label: ClassVar[str]
    driver: ClassVar[str]  # SQLAlchemy drivername, never the dialect's default
    driver_requirement: ClassVar[str]  # installed into the plugin's environment
    maintenance_database: ClassVar[str]
    sqlglot_dialect: ClassVar[str]
    container: ClassVar[ContainerRecipe]
    # Names the dialect for offline rendering and cannot reach any server.
    offline_url: ClassVar[str]
    # Session settings a script client uses before applying a script.
    script_session_sql: ClassVar[tuple[str, ...]] = ()
    # The memory (MB) the server says its machine has, what that figure is, and what a
    # login that never comes may mean.
    memory_sql: ClassVar[str | None] = None
    memory_figure: ClassVar[str] = ""
    # Whether a constraint created without a name gets the same name on every site
    # (PostgreSQL: <table>_<columns>_<kind>), so that a revision may drop it by that name.
    stable_constraint_names: ClassVar[bool] = False
    not_ready_hint: ClassVar[str] = ""
    # False where the catalogue folds index names to one case (Babelfish): the
    # model's index names are then matched without their case.
    keeps_index_name_case: ClassVar[bool] = True
    # Whether squawk (a linter for PostgreSQL migrations) reads this engine's SQL.
    lints_with_squawk: ClassVar[bool] = False
    # Server options for a server thrown away with its data (no durability), as arguments.
    throwaway_settings: ClassVar[tuple[str, ...]] = ()
    # Whether a target may add PostGIS (the spatial benchmark needs it).
    has_postgis: ClassVar[bool] = False
    # The query saying whether the server can create the PostGIS extension, where it has one.
    postgis_available_sql: ClassVar[str | None] = None
    # Whether the native provider can run this engine's server (initdb and pg_ctl of the
    # distribution's packages).
    runs_natively: ClassVar[bool] = False

    # -- connecting -----------------------------------------------------------

    def url(self, url: URL | str) -> URL:
        """The URL with this engine's driver named explicitly.

        A bare ``postgresql://`` means psycopg2 to SQLAlchemy 2.0 and psycopg 3
        to 2.1; Peek uses psycopg 3 and pymssql, so a URL never relies on the
        default.
        """
        return make_url(url).set(drivername=self.driver)

    @abstractmethod
    def connect_args(self, login_timeout: float) -> dict[str, Any]:
        """Driver arguments that bound a login, so nothing can hang on it."""

    @abstractmethod
    def classify(self, error: BaseException) -> ConnectFailure:
        """Why a connection attempt failed, from the driver's error."""

    def missing_permission(self, error: BaseException) -> str | None:
        """What the login lacks, with the grant that gives it, when ``error`` says so; else None.

        The harness reads server-wide views (memory, locks) that a
        least-privilege login may not see: such a check cannot judge, and says
        what to grant, instead of erroring.
        """
        return None

    def driver_message(self, error: BaseException) -> str | None:
        """The message of an error of this engine's driver, as text; None if not its driver's.

        Only where ``str()`` of the driver's error is not its message (pymssql
        puts ``(number, bytes)`` in ``args[0]``); see :func:`error_text`.
        """
        return None

    # -- databases --------------------------------------------------------------

    @abstractmethod
    def quote(self, name: str) -> str:
        """An identifier quoted for this engine."""

    @abstractmethod
    def create_database_sql(self, name: str, template: str | None = None) -> list[str]:
        """Statements creating an empty database (from ``template`` where supported)."""

    @abstractmethod
    def drop_database_sql(self, name: str) -> list[str]:
        """Statements closing other sessions and dropping the database."""

    @abstractmethod
    def create_schema_sql(self, schema: str) -> str:
        """Create the schema if it is missing, as Peek's ``ensureSchemaExists`` does."""

    def prepare_database_sql(self, postgis: bool) -> list[str]:
        """What an administrator runs in a new database before Peek migrates it."""
        return []

    def database_settings_sql(
        self, name: str, statement_timeout_s: float, lock_timeout_s: float
    ) -> list[str]:
        """Defaults for every later session of the database (the plugin's too)."""
        return []

    @abstractmethod
    def server_info(self, conn: sa.Connection) -> ServerInfo:
        """The server's version (and PostGIS's), as it reports them."""

    def release_of(self, server_version: str) -> str:
        """The version name a matrix file uses for a server reporting ``server_version``."""
        return server_version.split(".")[0]

    def describe(self, info: ServerInfo) -> str:
        """The product and version that answered, as a report names it."""
        return f"{self.label} {info.server_version}"

    def target_label(self, version: str, postgis: str | None) -> str:
        """A target's human name: ``PostgreSQL 15 + PostGIS 3.3``."""
        return f"{self.label} {version}" + (f" + PostGIS {postgis}" if postgis else "")

    def wrong_server(self, version: str, postgis: str | None, info: ServerInfo) -> str | None:
        """Why the server that answered is not the target's version, or None when it is.

        A target is proven only on its own version: one external URL serves
        every target of its engine, and a pass on PostgreSQL 15 says nothing
        about 13.
        """
        if self.release_of(info.server_version) != version:
            return f"{self.describe(info)} answered, not {self.label} {version}"
        found = info.postgis_version or ""
        if postgis and found != postgis and not found.startswith(f"{postgis}."):
            return f"PostGIS {found or 'none'} answered, not PostGIS {postgis}"
        return None

    @property
    def clones_databases(self) -> bool:
        """Whether a database can be copied from a prepared template."""
        return False

    # -- what the checks ask ------------------------------------------------------

    @abstractmethod
    def schema_document(self, conn: sa.Connection, schema: str, leave_out: str) -> dict:
        """The plugin schema as one document, read from the catalogue in one round trip.

        ``{"tables": {name: {"kind", "columns", "constraints", "indexes",
        "triggers"}}, "views", "sequences", "types", "functions", ...}``, each
        leaf one comparable value; the table ``leave_out`` (Alembic's version
        table) is not in it. A constraint the server named itself (a random
        suffix on SQL Server) is keyed by its definition, so two databases
        built by the same DDL give the same document.
        """

    @property
    @abstractmethod
    def outside_schema_sql(self) -> str:
        """Rows (schema, kind, name) of every object outside ``:schema``.

        Objects that extensions or the server itself own are left out: only
        the plugin's migrations are on trial.
        """

    @property
    @abstractmethod
    def table_identity_sql(self) -> str:
        """Rows (name, identity) of the tables of ``:schema``.

        The identity changes when a table is dropped and created again under
        the same name, which loses its rows even though the name survives.
        """

    # -- migration cost ------------------------------------------------------------

    session_id_sql: ClassVar[str]  # this session's id, to leave it out of the lock samples
    storage_sql: ClassVar[str | None] = None  # rows (name, storage) of ``:schema``'s tables
    # One value the exclusive lock modes depend on (a database setting), or None.
    exclusive_setting_sql: ClassVar[str | None] = None

    @property
    @abstractmethod
    def locks_sql(self) -> str:
        """Rows (relation, mode): the id of each relation other sessions hold a lock on.

        ``:sessions`` is a comma-separated list of session ids to leave out (the
        harness's own). Only ids, never names: a name is read from the
        catalogue, which the migration being sampled may hold locked; the ids
        are named from :attr:`relations_sql`, read between revisions.
        """

    @property
    @abstractmethod
    def relations_sql(self) -> str:
        """Rows (id, name) of ``:schema``'s relations, as :attr:`locks_sql` identifies them."""

    def exclusive_modes(self, setting: Any = None) -> frozenset[str]:
        """The lock modes that block every other session, readers included.

        ``setting`` is what :attr:`exclusive_setting_sql` returned, when the
        engine has one.
        """
        return frozenset(self.lock_order[-1:])

    def lock_assumption(self, setting: Any = None) -> str:
        """What the exclusive lock modes assume about a site's database; "" when nothing.

        ``setting`` is what :attr:`exclusive_setting_sql` read in the test
        database, which a site's database need not share.
        """
        return ""

    # Lock modes from weakest to strongest, as locks_sql names them.
    lock_order: ClassVar[tuple[str, ...]]

    def lock_strength(self, mode: str) -> int:
        """How strong a lock mode is, for keeping the strongest one seen."""
        return self.lock_order.index(mode) if mode in self.lock_order else -1

    @abstractmethod
    def bulk_load(self, conn, table, columns: list[str], rows: list[tuple]) -> None:
        """Load many rows fast (COPY where there is one) on an autocommit connection."""

    @abstractmethod
    def key_sequence_sql(self, schema: str, table: str, column: str) -> tuple[str, dict]:
        """A row (next_value, highest): what the key's sequence gives next, the highest key."""

    @abstractmethod
    def fingerprint_sql(
        self,
        schema: str,
        tables: list[str],
        unhashed: dict[str, list[tuple[str, str]]] | None = None,
    ) -> str:
        """Rows (n, c, h): the n-th table's row count and a hash of all its rows, in one query.

        A revision that deletes, adds or rewrites rows changes the table's
        fingerprint; the data walk blames lost or changed rows on it.
        ``unhashed`` gives, per table, the (column, type) pairs a whole-row hash
        would skip (:attr:`unhashed_columns_sql`), to be hashed on their own.
        """

    # Rows (table, column, type) of ``:schema``'s columns a whole-row hash skips; None: none.
    unhashed_columns_sql: ClassVar[str | None] = None
    # Whether INSERT ... RETURNING (or OUTPUT) works on a table with triggers.
    returning_with_triggers: ClassVar[bool] = True
    # The finest step of the fractional seconds the driver sends.
    driver_time_step: ClassVar[datetime.timedelta] = datetime.timedelta(microseconds=1)

    @abstractmethod
    def time_resolution(self, type_: sa.types.TypeEngine) -> datetime.timedelta | None:
        """The step a date-time (or time) column keeps its values at; None for other types."""

    def server_timezone(self, conn: sa.Connection) -> str:
        """The zone the server reads naive timestamps in (what a ``now()`` default means)."""
        return "UTC"

    def server_generated(self, type_: sa.types.TypeEngine) -> bool:
        """Whether the server fills every column of this type itself, refusing a value."""
        return False

    def column_reflect(self, inspector: Any, table: sa.Table, column_info: dict) -> None:
        """SQLAlchemy's ``column_reflect`` event: complete what the dialect's reflection left out.

        Nothing by default; an engine whose dialect drops a fact the values
        depend on (a column's precision) reads it from the catalogue here.
        """
        return None

    @property
    @abstractmethod
    def list_databases_sql(self) -> str:
        """Rows (name) of every database on the server."""

    @property
    @abstractmethod
    def active_statements_sql(self) -> str:
        """Rows (session, state, seconds, statement) of the sessions on ``:database``."""

    @abstractmethod
    def geometry_as_text(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """An expression reading a geometry column back as WKT."""

    @abstractmethod
    def geometry_from_text(self, wkt: str, srid: int, kind: str = "geometry") -> sa.ColumnElement:
        """An expression building a ``kind`` (geometry, geography) value from WKT and an SRID."""

    @abstractmethod
    def split_script(self, sql: str) -> list[Statement]:
        """The statements (or batches) a client would send, in order."""

    def session_settings_sql(self, statement_timeout_s: float, lock_timeout_s: float) -> list[str]:
        """Timeouts for one of the harness's own sessions."""
        return []

    def driver_value(self, value: Any) -> Any:
        """A generated value in the form this engine's DBAPI driver takes without SQLAlchemy.

        JSON as its text, a UUID as its string; the bulk loads and the
        benchmark's driver layer both send values through here.
        """
        if isinstance(value, dict):
            return json.dumps(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        return value

    # -- benchmark -----------------------------------------------------------------

    @abstractmethod
    def bench_driver(self, engine: sa.Engine) -> Any:
        """The raw driver the benchmark compares the ORM with."""
