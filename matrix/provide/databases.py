"""Server-level operations every provider shares, for every engine.

Providers differ in how a server comes to exist (a container, local binaries,
someone else's server); once it answers, creating a throwaway database,
waiting for readiness and reading versions are the same steps, with the SQL
each engine gives (:mod:`matrix.engines`). Keeping the steps here means the
SQL Server path runs the very code the PostgreSQL tests prove.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from matrix.engines import ConnectFailure, Engine, ServerInfo, engine_named, engine_of, error_text
from matrix.errors import HarnessError, ProviderUnavailable

LOGIN_TIMEOUT_S = 5
# Between two login attempts on a server that is coming up. A refused attempt costs
# a millisecond, so the poll is tight: a server is used within 50 ms of its first
# login, where testcontainers' own wait strategies poll every 0.2 s or more.
READY_POLL_S = 0.05


def connect_engine(url: URL, **kwargs) -> sa.Engine:
    """An engine without pooling: every connection is a real login.

    Logins time out: a port held by something that accepts connections but
    never answers must not hang the run.
    """
    engine = engine_of(url)
    require_driver(engine.name)
    return sa.create_engine(
        engine.url(url),
        poolclass=NullPool,
        connect_args=engine.connect_args(LOGIN_TIMEOUT_S),
        **kwargs,
    )


def require_driver(name: str) -> None:
    """The harness's own driver for an engine is importable; else which extra installs it."""
    engine = engine_named(name)
    try:
        make_url(f"{engine.driver}://").get_dialect().import_dbapi()
    except ModuleNotFoundError as error:
        raise HarnessError(
            f"The {engine.label} driver is not installed ({error}).",
            f"Install the extra: pip install 'peek-plugin-matrix[{engine.name}]'.",
        ) from None


def _autocommit(url: URL) -> sa.Engine:
    # CREATE/DROP DATABASE cannot run inside a transaction on either engine.
    return connect_engine(url, isolation_level="AUTOCOMMIT")


def run_statements(url: URL, statements: list[str]) -> None:
    """Run statements one by one in autocommit mode on one connection."""
    if not statements:
        return
    engine = _autocommit(url)
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def throwaway_name() -> str:
    return f"matrix_{secrets.token_hex(4)}"


def create_database(server_url: URL, name: str, template: str | None = None) -> URL:
    """Create an empty database on the server and return its URL."""
    engine = engine_of(server_url)
    server_url = engine.url(server_url)
    admin = server_url.set(database=engine.maintenance_database)
    run_statements(admin, engine.create_database_sql(name, template))
    return server_url.set(database=name)


def create_siblings(
    url: URL,
    names: list[str],
    *,
    template: str | None,
    statement_timeout_s: float = 0,
    lock_timeout_s: float = 0,
) -> list[URL]:
    """Create several databases beside ``url``'s, with its timeouts, in one admin session.

    What :func:`create_database` and :func:`prepare_database` (without PostGIS) do
    for each, less a login per database: a check process makes three.
    """
    engine = engine_of(url)
    url = engine.url(url)
    statements = []
    for name in names:
        statements += engine.create_database_sql(name, template)
        if statement_timeout_s or lock_timeout_s:
            statements += engine.database_settings_sql(name, statement_timeout_s, lock_timeout_s)
    run_statements(url.set(database=engine.maintenance_database), statements)
    return [url.set(database=name) for name in names]


def drop_database(db_url: URL) -> None:
    """Drop a database the harness created, ending other sessions first."""
    drop_databases(db_url, [db_url.database])


def drop_databases(url: URL, names: list[str]) -> None:
    """Drop databases of ``url``'s server the harness created, in one admin session."""
    engine = engine_of(url)
    admin = engine.url(url).set(database=engine.maintenance_database)
    run_statements(admin, [sql for name in names for sql in engine.drop_database_sql(name)])


def family_of(conn: sa.Connection, url: URL) -> list[str]:
    """A throwaway database and its siblings (``<name>_<purpose>``), as the server lists them."""
    engine = engine_of(url)
    names = [row[0] for row in conn.execute(sa.text(engine.list_databases_sql))]
    return [n for n in names if n == url.database or n.startswith(url.database + "_")]


def drop_siblings(url: URL, *, with_itself: bool = False) -> None:
    """Drop the siblings a killed check process could not drop itself (and ``url``'s own)."""
    engine = engine_of(url)
    try:
        admin = connect_engine(engine.url(url).set(database=engine.maintenance_database))
        try:
            with admin.connect() as conn:
                names = [n for n in family_of(conn, url) if with_itself or n != url.database]
        finally:
            admin.dispose()
        drop_databases(url, names)
    except sa.exc.DBAPIError:
        pass  # the server is going away with its container or data folder


def prepare_database(
    db_url: URL, postgis: bool, statement_timeout_s: float = 0, lock_timeout_s: float = 0
) -> None:
    """Do what a Peek administrator does before the plugin's migrations run.

    Peek expects PostGIS to be installed in the database by its administrator;
    plugins only use it. Where the engine has database-wide defaults, the
    statement and lock timeouts are set on the database, so that the plugin's
    own env.py connections get them too.
    """
    engine = engine_of(db_url)
    statements = engine.prepare_database_sql(postgis)
    if statement_timeout_s or lock_timeout_s:
        statements += engine.database_settings_sql(
            db_url.database, statement_timeout_s, lock_timeout_s
        )
    run_statements(db_url, statements)


def server_info(db_url: URL) -> ServerInfo:
    """The versions the server reports about itself, not what the matrix claims."""
    engine = connect_engine(db_url)
    try:
        with engine.connect() as conn:
            return engine_of(db_url).server_info(conn)
    finally:
        engine.dispose()


class NotReady(HarnessError):
    """The server did not accept a real login in time."""


