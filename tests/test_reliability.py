"""The run never hangs, never passes what is unproven, never loses a result, never leaks.

Each test feeds one fault for real (a server that is not there, a wrong
password, a migration that blocks, a history Alembic cannot read, a second
run on the same reports, a SIGKILL) and asserts the exit, the message, the
report and that nothing was left behind. None asserts how long it took: that
a fault is said at once shows in which message says it (a refusal said at
the first attempt is worded apart from a wait that ran out), and a wait that
never ends is caught by the process's own timeout.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import ROOT, assert_clear_error, cli
from plugin_factory import (
    ADD_COUNT,
    CREATE_INDEX,
    PluginSpec,
    Revision,
    healthy_revisions,
    write_plugin,
)

from matrix.errors import HarnessError
from matrix.provide import databases, leftovers

pytestmark = pytest.mark.live
PG = ("--targets", "pg15-postgis33")


def external(tmp: Path, plugin: Path, url: str, *extra: str, reports: Path | None = None):
    reports = reports or tmp / "reports"
    done = cli(
        "run",
        "--plugin",
        str(plugin),
        *PG,
        "--provider",
        "external",
        "--reports",
        str(reports),
        *extra,
        env={"MATRIX_POSTGRESQL_URL": url},
        timeout=300,
    )
    return done, reports


def compat(reports: Path) -> dict:
    return json.loads((reports / "compat.json").read_text())


def test_a_server_that_is_not_there_is_not_run_at_once(tmp_path):
    plugin = write_plugin(tmp_path / "src", PluginSpec("absent", healthy_revisions()))
    done, reports = external(tmp_path, plugin, "postgresql://peek:pw@127.0.0.1:1/peek")
    assert done.returncode == 1
    target = compat(reports)["targets"][0]
    assert target["status"] == "not_run"
    # said at the first refused attempt, not after waiting out ready_timeout
    assert "Nothing accepts connections" in target["reason"]
    assert "did not accept a login within" not in target["reason"]
    assert "ready_timeout" not in target["reason"] and "below" not in target["reason"]
    statuses = {c["name"]: c["status"] for c in target["checks"]}
    assert statuses["single_head"] == "passed"
    assert statuses["offline_sql"] == "not_run"  # rendered and parsed; not applied
    assert (reports / "sql" / "pg15-postgis33" / "upgrade.sql").exists()


def test_a_server_of_another_version_does_not_prove_the_target(tmp_path, pg_server_url):
    """One external URL serves every target of its engine; PostgreSQL 15 answering
    for the PostgreSQL 13 target leaves that target not_run, never passed."""
    plugin = write_plugin(tmp_path / "src", PluginSpec("versions", healthy_revisions()))
    url = pg_server_url.render_as_string(hide_password=False)
    done, reports = external(tmp_path, plugin, url, "--targets", "pg13-postgis31")
    assert done.returncode == 1, done.stderr
    (target,) = compat(reports)["targets"]
    assert (target["id"], target["status"], target["reached"]) == (
        "pg13-postgis31",
        "not_run",
        False,
    )
    assert "is another version: PostgreSQL 15." in target["reason"]
    assert "answered, not PostgreSQL 13" in target["reason"]


def test_a_target_stuck_outside_its_checks_ends_with_the_run_timeout(tmp_path):
    """A server that takes the connection and never answers holds the cell in its
    login wait, here for an hour (ready_timeout = 3600 in the matrix file); the run
    still ends at --run-timeout plus the grace (else the process's own timeout
    stops it and the test fails), with that target an error naming the run timeout."""
    plugin = write_plugin(tmp_path / "src", PluginSpec("silent", healthy_revisions()))
    matrix_file = tmp_path / "targets.toml"
    bundled = (ROOT / "matrix" / "define" / "targets.toml").read_text()
    assert "ready_timeout = 90\n" in bundled
    matrix_file.write_text(bundled.replace("ready_timeout = 90\n", "ready_timeout = 3600\n"))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nothing ever answers
        url = f"postgresql://peek:pw@127.0.0.1:{silent.getsockname()[1]}/peek"
        done, reports = external(
            tmp_path, plugin, url, "--run-timeout", "3", "--matrix", str(matrix_file)
        )
    assert done.returncode == 1, done.stderr
    target = compat(reports)["targets"][0]
    assert target["status"] == "error"
    assert "outlived --run-timeout (3 s)" in target["reason"]
    assert {c["status"] for c in target["checks"]} == {"not_run"}


def test_a_wrong_password_is_said_at_once(tmp_path, pg_server_url):
    plugin = write_plugin(tmp_path / "src", PluginSpec("wrongpw", healthy_revisions()))
    secret = "Wr0ng-Secret-Pw"
    url = pg_server_url.set(password=secret).render_as_string(hide_password=False)
    done, reports = external(tmp_path, plugin, url)
    target = compat(reports)["targets"][0]
    assert target["status"] == "error"
    # said at the first refused login, not after waiting out ready_timeout
    assert "refused the login" in target["reason"]
    assert "does not get better by waiting" in target["reason"]
    assert "did not accept a login within" not in target["reason"]
    output = done.stdout + done.stderr
    for text in [
        output,
        *(p.read_text(errors="replace") for p in reports.rglob("*") if p.is_file()),
    ]:
        assert secret not in text


def test_a_login_refused_while_a_server_the_harness_started_boots_is_waited_for(pg_server_url):
    """SQL Server's first boot refuses ``sa`` with 18456, state 7 ("an error occurred while
    evaluating the password", microsoft/mssql-docker issues 151 and 652) until its setup is
    done. On a server the harness started, with its own password, that is waited for until
    ready_timeout; on someone else's server a refused login is said at once. The same
    mechanism on a real PostgreSQL: the role gets the URL's password only after a while."""
    role = f"boot_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    url = pg_server_url.set(username=role, password=password)
    databases.run_statements(pg_server_url, [f"CREATE ROLE {role} LOGIN PASSWORD 'not-yet-{role}'"])
    try:
        with pytest.raises(HarnessError, match="refused the login"):
            databases.wait_until_ready(url, 30, started_by_us=False)
        set_later = threading.Timer(
            1.5,
            databases.run_statements,
            (pg_server_url, [f"ALTER ROLE {role} PASSWORD '{password}'"]),
        )
        set_later.start()
        try:
            waited = databases.wait_until_ready(url, 30, started_by_us=True)
        finally:
            set_later.join(10)
        assert waited >= 1.0
    finally:
        databases.run_statements(pg_server_url, [f"DROP ROLE IF EXISTS {role}"])


