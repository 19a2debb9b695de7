"""Bad input gets one clear paragraph, a non-zero exit and no traceback.

And a run that cannot reach a database says ``not_run``, never ``passed``,
while keeping every result it gathered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_factory import PluginSpec, healthy_revisions, write_plugin

from matrix.definition import load_matrix
from matrix.errors import MatrixFileError

ROOT = Path(__file__).resolve().parent.parent
MATRIX_FILE = ROOT / "matrix" / "targets.toml"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matrix", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def assert_clear_error(done: subprocess.CompletedProcess, *phrases: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "error:" in output
    for phrase in phrases:
        assert phrase in " ".join(output.split()), output


def run_external(tmp_path: Path, name: str, url: str, *extra: str):
    """Run a fresh healthy plugin on pg15 through the external provider at ``url``."""
    package = write_plugin(tmp_path / "src", PluginSpec(name, healthy_revisions()))
    reports = tmp_path / "reports"
    done = cli(
        "run",
        "--plugin",
        str(package),
        "--targets",
        "pg15-postgis33",
        "--provider",
        "external",
        "--reports",
        str(reports),
        *extra,
        env={"MATRIX_POSTGRESQL_URL": url},
    )
    return done, reports


def test_malformed_matrix_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 1\n[[target]\nid = 'x'\n")
    assert_clear_error(cli("list", "--matrix", str(bad)), "is not valid TOML", "line")


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (
            lambda t: t.replace(
                'engine = "mssql"\nversion = "2019"', 'engine = "oracle"\nversion = "2019"'
            ),
            "unknown engine 'oracle'",
        ),
        (lambda t: t.replace("required = true\n", 'required = "yes"\n', 1), "not a bool"),
        (lambda t: t.replace('id = "pg15-postgis33"', 'id = "pg13-postgis31"'), "twice"),
        (
            lambda t: t.replace(
                'providers = ["docker", "native", "external"]', 'providers = ["podman"]', 1
            ),
            "providers ['podman']",
        ),
        (lambda t: t.replace("schema_version = 1", "schema_version = 7"), "schema_version 7"),
    ],
)
def test_invalid_matrix_fields_name_the_target_and_field(tmp_path, edit, phrase):
    path = tmp_path / "matrix.toml"
    path.write_text(edit(MATRIX_FILE.read_text()))
    with pytest.raises(MatrixFileError) as caught:
        load_matrix(path)
    assert phrase in str(caught.value)


def test_unknown_target_id_is_a_clear_error():
    assert_clear_error(
        cli("run", "--targets", "pg99-nope"),
        "Unknown target id 'pg99-nope'",
        "python -m matrix list",
    )


def test_plugin_without_storage_section_is_a_clear_error(tmp_path):
    spec = PluginSpec("nostorage", healthy_revisions(), storage_section=False)
    package = write_plugin(tmp_path, spec)
    done = cli("run", "--plugin", str(package), "--targets", "pg15-postgis33")
    assert_clear_error(done, "does not use Peek's storage service", '"alembicDir"')


def test_plugin_path_that_is_nothing_is_a_clear_error(tmp_path):
    assert_clear_error(cli("run", "--plugin", str(tmp_path)), "holds no plugin_package.json")


def test_verbose_shows_the_traceback(tmp_path):
    done = cli("run", "-v", "--plugin", str(tmp_path))
    assert done.returncode == 2
    assert "Traceback" in done.stderr


def test_unreachable_database_is_not_run_and_offline_checks_still_run(tmp_path):
    done, reports = run_external(tmp_path, "unreached", "")
    assert done.returncode == 1, done.stdout + done.stderr
    target = json.loads((reports / "compat.json").read_text())["targets"][0]
    assert target["status"] == "not_run"
    assert "MATRIX_POSTGRESQL_URL" in target["reason"]
    statuses = {c["name"]: c["status"] for c in target["checks"]}
    assert statuses["offline_sql"] == "passed" and statuses["single_head"] == "passed"
    assert statuses["upgrade_stepwise"] == "not_run"
    assert (reports / "sql" / "pg15-postgis33" / "upgrade.sql").exists()
    assert "not_run" in (reports / "compat.md").read_text()
    assert "<skipped" in (reports / "junit.xml").read_text()


def test_server_that_refuses_logins_is_an_error_with_the_cause(tmp_path):
    secret = "Sup3r-Secret-Pw"
    quick = tmp_path / "quick.toml"
    quick.write_text(MATRIX_FILE.read_text().replace("ready_timeout = 90", "ready_timeout = 2"))
    done, reports = run_external(
        tmp_path, "refused", f"postgresql://peek:{secret}@127.0.0.1:1/peek", "--matrix", str(quick)
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1
    report = (reports / "compat.json").read_text()
    assert '"status": "error"' in report
    assert "did not accept a login" in report
    assert secret not in output and secret not in report  # masked everywhere


def test_secrets_of_a_live_run_never_reach_the_reports(run_matrix_cli, pg_server_url, tmp_path):
    package = write_plugin(tmp_path / "src", PluginSpec("masked", healthy_revisions()))
    run = run_matrix_cli(
        "--plugin", str(package), "--targets", "pg15-postgis33", "--provider", "external"
    )
    assert run.exit_code == 0, run.output
    password = pg_server_url.password
    assert password and password not in run.output
    for path in run.reports.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(errors="replace"), path


def test_runs_of_the_same_build_add_up_and_other_builds_are_dropped(run_matrix_cli, tmp_path):
    package = write_plugin(tmp_path / "src", PluginSpec("addsup", healthy_revisions()))
    reports = tmp_path / "shared-reports"
    common = ("--plugin", str(package), "--reports", str(reports))
    first = run_matrix_cli(*common, "--targets", "pg15-postgis33", "--provider", "external")
    assert first.exit_code == 0, first.output
    second = cli(
        "run",
        *common,
        "--targets",
        "mssql2022",
        "--provider",
        "external",
        env={"MATRIX_MSSQL_URL": ""},
    )
    assert second.returncode == 1
    statuses = {
        t["id"]: t["status"] for t in json.loads((reports / "compat.json").read_text())["targets"]
    }
    assert statuses == {"pg15-postgis33": "passed", "mssql2022": "not_run"}

    other = write_plugin(tmp_path / "other", PluginSpec("otherbuild", healthy_revisions()))
    cli(
        "run",
        "--plugin",
        str(other),
        "--reports",
        str(reports),
        "--targets",
        "mssql2019",
        "--provider",
        "external",
        env={"MATRIX_MSSQL_URL": ""},
    )
    report = json.loads((reports / "compat.json").read_text())
    assert [t["id"] for t in report["targets"]] == ["mssql2019"]
    assert sorted(p.name for p in (reports / "targets").iterdir()) == ["mssql2019.json"]
