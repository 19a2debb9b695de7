"""The fast peer: the stack a plugin author who tunes testcontainers would run.

The reference of issue 23, kept outside this repository (``../shared/peer-stack``:
a README, a ``conftest.py``, a ``test_peer.py``, ``run_peer.sh``): a plain
``DockerContainer`` on the host network, a ``SELECT 1`` poll every 0.2 s, one
database for the session, and pytest-alembic's four default tests. Unlike
:mod:`speed.peer` (testcontainers' ``PostgresContainer`` and its default wait
strategy, a fresh database per test) it pays almost nothing beyond the
container's start and the migrations.

Its files are run as they are, from a copy in the benchmark's work folder
(``PEER_IMAGE``, ``PEER_PLUGIN_DIR``, ``PEER_PORT``, as its README says),
with ``-rA`` added so that every test's outcome is read from its output.
The images are the harness's own, tagged ``peer/postgis:<major>`` as the
README asks.

As written it does not run the tutorial plugin: its ``alembic_config`` has no
``file`` (the tutorial's env.py configures logging from ``alembic.ini``),
its ``alembic_engine`` is an ``Engine`` where the tutorial's env.py takes a
``Connection`` from ``config.attributes``, and its database has no PostGIS.
Three of its four tests then fail within a second, which is no reference.
For such a plugin (:attr:`FastPeerCase.adapted`) the copy's conftest gets
:data:`ADAPTATION` appended, three fixtures that override those of the same
name and nothing else; the long plugin needs none of it and runs verbatim.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from speed import peer
from speed.memory import run_sampled
from speed.peer import DEFAULT_TESTS

# The README's environment line, as it is.
REQUIREMENTS = (
    "testcontainers",
    "pytest-alembic",
    "pytest",
    "sqlalchemy",
    "alembic",
    "psycopg2-binary",
    "geoalchemy2",
)
FILES = ("conftest.py", "test_peer.py")
TAG = "peer/postgis"
RUN_TIMEOUT_S = 3600
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) \S*::(\w+)", re.MULTILINE)

ADAPTATION = '''

# -- Appended by scripts/speed/fast_peer.py for a plugin like the tutorial: the three ---
# -- fixtures below replace those of the same name above; nothing else changes.     ---


@pytest.fixture(scope="session", autouse=True)
def postgis(pg_url):
    """PostGIS in the session's one database, once: the plugin's columns are geometries."""
    eng = sa.create_engine(pg_url)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.dispose()


@pytest.fixture
def alembic_config(pg_url):
    """As above, plus the plugin's alembic.ini: its env.py configures logging from it."""
    package = json.loads((PLUGIN / "plugin_package.json").read_text())
    alembic_dir = PLUGIN / package["storage"]["alembicDir"]
    return {
        "script_location": str(alembic_dir),
        "sqlalchemy.url": pg_url,
        "file": str(alembic_dir.parent / "alembic.ini"),
    }


@pytest.fixture
def alembic_engine(pg_url):
    """A Connection: the plugin's env.py takes one from config.attributes, as Peek's tests do."""
    eng = sa.create_engine(pg_url)
    with eng.connect() as conn:
        yield conn
    eng.dispose()
'''


@dataclass(frozen=True)
class FastPeerCase:
    """One plugin for the fast peer: its package folder, and whether it needs the adaptation."""

    name: str
    plugin_dir: Path  # the package folder holding plugin_package.json
    adapted: bool


@dataclass
class FastPeerRun:
    """One timed pytest run of the fast peer on one image."""

    wall_s: float
    returncode: int
    peak_rss_kb: int
    outcomes: dict[str, str] = field(default_factory=dict)  # test -> passed/failed/error
    output: str = ""

    def verdict(self) -> str:
        """``3 passed, 1 failed (test_model_definitions_match_ddl)``."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        text = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        bad = sorted(test for test, outcome in self.outcomes.items() if outcome != "passed")
        return (text or f"no test (exit {self.returncode})") + (
            f" ({', '.join(bad)})" if bad else ""
        )


def tag(image: str) -> str:
    """``peer/postgis:15`` for ``peek-matrix/postgis:15-3.3``, tagged when missing."""
    name = f"{TAG}:{image.rpartition(':')[2].split('-')[0]}"
    present = subprocess.run(
        ["docker", "image", "inspect", name], capture_output=True, check=False, timeout=60
    )
    if present.returncode != 0:
        subprocess.run(["docker", "tag", image, name], check=True, timeout=60)
    return name


def make_environment(folder: Path, python: Path) -> Path:
    """The README's environment (uv when present); its interpreter. Made once, untimed."""
    return peer.make_environment(folder, python, REQUIREMENTS)


def installed_versions(interpreter: Path) -> dict[str, str]:
    names = ("testcontainers", "pytest", "pytest-alembic", "psycopg2-binary", "SQLAlchemy")
    return peer.installed_versions(interpreter, names)


def write_project(stack: Path, folder: Path, case: FastPeerCase) -> Path:
    """A copy of the stack's two files in ``folder``; the adaptation appended when asked."""
    missing = [name for name in FILES if not (stack / name).is_file()]
    if missing:
        raise SystemExit(
            f"the fast peer is not in {stack} (no {', '.join(missing)}): pass --fast-peer DIR, "
            "the folder with its README, conftest.py and test_peer.py"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(stack / name, folder / name)
    if case.adapted:
        with (folder / "conftest.py").open("a") as conftest:
            conftest.write(ADAPTATION)
    return folder


def command(interpreter: Path, project: Path) -> list[str]:
    """The README's command, ``-rA`` added to read every outcome."""
    return [
        str(interpreter),
        "-m",
        "pytest",
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        str(project),
        "-o",
        "python_files=test_peer.py",
    ]


def environment(case: FastPeerCase, image: str, port: int) -> dict[str, str]:
    return {
        "TESTCONTAINERS_RYUK_DISABLED": "true",
        "PEER_IMAGE": image,
        "PEER_PLUGIN_DIR": str(case.plugin_dir),
        "PEER_PORT": str(port),
    }


def reproduce(interpreter: Path, project: Path, case: FastPeerCase, image: str) -> str:
    variables = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in environment(case, image, 55615).items()
    )
    return f"{variables} {shlex.join(command(interpreter, project))}"


def run(interpreter: Path, project: Path, case: FastPeerCase, image: str, port: int) -> FastPeerRun:
    """One pytest run on one image, timed from fork to exit, the container's start included."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        **environment(case, image, port),
    }
    started = time.perf_counter()
    sampled = run_sampled(
        command(interpreter, project), env=env, cwd=project, timeout=RUN_TIMEOUT_S
    )
    wall = time.perf_counter() - started
    found = FastPeerRun(wall, sampled.returncode, sampled.tree_peak_kb, output=sampled.output)
    for outcome, test in _OUTCOME.findall(sampled.output):
        if test in DEFAULT_TESTS:
            found.outcomes[test] = outcome.lower()
    return found
