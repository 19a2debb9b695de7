"""The peer stack: testcontainers-python and pytest-alembic, as a plugin author would set them up.

A plugin author who wants the same proof without the harness reaches for
testcontainers (a throwaway PostgreSQL per test session) and pytest-alembic
(four default tests: one head, upgrade to head, models match the DDL, every
revision up, down and up again). This module installs that stack into a
throwaway virtual environment, writes the project a plugin author would
write (a ``pytest.ini`` and a ``tests/conftest.py`` that point pytest-alembic
at the plugin's Alembic folder and MetaData) and times the whole ``pytest``
run, the container's start included.

Departures from the defaults, each forced by this machine or by the stack
itself, none favouring either side:

- the Docker engine has no bridge network, so the container runs on the
  host network with its server on 127.0.0.1 and a free port (``PGPORT``),
  as the harness's own containers do;
- Ryuk, the reaper container testcontainers starts first, is disabled
  (``TESTCONTAINERS_RYUK_DISABLED``): its image cannot be pulled here;
- pytest is pinned below 9: pytest-alembic 0.13's collector sets
  ``_nodeid``, which pytest 9's nodes no longer have.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from speed.memory import run_sampled

REQUIREMENTS = (
    "testcontainers",
    "pytest<9",
    "pytest-alembic",
    "psycopg[binary]",
    "sqlalchemy",
    "alembic",
    "GeoAlchemy2",  # the tutorial's models and env.py import it
)
# The four tests pytest-alembic runs by default (--test-alembic).
DEFAULT_TESTS = (
    "test_single_head_revision",
    "test_upgrade",
    "test_model_definitions_match_ddl",
    "test_up_down_consistency",
)
TIMINGS_ENV = "BENCH_PEER_TIMINGS"
IMAGE_ENV = "PEER_IMAGE"
RUN_TIMEOUT_S = 3600


@dataclass(frozen=True)
class PeerCase:
    """What the peer's conftest points at: image, Alembic folder, MetaData."""

    name: str
    image: str  # the default; PEER_IMAGE overrides it for one run
    alembic_dir: Path
    metadata_module: str  # a module whose ``DeclarativeBase.metadata`` is the model
    import_root: Path  # the folder the plugin package is imported from
    postgis: bool  # CREATE EXTENSION postgis in each test's database, as the harness does
    alembic_ini: Path | None = None  # the plugin's alembic.ini, when its env.py reads one


@dataclass
class PeerRun:
    """One timed ``pytest --test-alembic`` run."""

    wall_s: float
    returncode: int
    peak_rss_kb: int
    outcomes: dict[str, str] = field(default_factory=dict)  # test -> passed/failed/error
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # test -> when -> s
    container_start_s: list[float] = field(default_factory=list)
    container_stop_s: list[float] = field(default_factory=list)
    output: str = ""

    def verdict(self) -> str:
        """``3 passed, 1 failed (test_model_definitions_match_ddl)``."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        text = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        bad = [test for test, outcome in self.outcomes.items() if outcome != "passed"]
        return (text or "no test") + (f" ({', '.join(bad)})" if bad else "")

    def figures(self, revisions: int) -> dict[str, float]:
        """Every number of the run, flat: wall, container, each test, pytest's own share.

        ``per_step_ms`` divides test_up_down_consistency by the steps it runs:
        every revision up, all but the last down, and up again (3n - 2).
        """
        start, stop = sum(self.container_start_s), sum(self.container_stop_s)
        found = {
            "wall": self.wall_s,
            "container.start": start,
            "container.stop": stop,
            "memory.tree_peak_mb": self.peak_rss_kb / 1024,
        }
        for test in DEFAULT_TESTS:
            found[f"test.{test}"] = self.phases.get(test, {}).get("call", 0.0)
        fixtures = sum(p.get("setup", 0.0) + p.get("teardown", 0.0) for p in self.phases.values())
        found["fixtures.databases"] = fixtures - start - stop
        found["pytest.outside_tests"] = self.wall_s - sum(
            sum(p.values()) for p in self.phases.values()
        )
        if revisions and "test_up_down_consistency" in self.phases:
            steps = 3 * revisions - 2
            found["per_step_ms"] = 1000 * found["test.test_up_down_consistency"] / steps
        return found


def make_environment(
    folder: Path, python: Path, requirements: tuple[str, ...] = REQUIREMENTS
) -> Path:
    """A throwaway virtual environment with a peer stack (``requirements``); its interpreter.

    uv when it is on the PATH (seconds), else venv and pip. Made once per
    benchmark, before anything is timed. With its bytecode compiled, as pip
    does by default (the peer's README installs with pip): where
    ``PYTHONDONTWRITEBYTECODE`` is set, a peer without it would compile every
    module it imports at every run, and be timed for that.
    """
    interpreter = folder / "bin" / "python"
    if interpreter.exists():
        return interpreter
    uv = shutil.which("uv")
    if uv:
        _run([uv, "venv", "--quiet", "--python", str(python), str(folder)])
        _run(
            [
                *(uv, "pip", "install", "--quiet", "--compile-bytecode"),
                *("--python", str(interpreter), *requirements),
            ]
        )
    else:
        _run([str(python), "-m", "venv", str(folder)])
        _run([str(interpreter), "-m", "pip", "install", "--quiet", *requirements])
    return interpreter


VERSIONS = ("testcontainers", "pytest", "pytest-alembic", "psycopg", "SQLAlchemy", "alembic")


def installed_versions(interpreter: Path, names: tuple[str, ...] = VERSIONS) -> dict[str, str]:
    """The versions of a peer stack's distributions, for the report."""
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(interpreter), "-c", code, *names], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stdout}{done.stderr}")