def test_a_server_coming_up_is_polled_at_least_every_fifth_of_a_second_within_its_timeout(
    monkeypatch,
):
    """Between two refused logins the wait sleeps at most 0.2 s (the fast peer's poll), and
    never past ready_timeout: the sleeps asked for are recorded, and still slept."""
    asked: list[float] = []
    sleep = time.sleep

    def recorded(seconds: float) -> None:
        asked.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(databases.time, "sleep", recorded)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens: every login is refused
    url = sa.engine.make_url(f"postgresql://peek:pw@127.0.0.1:{port}/peek")
    with pytest.raises(databases.NotReady, match="did not accept a login within 1 s"):
        databases.wait_until_ready(url, 1, started_by_us=True)
    assert len(asked) > 1 and max(asked) <= 0.2, asked
    assert sum(asked) <= 1.0, asked


def test_secrets_of_a_live_run_never_reach_the_reports(run_matrix_cli, pg_server_url, tmp_path):
    package = write_plugin(tmp_path / "src", PluginSpec("masked", healthy_revisions()))
    run = run_matrix_cli("--plugin", str(package), *PG, "--provider", "external")
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
    first = run_matrix_cli(*common, *PG, "--provider", "external")
    assert first.exit_code == 0, first.output
    second = cli("run", *common, "--targets", "mssql2022", "--provider", "external")
    assert second.returncode == 1
    statuses = {t["id"]: t["status"] for t in compat(reports)["targets"]}
    assert statuses == {"pg15-postgis33": "passed", "mssql2022": "not_run"}

    other = write_plugin(tmp_path / "other", PluginSpec("otherbuild", healthy_revisions()))
    cli("run", "--plugin", str(other), "--reports", str(reports), "--targets", "mssql2019")
    assert [t["id"] for t in compat(reports)["targets"]] == ["mssql2019"]
    assert sorted(p.name for p in (reports / "targets").iterdir()) == ["mssql2019.json"]


