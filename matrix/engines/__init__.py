"""Database engines: one class each, registered by name; the rest of the harness asks them.

:mod:`~matrix.engines.base` says what an engine is (:class:`Engine`);
:mod:`~matrix.engines.postgresql` and :mod:`~matrix.engines.mssql` are the
two engines, :mod:`~matrix.engines.drivers` their raw DBAPI drivers (the
benchmark's yardstick), :mod:`~matrix.engines.sqlscript` how scripts split.
Nothing outside this package asks which engine it is: it asks the engine.

Only SQLAlchemy is imported here: the check process, which runs in the
plugin's own environment, uses the engines too.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

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
]


def _registry() -> dict[str, Engine]:
    from matrix.engines.mssql import MssqlEngine
    from matrix.engines.postgresql import PostgresqlEngine

    return {engine.name: engine for engine in (PostgresqlEngine(), MssqlEngine())}


ENGINES: dict[str, Engine] = {}


def engine_named(name: str) -> Engine:
    """The engine called ``name`` (``postgresql``, ``mssql``)."""
    if not ENGINES:
        ENGINES.update(_registry())
    try:
        return ENGINES[name]
    except KeyError:
        raise HarnessError(
            f"There is no engine {name!r}.", f"Use one of {', '.join(engine_names())}."
        ) from None


def error_text(error: BaseException) -> str:
    """A database error's own message as text: the driver's, when SQLAlchemy wrapped it.

    Each engine reads its own driver's errors (:meth:`Engine.driver_message`),
    so that nothing outside this package knows a driver's error shape.
    """
    original = getattr(error, "orig", None) or error
    for name in engine_names():
        text = ENGINES[name].driver_message(original)
        if text is not None:
            return text
    return str(original).strip()


def engine_names() -> tuple[str, ...]:
    if not ENGINES:
        ENGINES.update(_registry())
    return tuple(ENGINES)


def engine_of(url: URL | str, source: str = "The database URL") -> Engine:
    """The engine a URL names, whatever its driver; ``source`` names where it came from."""
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
    return engine_named(backend)
