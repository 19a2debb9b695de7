"""Server-level operations every provider shares, for both engines.

Providers differ in how a server comes to exist (a container, local binaries,
someone else's server); once it answers, creating a throwaway database,
waiting for readiness and reading versions are the same SQL. Keeping that SQL
here means the SQL Server path uses the very code the PostgreSQL tests prove.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from matrix.errors import HarnessError

DRIVERS = {"postgresql": "postgresql+psycopg2", "mssql": "mssql+pymssql"}
MAINTENANCE_DB = {"postgresql": "postgres", "mssql": "master"}


def engine_name(url: URL) -> str:
    """``postgresql`` or ``mssql`` from a URL, whatever its driver."""
    return url.get_backend_name()


def with_driver(url: URL | str) -> URL:
    """Name the driver explicitly.

    SQLAlchemy 2.1 made psycopg 3 the default for a bare ``postgresql://``;
    Peek uses psycopg2 and pymssql, so a URL never relies on the default.
    """
    url = make_url(url)
    backend = url.get_backend_name()
    if backend not in DRIVERS:
        raise HarnessError(
            f"The database URL names the engine {backend!r}.",
            "Use a postgresql:// or mssql:// URL.",
        )
    return url.set(drivername=DRIVERS[backend])


CONNECT_TIMEOUT = {"postgresql": {"connect_timeout": 5}, "mssql": {"login_timeout": 5}}


def connect_engine(url: URL, **kwargs) -> sa.Engine:
    """An engine without pooling: every connection is a real login.

    Logins time out: a port held by something that accepts connections but
    never answers must not hang the run.
    """
    url = with_driver(url)
    return sa.create_engine(
        url, poolclass=NullPool, connect_args=CONNECT_TIMEOUT[engine_name(url)], **kwargs
    )


def _autocommit(url: URL) -> sa.Engine:
    # CREATE/DROP DATABASE cannot run inside a transaction on either engine.
    return connect_engine(url, isolation_level="AUTOCOMMIT")


def throwaway_name() -> str:
    return f"matrix_{secrets.token_hex(4)}"


def create_database(server_url: URL, name: str) -> URL:
    """Create an empty database on the server and return its URL."""
    server_url = with_driver(server_url)
    backend = engine_name(server_url)
    admin = server_url.set(database=MAINTENANCE_DB[backend])
    quoted = f'"{name}"' if backend == "postgresql" else f"[{name}]"
    engine = _autocommit(admin)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()
    return server_url.set(database=name)


def drop_database(db_url: URL) -> None:
    """Drop a database the harness created, closing other sessions first."""
    db_url = with_driver(db_url)
    backend = engine_name(db_url)
    name = db_url.database
    admin = db_url.set(database=MAINTENANCE_DB[backend])
    engine = _autocommit(admin)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            else:
                conn.execute(
                    sa.text(
                        f"IF DB_ID(N'{name}') IS NOT NULL BEGIN "
                        f"ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; "
                        f"DROP DATABASE [{name}]; END"
                    )
                )
    finally:
        engine.dispose()


def prepare_database(db_url: URL, postgis: bool) -> None:
    """Do what a Peek administrator does before the plugin's migrations run.

    Peek expects PostGIS to be installed in the database by its administrator;
    plugins only use it.
    """
    if not postgis:
        return
    engine = _autocommit(db_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class ServerInfo:
    server_version: str
    postgis_version: str | None


def server_info(db_url: URL) -> ServerInfo:
    """The versions the server reports about itself, not what the matrix claims."""
    engine = connect_engine(db_url)
    try:
        with engine.connect() as conn:
            if engine_name(db_url) == "mssql":
                version = conn.execute(
                    sa.text("SELECT CAST(SERVERPROPERTY('ProductVersion') AS VARCHAR(64))")
                ).scalar_one()
                return ServerInfo(str(version), None)
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            postgis = conn.execute(
                sa.text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            ).scalar_one_or_none()
            return ServerInfo(str(version).split()[0], postgis)
    finally:
        engine.dispose()


class NotReady(HarnessError):
    """The server did not accept a real login in time."""


def wait_until_ready(
    server_url: URL,
    timeout: float,
    *,
    postgis: bool = False,
    log_tail: Callable[[], str] | None = None,
    check_alive: Callable[[], None] | None = None,
    interval: float = 0.25,
) -> float:
    """Wait until the server accepts a login and answers ``SELECT 1``.

    An open port is not readiness: SQL Server and a PostgreSQL container still
    running its init scripts accept TCP connections long before logins. For
    PostGIS targets the extension must also be creatable, which proves the
    packages are really installed. ``check_alive`` is called between
    attempts and raises when the server died (a container that exited), so
    that is reported at once rather than after the timeout. Returns the
    seconds waited.
    """
    server_url = with_driver(server_url)
    backend = engine_name(server_url)
    probe = server_url.set(database=MAINTENANCE_DB[backend])
    started = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            engine = _autocommit(probe)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1")).scalar_one()
                    if postgis:
                        _check_postgis(conn)
            finally:
                engine.dispose()
            return time.monotonic() - started
        except sa.exc.DBAPIError as error:
            last_error = error
            if check_alive:
                check_alive()
            time.sleep(interval)
    tail = log_tail() if log_tail else ""
    raise NotReady(
        f"The {backend} server at {server_url.host}:{server_url.port} did not accept a "
        f"login within {timeout:g} s (last error: {_first_line(last_error)}).",
        "Check that the server starts (its log is below) and raise ready_timeout in "
        "the matrix file if it is only slow." + (f"\n--- server log ---\n{tail}" if tail else ""),
    )


def _check_postgis(conn: sa.Connection) -> None:
    # Only whether the packages are there: the extension itself is created in
    # the test database by prepare_database, never in the maintenance one.
    available = conn.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    ).scalar_one_or_none()
    if not available:
        raise HarnessError(
            "The PostgreSQL server answers but has no PostGIS extension available.",
            "Install PostGIS on that server (postgresql-NN-postgis-3) or use an image "
            "that has it (postgis/postgis, or `python -m matrix images build`).",
        )


def _first_line(error: Exception | None) -> str:
    if error is None:
        return "none"
    text = str(getattr(error, "orig", error)).strip()
    return text.splitlines()[0] if text else type(error).__name__
