"""Shared fixtures: one real PostgreSQL + PostGIS server for the whole session.

The server is started by the harness's own native provider (initdb + pg_ctl
on a free 127.0.0.1 port), so these fixtures also exercise that provider.
Tests that need the full matrix run it through the CLI, exactly as a user
does, against this server through the external provider.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from helpers import PyPI
from passlib.apache import HtpasswdFile
from sqlalchemy.engine import URL

from matrix import settings
from matrix.define.targets import load_matrix
from matrix.provide import databases
from matrix.provide.base import free_port
from matrix.provide.native import NativeProvider

ROOT = Path(__file__).resolve().parent.parent
PG_TARGET = "pg15-postgis33"


@pytest.fixture(scope="session")
def live() -> None:
    """Asked for by every fixture that needs a real server, engine, tool or the network.

    A test whose fixtures reach this one, however indirectly, is marked ``live``
    when it is collected (below), so ``-m "not live"`` (the unit tier) leaves it
    out: a new fixture that starts or reaches something real says so by asking
    for ``live``, never by being added to a list. ``tests/test_tiers.py`` holds
    the two together.
    """


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups the marks give
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the live tests, and keep the tests that share a module's fixture on one worker.

    A module-scoped fixture (a built wheel, a run of the matrix) is computed once
    per worker that runs one of its tests: under ``-n``, ``--dist loadgroup``
    sends the tests sharing one to the same worker (``xdist_group``), so it is
    computed once, and what its tests assume of each other (a cache the first
    one fills) still holds.
    """
    for item in items:
        if "live" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)
        if shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def shares_a_module_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture computed once for its module (or class)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(defs[-1].scope in ("module", "class", "package") for defs in definitions)


@pytest.fixture(scope="session")
def pg_server_url(live) -> URL:
    """Superuser URL of a live PostgreSQL 15 + PostGIS server (maintenance db)."""
    target = next(t for t in load_matrix().targets if t.id == PG_TARGET)
    # Recorded like a run's servers, so a test session killed outright leaves a
    # server the next session (or run) reaps.
    provider = NativeProvider(state_dir=settings.cache_dir() / "runs")
    reason = provider.unavailable_reason(target)
    assert reason is None, f"the tests need a local PostgreSQL 15 + PostGIS: {reason}"
    with provider.database(target, log=lambda message: None) as db:
        yield db.url.set(database="postgres")


@pytest.fixture(scope="session")
def public_index(live) -> str:
    """The package index pip is configured with (the public one unless told): the network."""
    from matrix.install import index

    return index.index_url()


@pytest.fixture
def postgres_url(pg_server_url: URL) -> URL:
    """A fresh, empty database with PostGIS created, as a Peek admin leaves it."""
    url = databases.create_database(pg_server_url, databases.throwaway_name())
    databases.prepare_database(url, postgis=True)
    yield url
    databases.drop_database(url)


@dataclass
class MatrixRun:
    exit_code: int
    output: str
    reports: Path

    @property
    def report(self) -> dict:
        return json.loads((self.reports / "compat.json").read_text())

    def target(self, target_id: str = PG_TARGET) -> dict:
        return next(t for t in self.report["targets"] if t["id"] == target_id)

    def check(self, name: str, target_id: str = PG_TARGET) -> dict:
        return next(c for c in self.target(target_id)["checks"] if c["name"] == name)


@pytest.fixture
def run_matrix_cli(pg_server_url: URL, tmp_path: Path):
    """Run ``python -m matrix run`` against the session's server, as a user would."""

    def run(*args: str, env: dict[str, str] | None = None) -> MatrixRun:
        reports = tmp_path / f"reports-{len(list(tmp_path.glob('reports-*')))}"
        environment = {
            **os.environ,
            "MATRIX_POSTGRESQL_URL": pg_server_url.render_as_string(hide_password=False),
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-m", "matrix", "run", "--reports", str(reports), *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return MatrixRun(done.returncode, done.stdout + done.stderr, reports)

    return run


# -- bench/html helpers --

BENCH_SIZES = ("--rows", "300", "--ops", "30", "--queries", "3", "--rounds", "3", "--warmup", "1")


def matrix_cli(server_url: URL, *args: str) -> subprocess.CompletedProcess:
    """``python -m matrix ARGS`` with the external provider on the session's server."""
    environment = {
        **os.environ,
        "MATRIX_POSTGRESQL_URL": server_url.render_as_string(hide_password=False),
    }
    return subprocess.run(
        [sys.executable, "-m", "matrix", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


def bench_cli(server_url: URL, plugin: Path, reports: Path, *args: str):
    """``python -m matrix bench`` of one plugin on pg15, with sizes that take seconds."""
    common = ("--targets", PG_TARGET, "--provider", "external", "--reports", str(reports))
    return matrix_cli(server_url, "bench", "--plugin", str(plugin), *common, *BENCH_SIZES, *args)


def sample_benchmark(factor: float = 1.0):
    """A target's benchmark without a server: two measured operations and a skipped one.

    Every throughput is multiplied by ``factor``, for baselines faster or slower.
    """
    from matrix.results.benchmark import (
        DRIVER,
        ORM,
        BenchmarkResult,
        Figure,
        OperationResult,
        Settings,
    )

    def measured(name: str, unit: str, rates: dict[str, float]):
        figures = [
            Figure.from_seconds(
                name,
                ORM if n == 0 else DRIVER,
                method,
                unit,
                100,
                [100 / (rate * factor * k) for k in (0.9, 1.0, 1.1)],
                2.0 if n == 0 else None,
            )
            for n, (method, rate) in enumerate(rates.items())
        ]
        return OperationResult.measured(name, name.replace("_", " "), unit, 100, figures)

    return BenchmarkResult(
        Settings(rows=100, ops=100, queries=2, rounds=3, warmup=1),
        [
            measured("insert_batch", "rows/s", {"add_all": 1000, "values": 2000, "COPY": 4000}),
            measured("read_pk", "ops/s", {"Session.get": 500, "execute + fetchone": 800}),
            OperationResult("setting_read", "setting read", "ops/s", skipped="no globalSetting"),
        ],
        table="pl_sample.Item",
        timed_s=1.5,
        wall_s=3.0,
    )


def scaled(document, factor: float):
    """A copy of a benchmark document with every median multiplied by ``factor``."""
    from matrix.results.benchmark import BenchmarkDocument

    result = BenchmarkDocument.from_dict(document.to_dict())
    for target in result.targets.values():
        for operation in target.result.operations:
            for figure in operation.figures:
                figure.median *= factor
    return result


# -- a package index -----------------------------------------------------------------


@pytest.fixture
def pypi(live, tmp_path) -> PyPI:
    """pypiserver on 127.0.0.1 that asks for a password to upload, list and download."""
    packages = tmp_path / "packages"
    packages.mkdir()
    password = secrets.token_urlsafe(18)
    htpasswd = HtpasswdFile(str(tmp_path / "htpasswd"), new=True)
    htpasswd.set_password("publisher", password)
    htpasswd.save()
    port = free_port()
    log = (tmp_path / "pypiserver.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port)]
        + ["-a", "update,download,list", "-P", str(tmp_path / "htpasswd")]
        + ["--disable-fallback", "--backend", "simple-dir", str(packages)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url + "health", server)
        yield PyPI(url, "publisher", password, packages)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def _wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "pypiserver exited"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError("pypiserver did not answer in 30 s")