def test_a_second_run_on_the_same_reports_is_refused_with_the_first_ones_pid(
    tmp_path, pg_server_url
):
    slow = f"{ADD_COUNT}\n{CREATE_INDEX}\nop.execute('SELECT pg_sleep(8)')"
    revisions = healthy_revisions()
    revisions[1] = Revision("b2", "a1", slow, revisions[1].downgrade)
    first_plugin = write_plugin(tmp_path / "one", PluginSpec("slowone", revisions))
    second_plugin = write_plugin(tmp_path / "two", PluginSpec("second", healthy_revisions()))
    reports = tmp_path / "reports"
    url = pg_server_url.render_as_string(hide_password=False)
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "matrix",
            "run",
            "--plugin",
            str(first_plugin),
            *PG,
            "--provider",
            "external",
            "--reports",
            str(reports),
        ],
        cwd=ROOT,
        env={**os.environ, "MATRIX_POSTGRESQL_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if (reports / ".lock").exists() and (reports / ".lock").read_text().strip():
                break
            time.sleep(0.05)
        done, _ = external(tmp_path, second_plugin, url, reports=reports)
        assert_clear_error(done, f"Another run (pid {first.pid}) is writing", "--reports")
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0
    assert [t["id"] for t in compat(reports)["targets"]] == ["pg15-postgis33"]
    assert compat(reports)["plugin"]["name"] == "peek_plugin_slowone"


def test_a_migration_that_blocks_times_out_with_the_statement_and_the_run_ends(
    tmp_path, pg_server_url
):
    revisions = healthy_revisions()
    block = f"{ADD_COUNT}\n{CREATE_INDEX}\nop.execute('SELECT pg_sleep(600)')"
    revisions[1] = Revision("b2", "a1", block, revisions[1].downgrade)
    plugin = write_plugin(tmp_path / "src", PluginSpec("blocks", revisions))
    url = pg_server_url.render_as_string(hide_password=False)
    # pg_sleep(600) outlasts the process's own timeout (300 s): only the check timeout ends it
    done, reports = external(tmp_path, plugin, url, "--check-timeout", "4")
    assert done.returncode == 1
    target = compat(reports)["targets"][0]
    upgrade = next(c for c in target["checks"] if c["name"] == "upgrade_stepwise")
    assert upgrade["status"] == "error"
    assert "timed out after 4 s" in upgrade["reason"]
    assert "pg_sleep(600)" in upgrade["reason"]
    later = next(c for c in target["checks"] if c["name"] == "reupgrade")
    assert later["status"] == "not_run"
    assert "stopped when upgrade_stepwise timed out" in later["reason"]
    assert target["status"] == "error"


@pytest.mark.parametrize(
    ("name", "phrase"), [("cycle", "cannot be read"), ("twice", "present more than once")]
)
def test_an_unreadable_history_ends_the_run_with_its_cause(tmp_path, name, phrase):
    revisions = healthy_revisions()
    if name == "cycle":
        revisions[0] = Revision("a1", "b2", revisions[0].upgrade, revisions[0].downgrade)
    package = write_plugin(tmp_path / "src", PluginSpec(name, revisions))
    versions = package / "_private" / "alembic" / "versions"
    if name == "twice":  # a second file declaring revision a1
        (versions / "a1_again.py").write_text((versions / "a1.py").read_text())
    done, reports = external(tmp_path, package, "postgresql://peek:pw@127.0.0.1:1/peek")
    assert done.returncode == 1, done.stdout + done.stderr
    target = compat(reports)["targets"][0]
    assert target["status"] == "failed"
    assert phrase in target["reason"]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_revision_that_does_not_compile_is_one_cause_with_its_file_and_line(tmp_path):
    revisions = healthy_revisions()
    revisions[1] = Revision("b2", "a1", "op.add_column(  # unclosed", "pass")
    plugin = write_plugin(tmp_path / "src", PluginSpec("syntax", revisions))
    done, reports = external(tmp_path, plugin, "postgresql://peek:pw@127.0.0.1:1/peek")
    assert done.returncode == 1
    target = compat(reports)["targets"][0]
    assert target["status"] == "failed"
    assert "the plugin cannot be loaded at" in target["reason"]
    assert "versions/b2.py:" in target["reason"] and "SyntaxError" in target["reason"]
    assert {c["reason"] for c in target["checks"]} == {"the plugin cannot be loaded"}
    output = " ".join((done.stdout + done.stderr).split())
    assert output.count("SyntaxError") <= 2  # once in the log, once in the summary


def test_a_plugin_that_loads_on_one_engine_only_gets_each_targets_own_verdict(
    tmp_path, pg_server_url
):
    """Peek 5.1.6's AlembicEnvBase passes client_encoding to engine_from_config, which
    SQLAlchemy's mssql+pymssql refuses (TypeError). In a run with targets of both engines the
    plugin was probed under the first engine of the sorted list, mssql, and every target,
    PostgreSQL's too, failed with "the plugin cannot be loaded"."""
    plugin = write_plugin(
        tmp_path / "src", PluginSpec("bothengines", healthy_revisions(), env="peek")
    )
    env_py = plugin / "_private" / "alembic" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            'prefix="sqlalchemy.", poolclass=pool.NullPool',
            'prefix="sqlalchemy.", poolclass=pool.NullPool, client_encoding="utf8"',
        )
    )
    assert 'client_encoding="utf8"' in env_py.read_text()
    url = pg_server_url.render_as_string(hide_password=False)
    done, reports = external(tmp_path, plugin, url, "--targets", "pg15-postgis33,mssql2022")
    targets = {t["id"]: t for t in compat(reports)["targets"]}
    output = done.stdout + done.stderr
    pg = targets["pg15-postgis33"]
    checks = {c["name"]: c["status"] for c in pg["checks"]}
    assert checks["upgrade_stepwise"] == checks["downgrade_stepwise"] == "passed", output
    assert "cannot be loaded" not in (pg.get("reason") or ""), pg
    assert pg["status"] == "not_run"  # offline_sql: Peek's env.py renders no --sql
    mssql = targets["mssql2022"]
    assert mssql["status"] == "failed", mssql
    assert "the plugin cannot be loaded" in mssql["reason"]
    assert "client_encoding" in mssql["reason"]


