"""The release gate refuses every report that does not prove this build.

The decision is tested as the pure function it is, on reports for the real
matrix file built from the typed results (``helpers``), including forged
ones: a report whose pieces disagree proves nothing. The command is tested
end to end on a real matrix run of the tutorial wheel against the live
PostgreSQL + PostGIS server, where the SQL Server targets are ``not_run``
(no server here) and the other PostgreSQL versions are missing, exactly the
situation a release engineer meets here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import (
    BUILD,
    COMMIT,
    MATRIX,
    PUBLISHED,
    SHA,
    checks,
    evidence,
    judged,
    report,
    target,
    unreached,
)

from matrix.cli import ExitCode, main
from matrix.define.targets import load_matrix
from matrix.errors import HarnessError
from matrix.gate import Build, Cause, Evidence, evaluate, find_wheel, load_evidence, render
from matrix.report import ReportWriter
from matrix.results import REPORT_SCHEMA_VERSION, CheckResult, Finding, Status

ROOT = Path(__file__).resolve().parent.parent
MSSQL = ["mssql2019", "mssql2022", "mssql2025"]
OTHER_PG = ["pg13-postgis31", "pg17-postgis35"]
PG = "pg15-postgis33"
DROPPED = Finding("table_dropped", "table cache dropped with its rows", "4795161756fc")
ACKNOWLEDGED = replace(DROPPED, waived="the cache is rebuilt")


def test_every_required_target_passed_for_this_build_passes():
    verdict = evaluate(evidence(report()), MATRIX, BUILD)
    assert verdict.passed
    assert verdict.refusals == [] and verdict.allowed_missing == [] and verdict.notes == []


@pytest.mark.parametrize(
    ("result", "cause", "words"),
    [
        (
            target("pg17-postgis35", with_checks=checks(reupgrade=judged("reupgrade", DROPPED))),
            Cause.FAILED,
            "is required and failed (checks reupgrade; reupgrade: table cache dropped with",
        ),
        (
            target(
                "pg17-postgis35", with_checks=[], fatal={"status": "error", "reason": "server died"}
            ),
            Cause.ERROR,
            "is required and error (server died)",
        ),
        (
            unreached("pg17-postgis35"),
            Cause.NOT_RUN,
            "is required but was not run (no server could serve it)",
        ),
        (None, Cause.MISSING, "is required but missing from compat.json"),
    ],
)
def test_each_required_target_that_did_not_pass_is_one_reason(result, cause, words):
    run = report(result) if result else report(absent=("pg17-postgis35",))
    verdict = evaluate(evidence(run), MATRIX, BUILD)
    assert not verdict.passed
    (refusal,) = verdict.refusals
    assert (refusal.cause, refusal.target) == (cause, "pg17-postgis35")
    assert refusal.message.startswith("pg17-postgis35 (PostgreSQL 17 + PostGIS 3.5) ")
    assert words in refusal.message
    assert "python -m matrix run --targets pg17-postgis35" in refusal.message


def test_a_failed_target_names_every_check_that_failed():
    broken = checks(
        reupgrade=judged("reupgrade", DROPPED),
        data_survives=CheckResult("data_survives", Status.ERROR, reason="connection lost"),
    )
    result = target("pg13-postgis31", with_checks=broken)
    (refusal,) = evaluate(evidence(report(result)), MATRIX, BUILD).refusals
    assert (
        "is required and error (checks reupgrade, data_survives; data_survives: connection lost)"
        "; fix the plugin"
    ) in refusal.message


def test_a_report_for_another_wheel_and_commit_is_refused_with_every_reason():
    failed = target("mssql2019", with_checks=checks(reupgrade=judged("reupgrade", DROPPED)))
    run = report(failed, sha="b" * 64, commit="d" * 40)
    verdict = evaluate(evidence(run), MATRIX, BUILD)
    causes = [r.cause for r in verdict.refusals]
    assert causes == [Cause.OTHER_WHEEL, Cause.OTHER_COMMIT, Cause.FAILED]
    wheel, commit, _ = (r.message for r in verdict.refusals)
    assert f"proves the wheel {BUILD.wheel.name} (sha256 {'b' * 64})" in wheel and SHA in wheel
    assert "that is not the wheel the matrix ran; rerun the matrix on it" in wheel
    assert f"about plugin_under_test at commit {'d' * 40}, but it is now at commit {COMMIT}" in (
        commit
    )


def test_a_published_plugin_records_no_commit_and_is_gated_on_its_bytes_alone():
    """A requirement was not built from any tree here: there is no commit to compare."""
    run = report(source=PUBLISHED)
    assert run.plugin.commit is None
    verdict = evaluate(evidence(run), MATRIX, Build(BUILD.wheel, SHA, None))
    assert verdict.passed, verdict.refusals
    assert "commit" not in render(verdict).split("PASSED")[1].split("\n")[0]
    other = evaluate(evidence(run), MATRIX, Build(BUILD.wheel, "f" * 64, None))
    assert [r.cause for r in other.refusals] == [Cause.OTHER_WHEEL]


def test_a_recorded_commit_whose_tree_cannot_say_its_commit_now_is_refused():
    (refusal,) = evaluate(evidence(report()), MATRIX, Build(BUILD.wheel, SHA, None)).refusals
    assert refusal.cause == Cause.OTHER_COMMIT
    assert f"at commit {COMMIT}, but it is now at commit unknown" in refusal.message


def test_a_report_of_the_plugin_used_in_place_proves_no_wheel():
    (refusal,) = evaluate(evidence(report(sha=None, commit=None)), MATRIX, BUILD).refusals
    assert refusal.cause == Cause.OTHER_WHEEL
    assert "proves a package folder used in place, no wheel" in refusal.message


RUN_OPTIONS = (
    "--plugin",
    "peek-plugin-chat==5.1.6",
    "--with",
    "Twisted<26",
    "--with-no-deps",
    "peek-platform==5.1.6",
    "--policy",
    "chat-policy.toml",
    "--previous",
    "auto",
    "--reports",
    "reports/chat",
)
RERUN = (
    "python -m matrix run --targets pg17-postgis35 --plugin peek-plugin-chat==5.1.6 "
    "--with 'Twisted<26' --with-no-deps peek-platform==5.1.6 --policy chat-policy.toml "
    "--previous auto --reports reports/chat"
)


@pytest.mark.parametrize(
    "result",
    [
        unreached("pg17-postgis35"),
        target("pg17-postgis35", with_checks=checks(reupgrade=judged("reupgrade", DROPPED))),
        None,
    ],
    ids=["not_run", "failed", "missing"],
)
def test_suggested_commands_repeat_the_runs_own_options(result):
    """Following a suggestion must test the same plugin, environment, policy and reports."""
    replaced, absent = ((result,), ()) if result else ((), ("pg17-postgis35",))
    run = report(*replaced, absent=absent, source=PUBLISHED, run_options=RUN_OPTIONS)
    (refusal,) = evaluate(evidence(run), MATRIX, Build(BUILD.wheel, SHA, None)).refusals
    assert RERUN in refusal.message


def test_a_wheel_that_is_not_the_proven_one_is_rerun_with_that_wheel():
    run = report(source=PUBLISHED, run_options=RUN_OPTIONS)
    other = Build(Path("dist/peek_plugin_tutorial-1.0.0-py3-none-any.whl"), "f" * 64, None)
    (refusal,) = evaluate(evidence(run), MATRIX, other).refusals
    assert (
        "python -m matrix run --plugin dist/peek_plugin_tutorial-1.0.0-py3-none-any.whl "
        "--with 'Twisted<26' --with-no-deps peek-platform==5.1.6"
    ) in refusal.message


# -- the report must agree with itself -------------------------------------------------


def test_a_report_of_another_schema_version_is_bad_input_with_the_fix(tmp_path, capsys):
    run = report().to_dict()
    (tmp_path / "compat.json").write_text(json.dumps({**run, "schema_version": 1}, default=str))
    code = main(["gate", "--reports", str(tmp_path), "--dist", str(tmp_path)])
    assert code == ExitCode.USAGE
    error = " ".join(capsys.readouterr().err.split())
    assert f"has report schema_version 1; this harness reads {REPORT_SCHEMA_VERSION}." in error
    assert "Rerun the matrix with this harness to write a report it can verify." in error


def test_a_target_stored_as_passed_with_a_failed_check_is_refused():
    forged = target(PG, with_checks=checks(reupgrade=judged("reupgrade", DROPPED)))
    forged.status = Status.PASSED
    (refusal,) = evaluate(evidence(report(forged)), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, PG)
    assert refusal.message.startswith(
        f"{PG} (PostgreSQL 15 + PostGIS 3.3) is stored as passed, but its checks make it "
        "failed (failed or errored checks: reupgrade)"
    )


def test_a_target_stored_as_passed_with_4_of_the_required_checks_is_refused():
    forged = target(PG, with_checks=checks()[:4])
    forged.status = Status.PASSED
    (refusal,) = evaluate(evidence(report(forged)), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCOMPLETE, PG)
    missing = ", ".join(c.name for c in checks()[4:])
    held = f"holds 4 of the {len(checks())} required checks (missing: {missing})"
    assert f"is stored as passed but {held}" in (refusal.message)


def test_a_stored_status_that_hides_a_waiver_is_refused():
    forged = target(PG, with_checks=checks(data_survives=judged("data_survives", ACKNOWLEDGED)))
    assert forged.status == Status.WAIVED
    forged.status = Status.PASSED  # the release notes would not list the waiver
    (refusal,) = evaluate(evidence(report(forged)), MATRIX, BUILD).refusals
    assert refusal.cause == Cause.INCONSISTENT
    assert "is stored as passed, but its checks make it waived (passed with acknowledged" in (
        refusal.message
    )


def test_an_overall_status_that_disagrees_with_the_targets_is_refused():
    forged = Evidence(report(unreached("mssql2019")), stated_status="passed")
    verdict = evaluate(forged, MATRIX, BUILD, frozenset({"mssql2019"}))
    (refusal,) = verdict.refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, None)
    assert "compat.json states the overall status passed, but its targets make it not_run" in (
        refusal.message
    )


def test_a_target_whose_stored_fatal_cause_claims_a_pass_is_refused():
    forged = target(PG, with_checks=checks(reupgrade=judged("reupgrade", DROPPED)))
    forged.fatal = {"status": "passed", "reason": ""}  # only failed or error are written
    forged.status = Status.PASSED
    (refusal,) = evaluate(evidence(report(forged)), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, PG)
    assert (
        f"{PG} (PostgreSQL 15 + PostGIS 3.3) is stored as passed, but its checks make it error"
        in (refusal.message)
    )


def test_a_fatal_cause_of_no_known_status_is_an_error_not_a_traceback():
    forged = target(PG, fatal={"status": "bogus"})
    assert forged.status == Status.ERROR
    assert forged.reason == "a fatal cause stored as 'bogus'; only failed or error can be"


def test_a_target_with_two_results_is_refused():
    failed = target(PG, with_checks=checks(reupgrade=judged("reupgrade", DROPPED)))
    forged = report(failed)
    forged.targets.append(target(PG))  # a passing copy after the failed one
    (refusal,) = evaluate(evidence(forged), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, PG)
    assert f"compat.json holds 2 results for {PG}" in refusal.message


@pytest.mark.parametrize(
    ("server", "postgis", "words"),
    [
        ("15.18", "3.3.2", "PostgreSQL 15.18 answered, not PostgreSQL 13"),
        ("13.16", "3.3.2", "PostGIS 3.3.2 answered, not PostGIS 3.1"),
    ],
)
def test_a_target_proven_on_a_server_of_another_version_is_refused(server, postgis, words):
    other = target("pg13-postgis31")
    other.server_version, other.postgis_version = server, postgis
    (refusal,) = evaluate(evidence(report(other)), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, "pg13-postgis31")
    assert f"was run on another server: {words}" in refusal.message


@pytest.mark.parametrize(
    ("target_id", "server", "words"),
    [
        # A Babelfish reports a SQL Server ProductVersion (any, with
        # babelfishpg_tds.product_version): the harness records what it calls itself.
        (
            "mssql2022",
            "Babelfish 4.2.0",
            "T-SQL over TDS on Babelfish 4.2.0, not SQL Server answered, not SQL Server 2022",
        ),
        ("babelfish4-tsql", "16.0.4135.4", "SQL Server 16.0.4135.4 answered, not Babelfish 4.2"),
        ("babelfish4-tsql", "Babelfish 4.3.0", "Babelfish 4.3.0, not SQL Server answered"),
    ],
)
def test_babelfish_and_sql_server_never_prove_each_other(target_id, server, words):
    other = target(target_id)
    other.server_version = server
    (refusal,) = evaluate(evidence(report(other)), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, target_id)
    assert words in refusal.message


def test_a_target_proven_on_its_own_version_passes():
    own = [target(t.id) for t in MATRIX.targets]
    versions = ["13.16", "15.18", "17.12", "15.0.4", "16.0.1", "17.0.9", "Babelfish 4.2.0"]
    for result, version in zip(own, versions, strict=True):
        result.server_version = version
        result.postgis_version = {"pg13-postgis31": "3.1.1", "pg15-postgis33": "3.3.2"}.get(
            result.id, "3.5.2" if result.engine == "postgresql" else None
        )
    assert evaluate(evidence(report(*own)), MATRIX, BUILD).passed


def test_a_check_passed_with_an_unwaived_blocking_finding_is_refused():
    forged = judged("data_survives", DROPPED)
    forged.status = Status.PASSED
    result = target(PG, with_checks=checks(data_survives=forged))
    assert result.status == Status.PASSED  # the target follows its checks; the check lies
    (refusal,) = evaluate(evidence(report(result)), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, PG)
    assert (
        "holds checks whose status disagrees with their findings (data_survives is stored as "
        "passed but holds the unwaived blocking finding table_dropped at revision 4795161756fc: "
        "table cache dropped with its rows)"
    ) in refusal.message


def test_a_check_passed_with_only_waived_findings_is_refused():
    forged = judged("data_survives", ACKNOWLEDGED)
    forged.status = Status.PASSED  # the release notes would not list the waiver
    result = target(PG, with_checks=checks(data_survives=forged))
    (refusal,) = evaluate(evidence(report(result)), MATRIX, BUILD).refusals
    assert refusal.cause == Cause.INCONSISTENT
    assert "data_survives is stored as passed but its blocking findings are waived" in (
        refusal.message
    )


def test_a_per_target_file_that_disagrees_with_compat_json_is_refused(tmp_path):
    failed = target(PG, with_checks=checks(reupgrade=judged("reupgrade", DROPPED)))
    writer = ReportWriter(tmp_path)
    job = report(failed)
    for result in job.targets:
        writer.write_target(job, result)
    writer.write_summaries(job)
    assert evaluate(load_evidence(tmp_path), MATRIX, BUILD).refusals[0].cause == Cause.FAILED

    writer.write_summaries(report())  # compat.json now says pg15 passed; its job said failed
    (refusal,) = evaluate(load_evidence(tmp_path), MATRIX, BUILD).refusals
    assert (refusal.cause, refusal.target) == (Cause.INCONSISTENT, PG)
    assert f"{tmp_path}/targets/{PG}.json about {PG} says failed where compat.json says " in (
        refusal.message
    )
    assert "passed (they differ in status, reason, checks)" in refusal.message


def test_a_per_target_file_of_a_target_compat_json_leaves_out_is_refused(tmp_path):
    failed = target("mssql2019", with_checks=checks(reupgrade=judged("reupgrade", DROPPED)))
    writer = ReportWriter(tmp_path)
    writer.write_target(report(failed), failed)
    writer.write_summaries(report(absent=("mssql2019",)))
    verdict = evaluate(load_evidence(tmp_path), MATRIX, BUILD, frozenset({"mssql2019"}))
    assert verdict.allowed_missing == []
    (refusal,) = verdict.refusals
    assert "about mssql2019 says failed, but compat.json leaves the target out" in refusal.message


def test_a_per_target_file_of_another_build_is_refused(tmp_path):
    writer = ReportWriter(tmp_path)
    other = report(sha="b" * 64)
    writer.write_target(other, other.targets[0])
    writer.write_summaries(report())
    (refusal,) = evaluate(load_evidence(tmp_path), MATRIX, BUILD).refusals
    assert refusal.cause == Cause.INCONSISTENT
    assert f"is about another build (wheel sha256 {'b' * 64}, commit {COMMIT})" in (refusal.message)


# -- --allow-missing ------------------------------------------------------------------


def test_allow_missing_waives_absent_and_unreached_targets():
    run = report(unreached("mssql2019"), absent=("mssql2022",))
    verdict = evaluate(evidence(run), MATRIX, BUILD, frozenset(MSSQL[:2] + [PG]))
    assert verdict.passed
    assert verdict.allowed_missing == ["mssql2019", "mssql2022"]
    assert verdict.notes == [f"--allow-missing {PG}: nothing to waive."]


def test_allow_missing_does_not_waive_a_failed_target():
    failed = target("mssql2025", with_checks=checks(reupgrade=judged("reupgrade", DROPPED)))
    verdict = evaluate(evidence(report(failed)), MATRIX, BUILD, frozenset({"mssql2025"}))
    assert verdict.allowed_missing == []
    (refusal,) = verdict.refusals
    assert (refusal.cause, refusal.target) == (Cause.FAILED, "mssql2025")
    assert "--allow-missing does not waive a failed target" in refusal.message
    assert verdict.notes == ["--allow-missing mssql2025: nothing to waive."]


def test_allow_missing_does_not_waive_a_target_a_check_could_not_judge():
    unjudged = CheckResult("data_survives", Status.NOT_RUN, reason="no table takes rows")
    result = target("mssql2025", with_checks=checks(data_survives=unjudged))
    assert (result.status, result.reached) == (Status.NOT_RUN, True)
    verdict = evaluate(evidence(report(result)), MATRIX, BUILD, frozenset({"mssql2025"}))
    assert verdict.allowed_missing == []
    (refusal,) = verdict.refusals
    assert refusal.cause == Cause.NOT_RUN
    assert "is required, and a server ran it, but a check could not judge (data_survives" in (
        refusal.message
    )
    assert '(a [[waive]] with kind = "not_run")' in refusal.message
    assert "--allow-missing does not waive a not_run target" in refusal.message


def test_allow_missing_with_an_unknown_id_is_a_usage_error():
    with pytest.raises(HarnessError, match="mssql2030, not a target"):
        evaluate(evidence(report()), MATRIX, BUILD, frozenset({"mssql2030"}))


# -- what passes --------------------------------------------------------------------


def test_a_waived_target_passes_and_its_waivers_are_listed():
    not_judged = CheckResult(
        "offline_sql", Status.WAIVED, reason="env.py renders none (waived: ok)"
    )
    waivers = checks(data_survives=judged("data_survives", ACKNOWLEDGED), offline_sql=not_judged)
    result = target(PG, with_checks=waivers)
    assert result.status == Status.WAIVED
    verdict = evaluate(evidence(report(result)), MATRIX, BUILD)
    assert verdict.passed
    assert [a.describe() for a in verdict.acknowledged] == [
        f"{PG} data_survives at revision 4795161756fc, table_dropped: table cache dropped with "
        "its rows (waived: the cache is rebuilt)",
        f"{PG} offline_sql, not_run: env.py renders none (waived: ok)",
    ]
    printed = render(verdict)
    assert "PASSED with 2 waived findings: every required target passed for this wheel" in (printed)
    assert "  waived by the plugin's policy:\n    - pg15-postgis33 data_survives" in printed
    assert "waived" not in render(evaluate(evidence(report()), MATRIX, BUILD))


def test_targets_the_matrix_does_not_require_are_noted_not_refused(tmp_path):
    lax = tmp_path / "lax.toml"
    text = (ROOT / "matrix" / "define" / "targets.toml").read_text()
    lax.write_text(text.replace("required = true", "required = false"))
    verdict = evaluate(evidence(report(unreached("mssql2019"))), load_matrix(lax), BUILD)
    assert verdict.passed
    assert verdict.notes == ["mssql2019 (SQL Server 2019) is not_run; not required."]


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
def dist(live, tmp_path_factory) -> Path:
    """The tutorial plugin built as a release builds it."""
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "matrix", "build", "--plugin", "plugin_under_test"]
        + ["--dist", str(dist)],
        cwd=ROOT,
        env={**os.environ, "CI_COMMIT_SHA": COMMIT},  # the tag's build job
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
        + ["--targets", ",".join([PG, *MSSQL]), "--provider", "external"],
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
    assert statuses == {PG: "passed", **dict.fromkeys(MSSQL, "not_run")}, done.stdout
    return reports


@pytest.fixture
def reports_dir(module_run, tmp_path) -> Path:
    """This test's own copy: a passing gate writes into the reports."""
    return Path(shutil.copytree(module_run, tmp_path / "reports"))


