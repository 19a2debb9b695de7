"""A server someone else runs: a GitLab ``services:`` entry, a shared server.

The URL comes from the environment variable the matrix names for the engine
(``MATRIX_POSTGRESQL_URL``, ``MATRIX_MSSQL_URL``) or for a target of its own
(``MATRIX_BABELFISH_URL``), never from a file, so that
credentials stay out of the repository; the command line reads and validates
it before anything starts and hands it here. The harness creates a throwaway
database on that server and drops it afterwards; it never touches others.

Each throwaway database is dropped when its cell ends; ``close()`` drops
those a cell could not (an interrupted run, a cell abandoned at the run
timeout), with their siblings.

A server that refuses the connection is not there: the target is ``not_run``
at once, without waiting out ``ready_timeout`` (which is for a server that is
there but slow); a refused login is said at once too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import URL

from matrix.define.targets import Target
from matrix.provide import databases
from matrix.provide.base import Database, Log, Provider


class ExternalProvider(Provider):
    name = "external"

    def __init__(self, urls: dict[str, URL]) -> None:
        self.urls = urls  # variable name -> server URL, validated by the command line
        self._open: set[URL] = set()
        self._lock = threading.Lock()

    def unavailable_reason(self, target: Target) -> str | None:
        if target.settings.url_env not in self.urls:
            return f"no URL given: set {target.settings.url_env} to a server URL"
        return None

    @contextmanager
    def database(self, target: Target, log: Log) -> Iterator[Database]:
        server_url = self.urls[target.settings.url_env]
        log(f"external {target.engine} server at {server_url.host}:{server_url.port}")
        ready = databases.wait_until_ready(
            server_url,
            target.settings.ready_timeout,
            postgis=bool(target.postgis),
            started_by_us=False,
        )
        note = databases.memory_note(server_url, target.settings.min_memory_mb)
        url = databases.create_database(server_url, databases.throwaway_name())
        with self._lock:
            self._open.add(url)
        try:
            yield Database(target, url, self.name, ready, [note] if note else [])
        except BaseException:
            # Why the target stopped is the report's reason: a drop that fails
            # too is said, and the database left for close() to try again.
            try:
                databases.drop_database(url)
            except Exception as error:  # noqa: BLE001 - the cause in flight wins
                log(f"dropping {url.database} failed too: {databases.first_line(error)}")
            else:
                self._forget(url)
            raise
        databases.drop_database(url)
        self._forget(url)

    def _forget(self, url: URL) -> None:
        with self._lock:
            self._open.discard(url)

    def close(self) -> None:
        with self._lock:
            left, self._open = self._open, set()
        for url in left:
            databases.drop_siblings(url, with_itself=True)
