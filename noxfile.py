"""Sessions of the Peek plugin integration matrix.

``nox -l`` lists them; ``nox -s migrate-postgres`` is the main job. Extra
arguments after ``--`` go to the harness (``nox -s migrate-postgres --
--targets pg15-postgis33 --provider native``). The plugin is whatever
``MATRIX_PLUGIN`` names (default: ``plugin_under_test``, built into a wheel
in ``dist/`` and installed from it, so what is proven is what ships);
``MATRIX_PLUGIN_WITH``, ``MATRIX_PLUGIN_WITH_NO_DEPS`` and
``MATRIX_CONSTRAINTS`` shape its environment (see docs/settings.md).
"""

from __future__ import annotations

import shutil

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"
LINTED = ["matrix", "tests", "noxfile.py", "scripts", "plugin_under_test"]


def _install_harness(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(('all', *extras))}]")


def _dist(session: nox.Session) -> list[str]:
    """``--dist dist``, unless the user's own arguments name a --dist: theirs wins."""
    given = any(arg == "--dist" or arg.startswith("--dist=") for arg in session.posargs)
    return [] if given else ["--dist", "dist"]


def _migrate(session: nox.Session, engine: str) -> None:
    _install_harness(session)
    session.run(
        "python", "-m", "matrix", "run", *_dist(session), "--engine", engine, *session.posargs
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
def site(session: nox.Session) -> None:
    """Rehearse a whole Peek release in one database (site.toml): upgrade, check, roll back."""
    _install_harness(session)
    session.run("python", "-m", "matrix", "site", *session.posargs)


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build the offline PostgreSQL/PostGIS images from Debian packages (no registry)."""
    _install_harness(session)
    session.run("python", "-m", "matrix", "images", "build", *session.posargs)


@nox.session(python=PYTHON, default=False)
def babelfish(session: nox.Session) -> None:
    """Build the Babelfish image babelfish4-tsql runs, once (about 13 min; needs root, Docker and
    the sources in MATRIX_BABELFISH_SOURCES, see docs/babelfish.md): skipped when the image is in
    the local Docker engine, `-- --rebuild` builds it again. Opt-in: never in `nox` alone."""
    _install_harness(session)
    session.run("python", "scripts/babelfish/build.py", *session.posargs)


# The suite on parallel workers: its live tests mostly wait (on servers, containers, child
# processes), so more workers than cores overlap them; tests sharing a module's fixture stay
# on one worker (tests/conftest.py). `-- -n 0` runs it in one process.
PARALLEL = ("-n", "4", "--dist", "loadgroup")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, on parallel workers: `-- -m "not live"` runs the unit tier alone (no
    server, seconds); `-- -n 0 tests/test_x.py` one file in one process."""
    _install_harness(session, "test")
    session.run("pytest", *PARALLEL, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the harness, the plugin and the tests."""
    session.install("ruff")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=False)
def clean(session: nox.Session) -> None:
    """Remove generated reports and built distributions."""
    for path in ("reports", "dist"):
        shutil.rmtree(path, ignore_errors=True)


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build the plugin's sdist and wheel into dist/, reproducibly, and check them."""
    _install_harness(session)
    session.run("python", "-m", "matrix", "build", *_dist(session), *session.posargs)


@nox.session(python=PYTHON)
def publish(session: nox.Session) -> None:
    """Gate on compat.json, then upload the wheel it proves with twine (-- --dry-run to preview).

    The wheel is the one compat.json names (for the tutorial, dist/'s); ``-- --dist DIR``
    says which folder's wheel to release instead.
    """
    _install_harness(session)
    session.run("python", "-m", "matrix", "publish", *session.posargs)


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
        *_dist(session),
        "--engine",
        "postgresql",
        "--screenshot",
        *session.posargs,
    )