def wait_until_ready(
    server_url: URL,
    timeout: float,
    *,
    postgis: bool = False,
    started_by_us: bool = True,
    log_tail: Callable[[], str] | None = None,
    check_alive: Callable[[], None] | None = None,
    interval: float = READY_POLL_S,
) -> float:
    """Wait until the server accepts a login and answers ``SELECT 1``.

    An open port is not readiness: SQL Server and a PostgreSQL container still
    running its init scripts accept TCP connections long before logins. For
    PostGIS targets the extension must also be available, which proves the
    packages are really installed.

    Failures are classified, because only some are worth waiting for:

    - a refused connection to a server we did not start means there is no
      server: :class:`ProviderUnavailable` at once (the target is ``not_run``);
      one we started is still coming up, so we wait;
    - a failed authentication on a server someone else runs is a wrong user
      or password: a :class:`HarnessError` at once; on a server we started,
      whose password is our own, it is the server's first boot (SQL Server
      refuses ``sa`` with 18456, state 7, "an error occurred while evaluating
      the password", until its setup is done: microsoft/mssql-docker issues
      151 and 652), so we wait;
    - a login that times out or a server still starting is what
      ``ready_timeout`` is for.

    ``check_alive`` is called between attempts and raises when the server
    died (a container that exited). Returns the seconds waited.
    """
    engine = engine_of(server_url)
    server_url = engine.url(server_url)
    probe = server_url.set(database=engine.maintenance_database)
    where = f"{engine.label} server at {server_url.host}:{server_url.port}"
    started = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            _login(probe, postgis, engine)
            return time.monotonic() - started
        except sa.exc.DBAPIError as error:
            last_error = error
            failure = engine.classify(error)
            if failure == ConnectFailure.AUTHENTICATION and not started_by_us:
                raise HarnessError(
                    f"The {where} refused the login as {server_url.username!r}: "
                    f"{first_line(error)}. A wrong user or password does not get better by "
                    "waiting.",
                    "Check the user and password in the URL (or the variable that holds it).",
                ) from None
            if failure == ConnectFailure.REFUSED and not started_by_us:
                raise ProviderUnavailable(
                    f"Nothing accepts connections at the {where} ({first_line(error)}).",
                    "Start the server, or point the URL at one that runs.",
                ) from None
            if check_alive:
                check_alive()
            time.sleep(max(0.0, min(interval, timeout - (time.monotonic() - started))))
    tail = log_tail() if log_tail else ""
    log_note = " (its log is below)" if tail else ""
    hint = f" {engine.not_ready_hint}." if engine.not_ready_hint else ""
    raise NotReady(
        f"The {where} did not accept a login within {timeout:g} s "
        f"(last error: {first_line(last_error)}).{hint}",
        f"Check that the server starts{log_note}; if it is only slow, raise ready_timeout "
        "in the matrix file." + (f"\n--- server log ---\n{tail}" if tail else ""),
    )


def memory_note(server_url: URL, needed_mb: int) -> str | None:
    """What the server's own memory figure says against ``min_memory_mb``: a note, or None.

    Never a refusal: a server that answered logins runs, and its figure cannot
    tell a starved server from a healthy one (see :func:`memory_judgement`).
    """
    engine = engine_of(server_url)
    if not needed_mb or engine.memory_sql is None:
        return None
    sa_engine = _autocommit(engine.url(server_url).set(database=engine.maintenance_database))
    try:
        with sa_engine.connect() as conn:
            reported: int | None | BaseException = conn.execute(
                sa.text(engine.memory_sql)
            ).scalar_one()
    except sa.exc.DBAPIError as error:
        reported = error
    finally:
        sa_engine.dispose()
    return memory_judgement(engine, reported, needed_mb)


def memory_judgement(
    engine: Engine, reported: int | None | BaseException, needed_mb: int
) -> str | None:
    """The note for a server reporting ``reported`` MB (or the error reading it raised).

    Below ``min_memory_mb`` the server is said to report less, with what the
    figure is (:attr:`Engine.memory_figure`): on Linux SQL Server may report only
    its allowed share, and on Windows Microsoft's minimum is lower, so the
    figure cannot decide that a server that runs is starved. A login without
    the permission to read the figure gets the grant to give, not an error.
    """
    if isinstance(reported, BaseException):
        missing = engine.missing_permission(reported)
        if missing is None:
            raise reported
        return f"the memory of the {engine.label} server was not judged: {missing}"
    if reported is None or int(reported) >= needed_mb:
        return None
    return (
        f"the {engine.label} server reports {int(reported)} MB of memory ({engine.memory_figure}), "
        f"less than min_memory_mb ({needed_mb} MB); it is not refused on that figure: if its "
        "checks time out or it stops, give it more memory"
    )


def _login(probe: URL, postgis: bool, engine: Engine) -> None:
    sa_engine = _autocommit(probe)
    try:
        with sa_engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
            if postgis:
                _check_postgis(conn, engine)
    finally:
        sa_engine.dispose()


def _check_postgis(conn: sa.Connection, engine: Engine) -> None:
    # Only whether the packages are there: the extension itself is created in
    # the test database by prepare_database, never in the maintenance one.
    available = (
        engine.postgis_available_sql
        and conn.execute(sa.text(engine.postgis_available_sql)).scalar_one_or_none()
    )
    if not available:
        raise HarnessError(
            "The PostgreSQL server answers but has no PostGIS extension available.",
            "Install PostGIS on that server (postgresql-NN-postgis-3) or use an image "
            "that has it (postgis/postgis, or `python -m matrix images build`).",
        )


def first_line(error: object) -> str:
    """The first line of an error's own message (the driver's, when wrapped)."""
    if error is None:
        return "none"
    text = error_text(error) if isinstance(error, BaseException) else str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
