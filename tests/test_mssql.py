"""SQL Server without a live server: honest ``not_run``, real offline proof.

No SQL Server can run on this machine (its images and packages are not
reachable), so these tests prove what can be proven: each SQL Server target
is reported ``not_run`` with its reason and the run exits non-zero, while the
offline checks render the T-SQL of every revision and sqlglot parses it.
The live path shares its readiness, database and check code with PostgreSQL,
which the other tests run against real servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import cli

from matrix.checks import split_statements

ROOT = Path(__file__).resolve().parent.parent
MSSQL_TARGETS = ("mssql2019", "mssql2022", "mssql2025")


@pytest.fixture(scope="module")
def mssql_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    reports = tmp_path_factory.mktemp("mssql-reports")
    env = {k: v for k, v in os.environ.items() if k != "MATRIX_MSSQL_URL"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "matrix",
            "run",
            "--plugin",
            "plugin_under_test/peek_plugin_tutorial",
            "--engine",
            "mssql",
            "--reports",
            str(reports),
            "--no-build-images",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, reports


def test_unreachable_sql_server_targets_are_not_run_and_the_run_fails(mssql_run):
    done, reports = mssql_run
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((reports / "compat.json").read_text())
    assert report["status"] == "not_run"
    for target in report["targets"]:
        assert target["id"] in MSSQL_TARGETS
        assert target["status"] == "not_run"
        assert target["reason"]  # no engine, no image or no URL: said, not guessed
        live = [c for c in target["checks"] if c["name"] not in ("single_head", "offline_sql")]
        assert {c["status"] for c in live} == {"not_run"}


def test_offline_tsql_is_rendered_and_parsed_for_every_target(mssql_run):
    _, reports = mssql_run
    report = json.loads((reports / "compat.json").read_text())
    for target in report["targets"]:
        offline = next(c for c in target["checks"] if c["name"] == "offline_sql")
        assert offline["status"] == "passed", offline["detail"]
        upgrade = (reports / "sql" / target["id"] / "upgrade.sql").read_text()
        batches = [body for _, body in split_statements(upgrade, "mssql")]
        assert batches[0] == "CREATE SCHEMA [pl_tutorial];"  # alone in its batch
        assert any("pl_tutorial.alembic_version" in b for b in batches)
        assert any("geom geometry" in b for b in batches)
        assert any(b.startswith("CREATE SPATIAL INDEX") for b in batches)


def test_offline_tsql_downgrade_drops_in_dependency_order(mssql_run):
    _, reports = mssql_run
    downgrade = (reports / "sql" / "mssql2022" / "downgrade.sql").read_text()
    order = [
        downgrade.index("DROP INDEX [idx_SpatialFeature_geom]"),
        downgrade.index("DROP TABLE pl_tutorial.[SpatialFeature]"),
        downgrade.index("DROP TABLE pl_tutorial.[SettingProperty]"),
        downgrade.index("DROP TABLE pl_tutorial.[Setting]"),
        downgrade.index("DROP TABLE pl_tutorial.[StringIntTuple]"),
    ]
    assert order == sorted(order)


def test_external_sql_server_url_must_point_at_sql_server(tmp_path):
    done = cli(
        "run",
        "--plugin",
        "plugin_under_test/peek_plugin_tutorial",
        "--targets",
        "mssql2022",
        "--provider",
        "external",
        "--reports",
        str(tmp_path),
        env={"MATRIX_MSSQL_URL": "postgresql://u:p@127.0.0.1:1/x"},
    )
    target = json.loads((tmp_path / "compat.json").read_text())["targets"][0]
    assert done.returncode == 1
    assert target["status"] == "error"
    assert "points at a postgresql server" in target["reason"]