def write_project(folder: Path, case: PeerCase) -> Path:
    """The peer's pytest project: ``pytest.ini`` and ``tests/conftest.py``; its folder."""
    tests = folder / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text(
        "[pytest]\npytest_alembic_tests_path = tests/conftest.py\naddopts = -p no:cacheprovider\n"
    )
    constants = "\n".join(
        [
            f"IMAGE = {case.image!r}",
            f"IMAGE_ENV = {IMAGE_ENV!r}",
            f"ALEMBIC_DIR = {str(case.alembic_dir)!r}",
            f"ALEMBIC_INI = {str(case.alembic_ini) if case.alembic_ini else None!r}",
            f"METADATA_MODULE = {case.metadata_module!r}",
            f"POSTGIS = {case.postgis!r}",
            f"TIMINGS_ENV = {TIMINGS_ENV!r}",
        ]
    )
    (tests / "conftest.py").write_text(CONFTEST_HEAD + constants + "\n" + CONFTEST_BODY)
    return folder


def command(interpreter: Path) -> list[str]:
    """The pytest command the project runs with (from its folder)."""
    return [str(interpreter), "-m", "pytest", "--test-alembic", "-q", "-rA"]


def environment(case: PeerCase, image: str | None = None) -> dict[str, str]:
    """The variables the peer runs with, beyond the caller's own."""
    variables = {"TESTCONTAINERS_RYUK_DISABLED": "true", "PYTHONPATH": str(case.import_root)}
    if image and image != case.image:
        variables[IMAGE_ENV] = image
    return variables


def reproduce(interpreter: Path, project: Path, case: PeerCase, image: str | None = None) -> str:
    """The shell line that runs the peer exactly as the benchmark does."""
    variables = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment(case, image).items())
    return f"cd {shlex.quote(str(project))} && {variables} {shlex.join(command(interpreter))}"


def run(interpreter: Path, project: Path, case: PeerCase, image: str | None = None) -> PeerRun:
    """Run the four default tests once; the whole run timed, container start included."""
    timings = project / "timings.jsonl"
    timings.unlink(missing_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        **environment(case, image),
        TIMINGS_ENV: str(timings),
    }
    started = time.perf_counter()
    sampled = run_sampled(command(interpreter), env=env, cwd=project, timeout=RUN_TIMEOUT_S)
    wall = time.perf_counter() - started
    result = PeerRun(wall, sampled.returncode, sampled.tree_peak_kb, output=sampled.output)
    for line in timings.read_text().splitlines() if timings.exists() else []:
        _absorb(result, json.loads(line))
    return result


