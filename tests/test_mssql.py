"""SQL Server without a live server: honest ``not_run``, the offline scripts rendered.

No SQL Server can run on this machine (its images and packages are not
reachable), so these tests prove what can be proven through the CLI: each
SQL Server target is ``not_run`` with its reason and the run exits 1; the
tutorial's T-SQL scripts are rendered without any connection, split into
batches as sqlcmd would and parsed, which ``offline_sql`` reports as
``not_run`` too (a script is only proven by applying it). The statements the
harness itself sends are compiled in ``test_engines.py``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, cli

from matrix.engines.sqlscript import split_tsql

pytestmark = pytest.mark.live  # builds the tutorial's wheel and its environment
MSSQL_TARGETS = ("mssql2019", "mssql2022", "mssql2025")


@pytest.fixture(scope="module")
def mssql_run(live, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    reports = tmp_path_factory.mktemp("mssql-reports")
    done = cli(
        "run",
        "--plugin",
        str(ROOT / "plugin_under_test"),
        "--targets",  # the SQL Server targets; Babelfish runs live in test_babelfish.py
        ",".join(MSSQL_TARGETS),
        "--reports",
        str(reports),
        "--no-build-images",
        env={"MATRIX_MSSQL_URL": ""},
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
        statuses = {c["name"]: c["status"] for c in target["checks"]}
        assert statuses.pop("single_head") == "passed"
        assert statuses.pop("constraints_named") == "passed"  # judged from the DDL, no server
        assert set(statuses.values()) == {"not_run"}


def test_offline_tsql_is_rendered_and_parsed_but_not_called_proven(mssql_run):
    _, reports = mssql_run
    report = json.loads((reports / "compat.json").read_text())
    for target in report["targets"]:
        offline = next(c for c in target["checks"] if c["name"] == "offline_sql")
        assert offline["status"] == "not_run", offline
        assert "render and parse" in offline["reason"]
        assert "needs a live server" in offline["reason"]
        upgrade = (reports / "sql" / target["id"] / "upgrade.sql").read_text()
        batches = [batch.text for batch in split_tsql(upgrade)]
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
