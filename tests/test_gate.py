"""The release gate refuses every report that does not prove this build.

The decision is tested as the pure function it is, on reports for the real
matrix file; the command is tested end to end on a real matrix run of the
tutorial wheel against the live PostgreSQL + PostGIS server, where the SQL
Server targets are ``not_run`` (no server here) and the other PostgreSQL
versions are missing, exactly the situation a release engineer meets here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from matrix.definition import load_matrix
from matrix.errors import HarnessError
from matrix.gate import Build, Cause, evaluate, find_wheel
from matrix.results import CheckResult, PluginInfo, RunReport, Status, TargetResult

ROOT = Path(__file__).resolve().parent.parent
MATRIX = load_matrix()
SHA = "a" * 64
COMMIT = "c0ffee" * 6 + "c0ff"
BUILD = Build(Path("dist/peek_plugin_tutorial-1.0.0-py3-none-any.whl"), SHA, COMMIT)
MSSQL = ["mssql2019", "mssql2022", "mssql2025"]
OTHER_PG = ["pg13-postgis31", "pg17-postgis35"]


def report_with(statuses: dict[str, Status], sha: str | None = SHA, commit: str | None = COMMIT):
    """A report of the real matrix: every target passed, except as ``statuses`` says.

    A status of ``None`` leaves the target out of the report.
    """
    targets = []
    for target in MATRIX.targets:
        status = statuses.get(target.id, Status.PASSED)
        if status is not None:
            reason = "no server could serve it" if status == Status.NOT_RUN else ""
            result = TargetResult(target.id, target.engine, target.label, True, status, reason)
            targets.append(result)
    plugin = PluginInfo("peek_plugin_tutorial", "1.0.0", "wheel" if sha else "in-place", None, sha)
    return RunReport(plugin, commit, "run1", "2026-01-01T00:00:00+00:00", "targets.toml", targets)


def test_every_required_target_passed_for_this_build_passes():
    verdict = evaluate(report_with({}), MATRIX, BUILD)
    assert verdict.passed
    assert verdict.refusals == [] and verdict.waived == [] and verdict.notes == []


@pytest.mark.parametrize(
    ("status", "cause", "words"),
    [
        (Status.FAILED, Cause.FAILED, "is required and failed"),
        (Status.ERROR, Cause.ERROR, "is required and error"),
        (Status.NOT_RUN, Cause.NOT_RUN, "is required but was not run (no server could serve it)"),
        (None, Cause.MISSING, "is required but missing from compat.json"),
    ],
)
def test_each_required_target_that_did_not_pass_is_one_reason(status, cause, words):
    verdict = evaluate(report_with({"pg17-postgis35": status}), MATRIX, BUILD)
    assert not verdict.passed
    (refusal,) = verdict.refusals
    assert (refusal.cause, refusal.target) == (cause, "pg17-postgis35")
    assert refusal.message.startswith("pg17-postgis35 (PostgreSQL 17 + PostGIS 3.5) ")
    assert words in refusal.message
    assert "python -m matrix run --targets pg17-postgis35" in refusal.message


def test_a_failed_target_names_the_checks_that_failed():
    report = report_with({"pg13-postgis31": Status.FAILED})
    report.targets[0].checks = [
        CheckResult("single_head", Status.PASSED),
        CheckResult("reupgrade", Status.FAILED, detail="table left behind"),
        CheckResult("data_survives", Status.ERROR, detail="connection lost"),
    ]
    (refusal,) = evaluate(report, MATRIX, BUILD).refusals
    assert "is required and failed (checks reupgrade, data_survives); fix the plugin" in (
        refusal.message
    )


def test_a_report_for_another_wheel_and_commit_is_refused_with_every_reason():
    report = report_with({"mssql2019": Status.FAILED}, sha="b" * 64, commit="d" * 40)
    verdict = evaluate(report, MATRIX, BUILD)
    causes = [r.cause for r in verdict.refusals]
    assert causes == [Cause.OTHER_WHEEL, Cause.OTHER_COMMIT, Cause.FAILED]
    wheel, commit, _ = (r.message for r in verdict.refusals)
    assert f"proves wheel sha256 {'b' * 64}" in wheel and SHA in wheel
    assert "rerun the matrix on this wheel" in wheel
    assert f"about commit {'d' * 40}, but this is commit {COMMIT}" in commit


def test_a_report_that_names_no_commit_proves_no_commit():
    report = report_with({}, commit=None)
    (refusal,) = evaluate(report, MATRIX, Build(BUILD.wheel, SHA, None)).refusals
    assert refusal.cause == Cause.OTHER_COMMIT
    assert "compat.json is about commit unknown, but this is commit unknown" in refusal.message


def test_a_report_of_the_plugin_used_in_place_proves_no_wheel():
    verdict = evaluate(report_with({}, sha=None), MATRIX, BUILD)
    (refusal,) = verdict.refusals
    assert refusal.cause == Cause.OTHER_WHEEL
    assert "proves the in-place plugin" in refusal.message


def test_allow_missing_waives_missing_and_not_run_but_never_a_failure():
    statuses = {"mssql2019": Status.NOT_RUN, "mssql2022": None, "mssql2025": Status.FAILED}
    verdict = evaluate(report_with(statuses), MATRIX, BUILD, frozenset(MSSQL + ["pg15-postgis33"]))
    assert verdict.waived == ["mssql2019", "mssql2022"]
    (refusal,) = verdict.refusals
    assert refusal.target == "mssql2025"
    assert "--allow-missing does not waive a failed target" in refusal.message
    assert verdict.notes == ["--allow-missing mssql2025, pg15-postgis33: nothing to waive."]


def test_allow_missing_with_an_unknown_id_is_a_usage_error():
    with pytest.raises(HarnessError, match="mssql2030, not a target"):
        evaluate(report_with({}), MATRIX, BUILD, frozenset({"mssql2030"}))


def test_targets_the_matrix_does_not_require_are_noted_not_refused(tmp_path):
    lax = tmp_path / "lax.toml"
    text = (ROOT / "matrix" / "targets.toml").read_text()
    lax.write_text(text.replace("required = true", "required = false"))
    verdict = evaluate(report_with({"mssql2019": Status.FAILED}), load_matrix(lax), BUILD)
    assert verdict.passed
    assert verdict.notes == ["mssql2019 is failed; not required."]


def test_the_wheel_to_gate_must_be_the_only_one_in_dist(tmp_path):
    with pytest.raises(HarnessError, match="no wheel in"):
        find_wheel(tmp_path)
    for name in ("a-1.0-py3-none-any.whl", "a-2.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(HarnessError, match="holds 2 wheels"):
        find_wheel(tmp_path)


# -- the command, on a real run ------------------------------------------------------


def gate_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matrix", "gate", *args],
        cwd=ROOT,
        env={**os.environ, "CI_COMMIT_SHA": COMMIT, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The tutorial plugin built as a release builds it."""
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "matrix", "build", "--dist", str(dist)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dist