@pytest.mark.live
def test_gate_refuses_sql_server_not_run_and_says_why(reports_dir, dist):
    done = gate_cli("--reports", str(reports_dir), "--dist", str(dist))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "REFUSED, 5 reasons:" in out
    for target_id in MSSQL:
        assert f"- {target_id} (SQL Server {target_id[-4:]}) is required but was not run" in out
        assert f"--allow-missing {target_id} to release without it on purpose" in out
    assert "MATRIX_MSSQL_URL" in out
    for target_id in OTHER_PG:
        assert f"- {target_id} " in out and "missing from compat.json" in out
    assert f"{PG} (" not in out
    written = json.loads((reports_dir / "compat.json").read_text())
    assert written["allowed_missing"] == []


@pytest.mark.live
def test_allow_missing_passes_and_is_written_into_the_report(reports_dir, dist):
    waived = [*OTHER_PG, *MSSQL]
    done = gate_cli(
        "--reports",
        str(reports_dir),
        "--dist",
        str(dist),
        "--allow-missing",
        "pg13-postgis31",
        env={"MATRIX_ALLOW_MISSING": "pg17-postgis35, mssql2019 mssql2022,mssql2025"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED: every required target passed" in done.stdout
    assert f"allowed missing (deliberate): {', '.join(waived)}" in done.stdout
    written = json.loads((reports_dir / "compat.json").read_text())
    assert written["allowed_missing"] == sorted(waived)
    markdown = (reports_dir / "compat.md").read_text()
    assert "## Release gate" in markdown
    assert "Allowed missing (deliberate exception, `--allow-missing`): `pg13-postgis31`" in markdown
    # Every report of the folder says it, so that they agree.
    page = (reports_dir / "index.html").read_text()
    assert f"Release gate: passed with {', '.join(sorted(waived))} allowed missing" in page
    junit = (reports_dir / "junit.xml").read_text()
    assert f'name="gate.allowed_missing" value="{",".join(sorted(waived))}"' in junit


@pytest.mark.live
def test_gate_refuses_a_report_for_another_commit(reports_dir, dist):
    done = gate_cli(
        "--reports",
        str(reports_dir),
        "--dist",
        str(dist),
        *[arg for i in [*OTHER_PG, *MSSQL] for arg in ("--allow-missing", i)],
        env={"CI_COMMIT_SHA": "f" * 40},
    )
    assert done.returncode == 1
    assert "REFUSED, 1 reason:" in done.stdout
    assert (
        f"compat.json is about plugin_under_test at commit {COMMIT}, but it is now at commit "
        f"{'f' * 40}; rerun the matrix on this commit (python -m matrix run --plugin "
    ) in done.stdout


@pytest.mark.live
def test_gate_refuses_a_per_target_file_edited_after_the_merge(reports_dir, dist):
    path = reports_dir / "targets" / f"{PG}.json"
    data = json.loads(path.read_text())
    data["target"]["status"] = data["target"]["checks"][-1]["status"] = "failed"
    path.write_text(json.dumps(data))
    done = gate_cli(
        "--reports",
        str(reports_dir),
        "--dist",
        str(dist),
        *[arg for i in [*OTHER_PG, *MSSQL] for arg in ("--allow-missing", i)],
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{path} about {PG} says failed where compat.json says passed (they differ in " in (
        " ".join(done.stdout.split())
    )


def test_missing_inputs_are_one_paragraph_and_exit_2(tmp_path, dist):
    def error(*args: str) -> str:
        done = gate_cli(*args)
        assert done.returncode == 2, done.stdout
        assert "Traceback" not in done.stderr
        return " ".join(done.stderr.split())  # one paragraph, however the terminal wraps

    assert f"There is no matrix report at {tmp_path}/compat.json. Run the matrix first" in error(
        "--reports", str(tmp_path), "--dist", str(dist)
    )
    (tmp_path / "compat.json").write_text(json.dumps({"schema_version": REPORT_SCHEMA_VERSION}))
    assert "is not a matrix report" in error("--reports", str(tmp_path), "--dist", str(dist))
    (tmp_path / "compat.json").write_text(json.dumps(report().to_dict(), default=str))
    assert f"There is no wheel in {tmp_path}, so there is nothing to gate. Build it first" in error(
        "--reports", str(tmp_path), "--dist", str(tmp_path)
    )


def _published_reports(tmp_path: Path, *replaced, absent: tuple[str, ...] = ()) -> Path:
    """Reports about a published plugin whose wheel sits where compat.json says (no dist/)."""
    wheel = tmp_path / "cache" / "peek_plugin_chat-5.1.6-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"the wheel built from the published sdist")
    run = report(*replaced, absent=absent, source=PUBLISHED, run_options=RUN_OPTIONS)
    run.plugin.wheel = str(wheel)
    run.plugin.wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    reports_dir = tmp_path / "reports"
    reports_dir.mkdir()
    (reports_dir / "compat.json").write_text(json.dumps(run.to_dict(), default=str))
    return reports_dir


def test_the_gate_checks_the_wheel_compat_json_names_not_dist(tmp_path):
    """A published plugin's report is gated on its own wheel, wherever dist/ points."""
    reports_dir = _published_reports(tmp_path)
    done = gate_cli("--reports", str(reports_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plugin requirement peek-plugin-chat==5.1.6 from http://127.0.0.1:3141/simple/" in (
        done.stdout
    )
    assert f"wheel  {tmp_path}/cache/peek_plugin_chat-5.1.6-py3-none-any.whl" in done.stdout
    assert "PASSED: every required target passed for this wheel." in done.stdout

    other = tmp_path / "dist"
    other.mkdir()
    (other / "peek_plugin_tutorial-1.0.0-py3-none-any.whl").write_bytes(b"another package")
    refused = gate_cli("--reports", str(reports_dir), "--dist", str(other))
    assert refused.returncode == 1
    said = " ".join(refused.stdout.split())
    assert "compat.json proves the wheel peek_plugin_chat-5.1.6-py3-none-any.whl" in said
    assert f"python -m matrix run --plugin {other}/peek_plugin_tutorial-1.0.0" in said


def test_a_proven_wheel_that_is_gone_is_bad_input_naming_the_rerun(tmp_path):
    reports_dir = _published_reports(tmp_path)
    (tmp_path / "cache" / "peek_plugin_chat-5.1.6-py3-none-any.whl").unlink()
    done = gate_cli("--reports", str(reports_dir))
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "peek_plugin_chat-5.1.6-py3-none-any.whl, is not there any more" in said
    assert "python -m matrix run --plugin peek-plugin-chat==5.1.6" in said


def test_allow_missing_takes_commas_as_its_variable_does(tmp_path):
    reports_dir = _published_reports(tmp_path, absent=(*OTHER_PG, *MSSQL))
    done = gate_cli(
        "--reports",
        str(reports_dir),
        "--allow-missing",
        "pg13-postgis31,pg17-postgis35",
        "--allow-missing",
        "mssql2019, mssql2022",
        env={"MATRIX_ALLOW_MISSING": "mssql2025"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "allowed missing (deliberate): " + ", ".join([*OTHER_PG, *MSSQL]) in done.stdout


def test_a_waiver_used_on_every_target_is_one_line():
    """The same acknowledged finding on three targets, and its like, is said once."""
    second = replace(ACKNOWLEDGED, message="table log dropped with its rows")
    waived = [
        target(t, with_checks=checks(data_survives=judged("data_survives", ACKNOWLEDGED, second)))
        for t in ("pg13-postgis31", "pg15-postgis33", "pg17-postgis35")
    ]
    verdict = evaluate(evidence(report(*waived)), MATRIX, BUILD)
    assert verdict.passed and len(verdict.acknowledged) == 6
    (line,) = [line for line in render(verdict).splitlines() if line.startswith("    - ")]
    assert line == (
        "    - data_survives at revision 4795161756fc, table_dropped, on pg13-postgis31, "
        "pg15-postgis33, pg17-postgis35: table cache dropped with its rows, and 3 more like it "
        "(waived: the cache is rebuilt)"
    )
    assert "PASSED with 6 waived findings" in render(verdict)
