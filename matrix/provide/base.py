"""The provider seam: how a target's database comes to exist.

A provider starts (or reaches) a server for one target and hands back a URL
to a fresh, empty database on it; leaving the context stops and cleans up
everything it made, on success, failure, Ctrl-C or SIGTERM alike. The checks
never know which provider served them; the report does.
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.engine import URL

from matrix.define.targets import Target
from matrix.provide.databases import NotReady

T = TypeVar("T")


@dataclass
class Database:
    """A fresh empty database for one target, ready for migrations."""

    target: Target
    url: URL
    provider: str
    ready_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


Log = Callable[[str], None]


class Provider(ABC):
    """Starts a server for a target and yields a fresh database on it."""

    name: str

    @abstractmethod
    def unavailable_reason(self, target: Target) -> str | None:
        """Why this provider cannot serve ``target`` here, or None if it can.

        Cheap and side-effect free: ``auto`` asks every provider in turn.
        """

    @abstractmethod
    def database(self, target: Target, log: Log) -> AbstractContextManager[Database]:
        """Start what the target needs and yield a fresh database."""

    def close(self) -> None:
        """Remove everything this provider made in this run; idempotent.

        Called from the runner's ``finally`` and on SIGTERM, when a cell's
        context may still be open in another thread.
        """
        return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def retry_once(start: Callable[[int], T], log: Log, what: str) -> T:
    """Run ``start(attempt)``; after a readiness failure, once more.

    A server that fails to come up is often a transient problem (a slow disk,
    a port grabbed in between); a second failure is not. ``start`` must clean
    up what its failed attempt made before raising.
    """
    try:
        return start(1)
    except NotReady as error:
        log(f"{what} was not ready ({error.cause}); retrying once with a fresh one")
        return start(2)