def test_a_plugin_without_a_schema_is_one_cause_not_checks_on_nothing(tmp_path, pg_server_url):
    """With no schema every state is empty and every comparison trivially equal."""
    plugin = write_plugin(tmp_path / "src", PluginSpec("noschema", healthy_revisions(), env="peek"))
    base = plugin / "_private" / "storage" / "DeclarativeBase.py"
    text = base.read_text()
    assert 'MetaData(schema="pl_noschema", ' in text
    base.write_text(text.replace('MetaData(schema="pl_noschema", ', "MetaData("))
    done, reports = external(tmp_path, plugin, pg_server_url.render_as_string(hide_password=False))
    assert done.returncode == 1, done.stdout + done.stderr
    target = compat(reports)["targets"][0]
    assert target["status"] == "failed"
    assert "The plugin's schema cannot be found" in target["reason"]
    assert {c["status"] for c in target["checks"]} == {"not_run"}


def test_stray_bytes_from_the_plugin_do_not_end_the_reading(tmp_path, pg_server_url):
    """A model that writes bytes that are not UTF-8 to stdout: the run reads past them."""
    spec = PluginSpec("bytes", healthy_revisions())
    spec.models["Noisy"] = (
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe not utf-8\\n')\nsys.stdout.flush()\n"
    )
    plugin = write_plugin(tmp_path / "src", spec)
    url = pg_server_url.render_as_string(hide_password=False)
    done, reports = external(tmp_path, plugin, url, "--check-timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert compat(reports)["targets"][0]["status"] == "passed"


def test_a_missing_module_is_one_paragraph_with_the_plugin_line_and_the_fix(tmp_path):
    spec = PluginSpec("missing", healthy_revisions())
    spec.models["Extra"] = "import peek_missing_dependency  # noqa\n"
    plugin = write_plugin(tmp_path / "src", spec)
    done, _ = external(tmp_path, plugin, "postgresql://peek:pw@127.0.0.1:1/peek")
    assert_clear_error(
        done,
        "has no module 'peek_missing_dependency'",
        "peek_plugin_missing/_private/storage/Extra.py:1",
        "--with peek-missing-dependency",
        "MATRIX_PLUGIN_WITH",
    )


def test_a_sigkilled_native_run_is_reaped_by_the_next_one(tmp_path):
    revisions = healthy_revisions()
    block = f"{ADD_COUNT}\n{CREATE_INDEX}\nop.execute('SELECT pg_sleep(600)')"
    revisions[1] = Revision("b2", "a1", block, revisions[1].downgrade)
    plugin = write_plugin(tmp_path / "src", PluginSpec("killed", revisions))
    cache = tmp_path / "cache"
    env = {**os.environ, "MATRIX_CACHE_DIR": str(cache)}
    runs = cache / "runs"
    victim = _native_run_in_background(plugin, tmp_path / "r1", env)
    record = _wait_for(lambda: next(iter(runs.glob("native-*.json")), None), 120)
    facts = json.loads(record.read_text())
    datadir = Path(facts["datadir"])
    postmaster = _wait_for(lambda: _postmaster_pid(datadir), 60)
    checks = _wait_for(lambda: _check_processes(victim.pid), 120)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert leftovers.pid_alive(postmaster)  # left behind, as a SIGKILL leaves it

    done = cli(
        "run",
        "--plugin",
        str(plugin),
        "--targets",
        "pg15-postgis33",
        "--provider",
        "native",
        "--reports",
        str(tmp_path / "r2"),
        "--check-timeout",
        "3",
        env=env,
    )
    assert "stopped native servers left by dead runs" in done.stdout + done.stderr
    assert not leftovers.pid_alive(postmaster)
    assert not datadir.exists()
    assert not list(runs.glob("native-*.json"))
    # its orphaned check process sees its parent gone and ends (exit_with_parent)
    _wait_for(lambda: not any(map(leftovers.pid_alive, checks)) or None, 30)


def test_sigterm_during_native_start_up_leaves_nothing(tmp_path):
    plugin = write_plugin(tmp_path / "src", PluginSpec("termed", healthy_revisions()))
    cache = tmp_path / "cache"
    run = _native_run_in_background(
        plugin, tmp_path / "r", {**os.environ, "MATRIX_CACHE_DIR": str(cache)}
    )
    _wait_for(lambda: next(iter((cache / "runs").glob("native-*.json")), None), 120)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 130
    # its own folders carry its pid (other runs may share the machine's temporary folder)
    assert not list(Path(tempfile.gettempdir()).glob(f"matrix-*-{run.pid}-*"))
    assert not list((cache / "runs").glob("native-*.json"))


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the interrupt tests: the first builds the plugin's environment, the
    others reuse it, so the signal lands in both kinds of plugin preparation."""
    return tmp_path_factory.mktemp("interrupt-cache")


@pytest.mark.parametrize(
    ("signum", "after", "delay"),
    [
        (signal.SIGTERM, "starting via native", 0.2),
        (signal.SIGTERM, "starting via native", 1.0),
        (signal.SIGTERM, "starting via native", 1.8),
        (signal.SIGTERM, "] running", 0.5),
        (signal.SIGINT, "starting via native", 0.6),
    ],
    ids=["start+0.2s", "start+1.0s", "start+1.8s", "checks+0.5s", "sigint-start+0.6s"],
)
def test_an_interrupt_at_any_moment_leaves_a_report_that_says_so(
    tmp_path, shared_cache, signum, after, delay
):
    """Formerly no compat.json (or the previous run's) when the signal hit the start-up."""
    revisions = healthy_revisions()
    slow = f"{ADD_COUNT}\n{CREATE_INDEX}\nop.execute('SELECT pg_sleep(60)')"
    revisions[1] = Revision("b2", "a1", slow, revisions[1].downgrade)  # the checks last
    plugin = write_plugin(tmp_path / "src", PluginSpec("interrupted", revisions))
    reports = tmp_path / "r"
    reports.mkdir()
    (reports / "compat.json").write_text(json.dumps({"run_id": "previous-run"}))
    (reports / "index.html").write_text("<p>previous-run</p>")
    log = tmp_path / "run.log"
    env = {**os.environ, "MATRIX_CACHE_DIR": str(shared_cache)}
    with log.open("w") as stream:
        run = _native_run_in_background(plugin, reports, env, stderr=stream)
        _wait_for(lambda: after in log.read_text() or run.poll() is not None, 180)
        assert run.poll() is None, log.read_text()
        time.sleep(delay)
        run.send_signal(signum)
        assert run.wait(timeout=90) == 130, log.read_text()
    report = reports_of(reports)
    assert report.run_id != "previous-run"
    assert report.state == "interrupted"
    assert report.interrupted.startswith(signal.Signals(signum).name), report.interrupted
    (target,) = report.targets
    assert target.status == "error", target
    assert target.reason.startswith(f"interrupted ({signal.Signals(signum).name}"), target.reason
    assert " while " in target.reason
    assert report.status == "error"
    page = (reports / "index.html").read_text()  # the interrupted run's, not the previous one
    assert "previous-run" not in page and "The run was interrupted" in page
    markdown = (reports / "compat.md").read_text()
    assert "interrupted" in markdown
    # its own folders carry its pid (other runs may share the machine's temporary folder)
    assert not list(Path(tempfile.gettempdir()).glob(f"matrix-*-{run.pid}-*"))
    assert not list((shared_cache / "runs").glob("native-*.json"))


def reports_of(folder: Path):
    from matrix.report import load_report

    return load_report(folder / "compat.json")


def test_sigterm_during_checks_on_an_external_server_drops_its_databases(tmp_path, pg_server_url):
    """The cell's own cleanup never runs on a daemon thread: close() drops what it made."""
    revisions = healthy_revisions()
    block = f"{ADD_COUNT}\n{CREATE_INDEX}\nop.execute('SELECT pg_sleep(600)')"
    revisions[1] = Revision("b2", "a1", block, revisions[1].downgrade)
    plugin = write_plugin(tmp_path / "src", PluginSpec("termext", revisions))
    before = set(_throwaway_databases(pg_server_url))
    url = pg_server_url.render_as_string(hide_password=False)
    command = [sys.executable, "-m", "matrix", "run", "--plugin", str(plugin), *PG]
    run = subprocess.Popen(
        [*command, "--provider", "external", "--reports", str(tmp_path / "r")],
        cwd=ROOT,
        env={**os.environ, "MATRIX_POSTGRESQL_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: set(_throwaway_databases(pg_server_url)) - before, 120)
    _wait_for(lambda: _check_processes(run.pid), 120)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 130
    assert set(_throwaway_databases(pg_server_url)) - before == set()


def _throwaway_databases(url) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT datname FROM pg_database WHERE datname LIKE 'matrix\\_%'"
            return list(conn.execute(sa.text(query)).scalars())
    finally:
        engine.dispose()


def test_a_finished_run_leaves_no_temporary_folder_and_reaps_a_dead_runs(run_matrix_cli, tmp_path):
    """A SIGKILLed run cannot remove its folders; the next run does, by their owner's pid.

    The run gets a temporary folder of its own (TMPDIR), so that what other runs on the
    machine (other tests in parallel) leave or reap does not enter the count.
    """
    dead = subprocess.Popen(["true"])
    dead.wait()
    temp = tmp_path / "tmp"
    orphans = [temp / f"matrix-run-{dead.pid}-0badc0de-x", temp / f"matrix-build-{dead.pid}-y"]
    for orphan in orphans:
        (orphan / "inside").mkdir(parents=True)
    mine = temp / f"matrix-run-{os.getpid()}-live-z"  # a live owner's folder stays
    mine.mkdir()
    plugin = write_plugin(tmp_path / "src", PluginSpec("tidy", healthy_revisions()))
    run = run_matrix_cli(
        "--plugin", str(plugin), *PG, "--provider", "external", env={"TMPDIR": str(temp)}
    )
    assert run.exit_code == 0, run.output
    assert not any(orphan.exists() for orphan in orphans)
    assert mine.exists()
    # nothing of its own left: no folder whose owner is gone
    left = [p for p in temp.glob("matrix-*-*-*") if not _owner_alive(p)]
    assert left == []


def _owner_alive(folder: Path) -> bool:
    """Whether the process a temporary folder names as its owner still runs; a folder that
    names no owner (a native server's data) is not one a run leaves, so it counts as kept."""
    pid = folder.name.split("-")[2]
    return not pid.isdigit() or leftovers.pid_alive(int(pid))


def _native_run_in_background(
    plugin: Path, reports: Path, env: dict, stderr=subprocess.DEVNULL
) -> subprocess.Popen:
    """A ``matrix run`` on the native provider, left running for a signal to hit."""
    command = [sys.executable, "-m", "matrix", "run", "--plugin", str(plugin), *PG]
    return subprocess.Popen(
        [*command, "--provider", "native", "--reports", str(reports)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def _wait_for(probe, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up after {seconds} s")


def _postmaster_pid(datadir: Path) -> int | None:
    """The running server's pid (initdb's single-user backend writes a negative one)."""
    try:
        pid = int((datadir / "data" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def _check_processes(parent: int) -> list[int]:
    """The check processes ``parent`` started (not other runs' on the machine)."""
    done = subprocess.run(
        ["pgrep", "-P", str(parent), "-f", "matrix.check.process"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [int(pid) for pid in done.stdout.split()]


class _Recorder:
    """A run's progress with the moment of each event: when servers and checks ran."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, str]] = []  # when, target, kind, what
        self._lock = threading.Lock()

    def _add(self, target_id: str, kind: str, what: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), target_id, kind, what))

    def target(self, target_id: str, state: str, **info: str) -> None:
        self._add(target_id, "target", state)

    def check(self, target_id: str, name: str, status: str) -> None:
        self._add(target_id, "check", status)

    def log(self, target_id: str, message: str) -> None:
        pass

    def moment(self, target_id: str, state: str) -> float:
        (when,) = [
            t
            for t, who, kind, what in self.events
            if (who, kind, what) == (target_id, "target", state)
        ]
        return when

    def checks_span(self, target_id: str) -> tuple[float, float]:
        times = [t for t, who, kind, _ in self.events if who == target_id and kind == "check"]
        return min(times), max(times)


def test_every_server_starts_at_once_and_only_the_checks_wait_for_a_slot(tmp_path):
    """-j 1 with three targets: the three servers start together (each one's start
    overlaps the others'), while the checks run one target after another."""
    from matrix.define.targets import load_matrix
    from matrix.report import ReportWriter
    from matrix.run.runner import RunOptions, run_matrix

    targets = "".join(
        f'[[target]]\nid = "pg15-{name}"\nengine = "postgresql"\nversion = "15"\n'
        f'postgis = "3.3"\nimage = "postgis/postgis:15-3.3"\nproviders = ["native"]\n'
        "required = true\n\n"
        for name in ("a", "b", "c")
    )
    matrix_file = tmp_path / "three.toml"
    matrix_file.write_text(
        'schema_version = 1\n\n[engine.postgresql]\nurl_env = "MATRIX_POSTGRESQL_URL"\n'
        f'ready_timeout = 90\nport = 5432\n\n[engine.mssql]\nurl_env = "MATRIX_MSSQL_URL"\n'
        f"ready_timeout = 240\nport = 1433\n\n{targets}"
    )
    matrix = load_matrix(matrix_file)
    plugin = write_plugin(tmp_path / "src", PluginSpec("threeway", healthy_revisions()))
    progress = _Recorder()
    report = run_matrix(
        RunOptions(
            plugin=str(plugin),
            targets=matrix.targets,
            matrix_file=matrix_file,
            reports_dir=tmp_path / "reports",
            provider="native",
            jobs=1,
        ),
        progress,
        ReportWriter(tmp_path / "reports"),
    )
    ids = [t.id for t in matrix.targets]
    assert [t.status for t in report.targets] == ["passed"] * 3, [t.reason for t in report.targets]
    started = {i: (progress.moment(i, "starting"), progress.moment(i, "ready")) for i in ids}
    for one in ids:
        for other in ids:
            assert started[one][0] < started[other][1], (one, other, started)  # overlapping
    spans = sorted(progress.checks_span(i) for i in ids)
    for before, after in zip(spans, spans[1:], strict=False):
        assert before[1] <= after[0], spans  # one target's checks at a time (-j 1)
