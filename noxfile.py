"""Sessions of the Peek plugin integration matrix.

``nox -l`` lists them; ``nox -s migrate-postgres`` is the main job. Extra
arguments after ``--`` go to the harness (``nox -s migrate-postgres --
--targets pg15-postgis33 --provider native``). The plugin is always built into
a wheel in ``dist/`` and installed from it, so what is proven is what ships.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

PLUGIN = os.environ.get("MATRIX_PLUGIN", "plugin_under_test")
PYTHON = "3.11"


def _install_harness(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


def _migrate(session: nox.Session, engine: str) -> None:
    _install_harness(session)
    session.run(
        "python",
        "-m",
        "matrix",
        "run",
        "--plugin",
        PLUGIN,
        "--dist",
        "dist",
        "--engine",
        engine,
        *session.posargs,
    )


@nox.session(name="migrate-postgres", python=PYTHON)
def migrate_postgres(session: nox.Session) -> None:
    """Run the plugin's migrations on every PostgreSQL/PostGIS target and check them."""
    _migrate(session, "postgresql")


@nox.session(name="migrate-mssql", python=PYTHON)
def migrate_mssql(session: nox.Session) -> None:
    """Run the plugin's migrations on every SQL Server target (not_run without a server)."""
    _migrate(session, "mssql")


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build the offline PostgreSQL/PostGIS images from Debian packages (no registry)."""
    _install_harness(session)
    session.run("python", "-m", "matrix", "images", "build", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the harness's test suite against real servers (PostgreSQL, Docker, pypiserver)."""
    _install_harness(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the harness, the plugin and the tests."""
    session.install("ruff")
    paths = ["matrix", "tests", "noxfile.py", "scripts", PLUGIN]
    session.run("ruff", "check", *[p for p in paths if os.path.exists(p)])
    session.run("ruff", "format", "--check", *[p for p in paths if os.path.exists(p)])


@nox.session(python=False)
def clean(session: nox.Session) -> None:
    """Remove generated reports and built distributions."""
    for path in ("reports", "dist"):
        shutil.rmtree(path, ignore_errors=True)


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build the plugin's sdist and wheel into dist/, reproducibly, and check them."""
    _install_harness(session)
    session.run("python", "-m", "matrix", "build", "--plugin", PLUGIN, "--dist", "dist")


@nox.session(python=PYTHON)
def publish(session: nox.Session) -> None:
    """Gate on compat.json, then upload dist/'s wheel with twine (-- --dry-run to preview)."""
    _install_harness(session)
    session.run("python", "-m", "matrix", "publish", "--dist", "dist", *session.posargs)


@nox.session(python=PYTHON)
def benchmark(session: nox.Session) -> None:
    """Benchmark session throughput (ORM beside the raw driver) on every PostgreSQL target.

    Writes reports/benchmark.json, reports/index.html and reports/index.png. Options go
    after ``--``: ``--engine mssql``, ``--rows 5000``, ``--save-baseline FILE``,
    ``--compare FILE``.
    """
    _install_harness(session)
    session.run(
        "python",
        "-m",
        "matrix",
        "bench",
        "--plugin",
        PLUGIN,
        "--dist",
        "dist",
        "--engine",
        "postgresql",
        "--screenshot",
        *session.posargs,
    )