def _absorb(result: PeerRun, event: dict) -> None:
    """One line the conftest recorded: a test's phase, or a container's start or stop."""
    if "test" in event:
        test, when = event["test"], event["when"]
        result.phases.setdefault(test, {})[when] = event["seconds"]
        if when == "call":
            result.outcomes[test] = event["outcome"]
        elif event["outcome"] != "passed":
            result.outcomes.setdefault(test, "error")
    elif "start" in event:
        result.container_start_s.append(event["start"])
    elif "stop" in event:
        result.container_stop_s.append(event["stop"])


CONFTEST_HEAD = '''"""pytest-alembic's four default tests on a testcontainers PostgreSQL.

Written by scripts/harness_speed.py; run with ``pytest --test-alembic``. The
Docker engine here has no bridge network, so the container runs on the host
network with its server on 127.0.0.1 and a free port; everything else is
testcontainers' and pytest-alembic's defaults. Each test gets a fresh
database on the session's server, as pytest-alembic asks of its
``alembic_engine`` fixture (a database the test may migrate from empty).
"""

import importlib
import itertools
import json
import os
import secrets
import socket
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

try:
    from testcontainers.community.postgres import PostgresContainer
except ImportError:  # testcontainers before the community split
    from testcontainers.postgres import PostgresContainer

'''

CONFTEST_BODY = '''

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _record(**event) -> None:
    """Append one timing to the benchmark's file, when the benchmark runs this."""
    path = os.environ.get(TIMINGS_ENV)
    if path:
        with open(path, "a") as timings:
            timings.write(json.dumps(event) + "\\n")


class HostNetworkPostgres(PostgresContainer):
    """testcontainers' PostgreSQL on the host network, its server on 127.0.0.1 only."""

    def __init__(self, image: str) -> None:
        port = _free_port()
        super().__init__(
            image,
            port=port,
            username="peer",
            password=secrets.token_hex(16),
            dbname="peer",
            driver="psycopg",
        )
        self.ports = {}  # nothing to publish: the host network has no port mapping
        self.with_env("PGPORT", str(port))
        self.with_command("postgres -c listen_addresses=127.0.0.1")
        self.with_kwargs(network_mode="host")

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def _get_exposed_port(self, port: int) -> int:
        return port


def pytest_runtest_logreport(report) -> None:
    _record(
        test=report.nodeid.rpartition("::")[2],
        when=report.when,
        seconds=report.duration,
        outcome=report.outcome,
    )


@pytest.fixture(scope="session")
def postgres():
    """One server for the session; ``PEER_IMAGE`` picks another version.

    Not a parametrized fixture: pytest-alembic's tests are not functions
    pytest can parametrize, so a matrix runs pytest once per image.
    """
    image = os.environ.get(IMAGE_ENV) or IMAGE
    started = time.perf_counter()
    container = HostNetworkPostgres(image).start()
    _record(image=image, start=time.perf_counter() - started)
    try:
        yield container
    finally:
        stopping = time.perf_counter()
        container.stop()
        _record(image=image, stop=time.perf_counter() - stopping)


_NAMES = itertools.count()


@pytest.fixture
def alembic_engine(postgres):
    """A fresh database for each test, on the session's server."""
    server_url = sa.make_url(postgres.get_connection_url())
    name = f"test_{next(_NAMES)}"
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(server_url.set(database=name), poolclass=NullPool)
    try:
        if POSTGIS:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def alembic_config(alembic_engine):
    """The plugin's Alembic folder, its MetaData, and this test's database URL.

    A Peek env.py reads ``sqlalchemy.url`` from the Alembic config; one that
    accepts a caller's connection finds it in ``config.attributes``, where
    pytest-alembic puts the ``alembic_engine`` fixture's.
    """
    metadata = importlib.import_module(METADATA_MODULE).DeclarativeBase.metadata
    url = alembic_engine.engine.url.render_as_string(hide_password=False)
    options = {"script_location": ALEMBIC_DIR, "sqlalchemy.url": url, "target_metadata": metadata}
    if ALEMBIC_INI:
        options["file"] = ALEMBIC_INI
    return options
'''
