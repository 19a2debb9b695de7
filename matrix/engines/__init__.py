"""Database engines: one class each, registered by name; the rest of the harness asks them.

:mod:`~matrix.engines.base` says what an engine is (:class:`Engine`);
:mod:`~matrix.engines.postgresql` and :mod:`~matrix.engines.mssql` are the
two engines, :mod:`~matrix.engines.babelfish` a flavour of the second (another
product speaking T-SQL over TDS, registered by (engine, flavour)),
:mod:`~matrix.engines.drivers` their raw DBAPI drivers (the benchmark's
yardstick), :mod:`~matrix.engines.sqlscript` how scripts split. Nothing
outside this package asks which engine it is: it asks the engine.

Only SQLAlchemy is imported here: the check process, which runs in the
plugin's own environment, uses the engines too.
"""

from __future__ import annotations

from sqlalchemy.dialects import registry
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from matrix.engines.base import ConnectFailure, ContainerRecipe, Engine, ServerInfo
from matrix.errors import HarnessError

__all__ = [
    "ConnectFailure",
    "ContainerRecipe",
    "Engine",
    "ServerInfo",
    "engine_named",
    "engine_names",
    "engine_of",
    "error_text",
    "hidden_cause",
]

# A flavour's URL names its own SQLAlchemy dialect, so that every process that
# opens it (the harness, the check process, the plugin's own env.py) reaches it.
registry.register("mssql.babelfish", "matrix.engines.babelfish", "BabelfishDialect")


def _registry() -> dict[tuple[str, str | None], Engine]:
    from matrix.engines.babelfish import BabelfishEngine
    from matrix.engines.mssql import MssqlEngine
    from matrix.engines.postgresql import PostgresqlEngine

    engines = (PostgresqlEngine(), MssqlEngine(), BabelfishEngine())
    return {(engine.name, engine.flavour): engine for engine in engines}


ENGINES: dict[tuple[str, str | None], Engine] = {}


def engine_named(name: str, flavour: str | None = None) -> Engine:
    """The engine called ``name`` (``postgresql``, ``mssql``), or its ``flavour``."""
    if not ENGINES:
        ENGINES.update(_registry())
    try:
        return ENGINES[name, flavour]
    except KeyError:
        if flavour is None or (name, None) not in ENGINES:
            raise HarnessError(
                f"There is no engine {name!r}.", f"Use one of {', '.join(engine_names())}."
            ) from None
        known = [f for n, f in ENGINES if n == name and f]
        raise HarnessError(
            f"The engine {name!r} has no flavour {flavour!r}.",
            f"Use one of {', '.join(known) or 'none'}, or leave the flavour out.",
        ) from None


def error_text(error: BaseException) -> str:
    """A database error's own message as text: the driver's, when SQLAlchemy wrapped it.

    Each engine reads its own driver's errors (:meth:`Engine.driver_message`),
    so that nothing outside this package knows a driver's error shape.
    """
    original = getattr(error, "orig", None) or error
    for name in engine_names():
        text = engine_named(name).driver_message(original)
        if text is not None:
            return text
    return str(original).strip()


def hidden_cause(error: BaseException) -> BaseException:
    """The database error that a failed cleanup hid, or ``error`` itself.

    A statement that fails in a transaction may end the transaction on the
    server: SQL Server does with XACT_ABORT ON or an error that dooms it,
    Babelfish with every error it maps to no SQL Server number. The ROLLBACK
    sent after it then fails too (3903, "no corresponding BEGIN
    TRANSACTION"), and that second error is the one that surfaces, with the
    statement's own error as its context. Only a database error raised while
    handling another database error is unwrapped: a plugin's own error,
    raised on purpose from another, is its message.
    """
    hidden = error.__context__
    if (
        hidden is not None
        and not error.__suppress_context__
        and _database_error(error)
        and _database_error(hidden)
    ):
        return hidden_cause(hidden)
    return error


def _database_error(error: BaseException) -> bool:
    # SQLAlchemy's wrapper, or the driver's own (pymssql raises its own on ROLLBACK).
    return isinstance(error, DBAPIError) or type(error).__module__.split(".")[0] in (
        "pymssql",
        "psycopg",
    )


def engine_names() -> tuple[str, ...]:
    """The engines' names (a flavour is its engine's: ``mssql`` for Babelfish)."""
    if not ENGINES:
        ENGINES.update(_registry())
    return tuple(dict.fromkeys(name for name, _ in ENGINES))


def engine_of(url: URL | str, source: str = "The database URL") -> Engine:
    """The engine a URL names; ``source`` names where it came from.

    A flavour's URL names its own driver (``mssql+babelfish``), so that the
    URL alone says which of the engine's servers it reaches; any other driver
    is the engine's own.
    """
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError) as error:
        raise HarnessError(
            f"{source} is not a database URL ({error}).",
            "Write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(or mssql://...), with special characters in the password %-encoded.",
        ) from None
    if backend not in engine_names():
        raise HarnessError(
            f"{source} names the engine {backend!r}.",
            f"Use a URL for one of {', '.join(engine_names())}.",
        )
    drivername = make_url(url).drivername
    flavours = [e for (name, f), e in ENGINES.items() if name == backend and f]
    return next((e for e in flavours if e.driver == drivername), engine_named(backend))
