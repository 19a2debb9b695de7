"""Shared fixtures: one real PostgreSQL + PostGIS server for the whole session.

The server is started by the harness's own native provider (initdb + pg_ctl
on a free 127.0.0.1 port), so these fixtures also exercise that provider.
Tests that need the full matrix run it through the CLI, exactly as a user
does, against this server through the external provider.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from matrix import databases
from matrix.definition import load_matrix
from matrix.providers.native import NativeProvider

ROOT = Path(__file__).resolve().parent.parent
PG_TARGET = "pg15-postgis33"


@pytest.fixture(scope="session")
def pg_server_url() -> URL:
    """Superuser URL of a live PostgreSQL 15 + PostGIS server (maintenance db)."""
    target = next(t for t in load_matrix().targets if t.id == PG_TARGET)
    provider = NativeProvider()
    reason = provider.unavailable_reason(target)
    assert reason is None, f"the tests need a local PostgreSQL 15 + PostGIS: {reason}"
    with provider.database(target, log=lambda message: None) as db:
        yield db.url.set(database="postgres")


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
