"""A server someone else runs: a GitLab ``services:`` entry, a shared server.

The URL comes from the environment variable the matrix names for the engine
(``MATRIX_POSTGRESQL_URL``, ``MATRIX_MSSQL_URL``), never from a file, so that
credentials stay out of the repository. The harness creates a throwaway
database on that server and drops it afterwards; it never touches others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from matrix import databases, masking
from matrix.definition import Target
from matrix.errors import HarnessError
from matrix.providers.base import Database, Log, Provider


class ExternalProvider(Provider):
    name = "external"

    def unavailable_reason(self, target: Target) -> str | None:
        if not os.environ.get(target.settings.url_env):
            return f"no URL given: set {target.settings.url_env} to a server URL"
        return None

    @contextmanager
    def database(self, target: Target, log: Log) -> Iterator[Database]:
        variable = target.settings.url_env
        try:
            server_url = databases.with_driver(make_url(os.environ[variable]))
        except (ArgumentError, KeyError) as error:
            raise HarnessError(
                f"{variable} does not hold a database URL ({error}).",
                f"Set it like {target.engine}://USER:PASSWORD@127.0.0.1:PORT/DB.",
            ) from None
        masking.register_url(server_url)
        if databases.engine_name(server_url) != target.engine:
            raise HarnessError(
                f"{variable} points at a {databases.engine_name(server_url)} server, "
                f"but target {target.id} is {target.engine}.",
                f"Point {variable} at a {target.engine} server.",
            )
        log(f"external {target.engine} server at {server_url.host}:{server_url.port}")
        ready = databases.wait_until_ready(
            server_url, target.settings.ready_timeout, postgis=bool(target.postgis)
        )
        url = databases.create_database(server_url, databases.throwaway_name())
        try:
            yield Database(target, url, self.name, ready)
        finally:
            databases.drop_database(url)