@pytest.fixture(scope="module")
def module_run(pg_server_url, dist, tmp_path_factory) -> Path:
    """PostgreSQL 15 passed, SQL Server not_run: the real matrix on this machine."""
    (wheel,) = dist.glob("*.whl")
    reports = tmp_path_factory.mktemp("reports")
    done = subprocess.run(
        [sys.executable, "-m", "matrix", "run", "--plugin", str(wheel), "--reports", str(reports)]
        + ["--targets", ",".join(["pg15-postgis33", *MSSQL]), "--provider", "external"],
        cwd=ROOT,
        env={
            **os.environ,
            "CI_COMMIT_SHA": COMMIT,
            "MATRIX_POSTGRESQL_URL": pg_server_url.render_as_string(hide_password=False),
            "MATRIX_MSSQL_URL": "",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    statuses = {
        t["id"]: t["status"] for t in json.loads((reports / "compat.json").read_text())["targets"]
    }
    assert statuses == {"pg15-postgis33": "passed", **dict.fromkeys(MSSQL, "not_run")}, done.stdout
    return reports


@pytest.fixture
def reports(module_run, tmp_path) -> Path:
    """This test's own copy: a passing gate writes into the reports."""
    return Path(shutil.copytree(module_run, tmp_path / "reports"))


def test_gate_refuses_sql_server_not_run_and_says_why(reports, dist):
    done = gate_cli("--reports", str(reports), "--dist", str(dist))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "REFUSED, 5 reasons:" in out
    for target_id in MSSQL:
        assert f"- {target_id} (SQL Server {target_id[-4:]}) is required but was not run" in out
        assert f"--allow-missing {target_id} to release without it on purpose" in out
    assert "MATRIX_MSSQL_URL" in out
    for target_id in OTHER_PG:
        assert f"- {target_id} " in out and "missing from compat.json" in out
    assert "pg15-postgis33 (" not in out
    report = json.loads((reports / "compat.json").read_text())
    assert report["allowed_missing"] == []


def test_allow_missing_passes_and_is_written_into_the_report(reports, dist):
    waived = [*OTHER_PG, *MSSQL]
    done = gate_cli(
        "--reports",
        str(reports),
        "--dist",
        str(dist),
        "--allow-missing",
        "pg13-postgis31",
        env={"MATRIX_ALLOW_MISSING": "pg17-postgis35, mssql2019 mssql2022,mssql2025"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED: every required target passed" in done.stdout
    assert f"allowed missing (deliberate): {', '.join(waived)}" in done.stdout
    report = json.loads((reports / "compat.json").read_text())
    assert report["allowed_missing"] == sorted(waived)
    markdown = (reports / "compat.md").read_text()
    assert "## Release gate" in markdown
    assert "Allowed missing (deliberate exception, `--allow-missing`): `pg13-postgis31`" in markdown


def test_gate_refuses_a_report_for_another_commit(reports, dist):
    done = gate_cli(
        "--reports",
        str(reports),
        "--dist",
        str(dist),
        *[arg for i in [*OTHER_PG, *MSSQL] for arg in ("--allow-missing", i)],
        env={"CI_COMMIT_SHA": "f" * 40},
    )
    assert done.returncode == 1
    assert "REFUSED, 1 reason:" in done.stdout
    assert f"compat.json is about commit {COMMIT}, but this is commit {'f' * 40}" in done.stdout


def test_missing_inputs_are_one_paragraph_and_exit_2(tmp_path, dist):
    def error(*args: str) -> str:
        done = gate_cli(*args)
        assert done.returncode == 2, done.stdout
        assert "Traceback" not in done.stderr
        return " ".join(done.stderr.split())  # one paragraph, however the terminal wraps

    assert f"There is no report at {tmp_path}/compat.json. Run the matrix first" in error(
        "--reports", str(tmp_path), "--dist", str(dist)
    )
    (tmp_path / "compat.json").write_text("{}")
    assert "is not a matrix report" in error("--reports", str(tmp_path), "--dist", str(dist))
    (tmp_path / "compat.json").write_text(json.dumps(report_with({}).to_dict(), default=str))
    assert f"There is no wheel in {tmp_path}, so there is nothing to gate. Build it first" in error(
        "--reports", str(tmp_path), "--dist", str(tmp_path)
    )
