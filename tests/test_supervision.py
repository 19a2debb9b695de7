"""The runner's supervision of the check process, against a fake child that speaks the protocol.

The check process is a program of its own; what the runner must get right
is what it makes of it: a check that never ends, a process that dies in the
middle of one, one that floods its output, one that ends without its last
word, one that reports a fatal cause, a run that reaches its deadline. Each
scenario is a few lines of Python run as a real child process (started by
:class:`matrix.child.Child`, as the check process is), writing real
:mod:`matrix.protocol` events; no server is needed, since no check runs.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from plugin_factory import PluginSpec, Revision, healthy_revisions, write_plugin

from matrix.child import OUTPUT_KEPT, Child, harness_path
from matrix.define.targets import load_matrix
from matrix.forks import ForkedProcess, Forks
from matrix.install.prepare import probe
from matrix.protocol import (
    Cause,
    CellSpec,
    Done,
    Finished,
    Plugin,
    PreviousRelease,
    Started,
    TargetSpec,
    WaiversUsed,
    decode_spec,
    dump,
    encode_spec,
    load,
    parse_event,
)
from matrix.results import CheckResult, Status
from matrix.run.frame import Run
from matrix.run.runner import RunOptions
from matrix.run.target import TargetRun
from matrix.site.runner import SiteOptions, SiteTarget
from matrix.site.sitefile import Site

CHECKS = ("single_head", "upgrade_stepwise", "version_table_at_head")
FAKE = """
import os, sys, time
from matrix.protocol import Cause, Done, Fatal, Finished, Started, WaiversUsed, emit
from matrix.results import CheckResult, Status

def done(name):
    emit(Done(CheckResult(name, Status.PASSED, reason="fine")))

def main(argv=None):
{body}
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
"""


class Recorded:
    """The runner's progress, as a list: what a console would have shown."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def target(self, target_id, state, **info) -> None:
        self.seen.append(("target", target_id, state))

    def check(self, target_id, name, status) -> None:
        self.seen.append(("check", name, status))

    def log(self, target_id, message) -> None:
        self.seen.append(("log", message))


@pytest.fixture(params=["started", "forked"])
def fake_child(request, tmp_path: Path) -> Iterator[Callable[[str], Child]]:
    """Children running ``body`` (with ``done(name)`` and the protocol at hand), each
    started with its interpreter, or forked from a kept probe (:mod:`matrix.forks`)
    as check processes are: the runner must read both alike."""
    folder = tmp_path / "fake"
    folder.mkdir()
    path = [folder, harness_path(tmp_path / "cache")]
    kept: list[Forks] = []

    def make(body: str) -> Child:
        name = f"fakechild{len(list(folder.glob('*.py')))}"
        (folder / f"{name}.py").write_text(
            FAKE.format(body=textwrap.indent(textwrap.dedent(body), "    "))
        )
        forks = None
        if request.param == "forked":
            probing = probe([], Path(sys.executable), path, (), 60, serve=True)
            assert probing.forks is not None, probing.output
            forks = probing.forks
            kept.append(forks)
        child = Child(Path(sys.executable), [], None, None, path, module=name, forks=forks)
        assert isinstance(child.process, ForkedProcess) == (forks is not None)
        return child

    yield make
    for forks in kept:
        forks.close()


def target_run(
    tmp_path: Path, check_timeout_s=60.0, run_timeout_s=600.0, checks=CHECKS
) -> TargetRun:
    target = load_matrix().targets[0]
    options = RunOptions(
        targets=[target],
        matrix_file=Path("targets.toml"),
        reports_dir=tmp_path / "reports",
        plugin="fake",
        checks=checks,
        check_timeout_s=check_timeout_s,
        run_timeout_s=run_timeout_s,
    )
    run = Run("r1", options, Future(), None, Recorded(), tmp_path)
    run.deadline = time.monotonic() + run_timeout_s
    return TargetRun(target, run)


def statuses(running: TargetRun) -> dict[str, tuple[Status, str]]:
    return {c.name: (c.status, c.reason) for c in running.result.checks}


def test_every_check_reported_and_the_last_word_pass(tmp_path, fake_child):
    running = target_run(tmp_path)
    child = fake_child(
        """
        for name in ("single_head", "upgrade_stepwise", "version_table_at_head"):
            emit(Started(name)); done(name)
        emit(WaiversUsed([0, 2]))
        """,
    )
    running.read(child, None)
    assert {s for s, _ in statuses(running).values()} == {Status.PASSED}
    assert running.result.fatal is None
    assert running.waivers_used == {0, 2}
    assert ("check", "upgrade_stepwise", "running") in running.progress.seen


def test_a_check_that_never_ends_is_an_error_and_the_rest_not_run(tmp_path, fake_child):
    running = target_run(tmp_path, check_timeout_s=1)
    child = fake_child(
        """
        emit(Started("single_head")); done("single_head")
        emit(Started("upgrade_stepwise"))
        time.sleep(120)
        """,
    )
    running.read(child, None)
    found = statuses(running)
    assert found["single_head"][0] == Status.PASSED
    assert found["upgrade_stepwise"] == (
        Status.ERROR,
        "timed out after 1 s; no statement was running",
    )
    assert found["version_table_at_head"] == (
        Status.NOT_RUN,
        "the check process was stopped when upgrade_stepwise timed out",
    )
    assert child.process.poll() is not None  # killed, not left running


def test_a_child_that_dies_during_a_check_blames_that_check_with_its_last_words(
    tmp_path, fake_child
):
    running = target_run(tmp_path)
    child = fake_child(
        """
        emit(Started("single_head")); done("single_head")
        emit(Started("upgrade_stepwise"))
        print("Segmentation fault in the driver", flush=True)
        os._exit(7)
        """,
    )
    running.read(child, None)
    died = next(c for c in running.result.checks if c.name == "upgrade_stepwise")
    assert died.status == Status.ERROR
    assert died.reason == "the check process ended (exit code 7) while this check ran"
    assert "Segmentation fault in the driver" in died.detail
    assert statuses(running)["version_table_at_head"] == (
        Status.NOT_RUN,
        "the check process ended during upgrade_stepwise",
    )


def test_a_child_that_dies_between_checks_is_an_error_of_the_target(tmp_path, fake_child):
    running = target_run(tmp_path)
    child = fake_child('emit(Started("single_head")); done("single_head"); os._exit(3)')
    running.read(child, None)
    assert running.result.fatal["status"] == "error"
    assert running.result.fatal["reason"].startswith(
        "the check process ended (exit code 3) before upgrade_stepwise"
    )


def test_a_child_that_ends_without_its_last_word_is_an_error(tmp_path, fake_child):
    """Every check reported, but not which waivers it used: they would be listed as stale."""
    running = target_run(tmp_path)
    child = fake_child(
        """
        for name in ("single_head", "upgrade_stepwise", "version_table_at_head"):
            emit(Started(name)); done(name)
        """,
    )
    running.read(child, None)
    assert running.result.fatal["reason"].startswith(
        "the check process ended (exit code 0) after its checks"
    )
    assert {s for s, _ in statuses(running).values()} == {Status.PASSED}


def test_a_child_that_floods_its_output_is_still_read_to_the_end(tmp_path, fake_child):
    """Megabytes of a plugin's prints between events: the events arrive, the tail is bounded."""
    running = target_run(tmp_path)
    child = fake_child(
        """
        line = "x" * 200
        for name in ("single_head", "upgrade_stepwise", "version_table_at_head"):
            emit(Started(name))
            for n in range(20000):
                print(f"{name} {n} {line}")
            sys.stdout.write("\\xff\\xfe not utf-8 either\\n")
            done(name)
        emit(WaiversUsed([]))
        """,
    )
    running.read(child, None)
    assert {s for s, _ in statuses(running).values()} == {Status.PASSED}
    assert running.result.fatal is None
    assert len(child.output) == OUTPUT_KEPT


def test_a_fatal_cause_is_the_targets_verdict_and_no_check_runs(tmp_path, fake_child):
    running = target_run(tmp_path)
    cause = Cause("plugin", "ImportError: cannot import name 'x'", where="peek_plugin_x/a.py:3")
    child = fake_child(f"emit(Fatal(Cause(**{dump(cause)!r})))")
    running.read(child, None)
    assert running.result.fatal == {
        "status": "failed",
        "reason": "the plugin cannot be loaded at peek_plugin_x/a.py:3: "
        "ImportError: cannot import name 'x'",
    }
    assert {s for s, _ in statuses(running).values()} == {Status.NOT_RUN}


def test_the_runs_deadline_stops_the_check_that_runs(tmp_path, fake_child):
    running = target_run(tmp_path, run_timeout_s=1)
    child = fake_child('emit(Started("single_head")); time.sleep(120)')
    running.read(child, None)
    found = statuses(running)
    assert found["single_head"] == (
        Status.ERROR,
        "stopped: the run's timeout of 1 s was reached",
    )
    assert found["upgrade_stepwise"] == (Status.NOT_RUN, "the run's timeout of 1 s was reached")


def test_the_sites_process_ending_without_its_last_word_is_an_error(tmp_path, fake_child):
    target = load_matrix().targets[0]
    options = SiteOptions(
        targets=[target],
        matrix_file=Path("targets.toml"),
        site=Site(tmp_path / "site.toml", "s", "", ()),
        check_timeout_s=60,
    )
    run = Run("r1", options, Future(), None, Recorded(), tmp_path)
    run.deadline = time.monotonic() + 600
    site_target = SiteTarget(target, run)
    child = fake_child('emit(Started("baseline")); print("boom", flush=True)')
    site_target.read(child, [])
    assert site_target.result.fatal["status"] == "error"
    assert site_target.result.fatal["reason"].startswith(
        "the site's check process ended (exit code 0)"
    )
    assert "boom" in site_target.result.fatal["reason"]
    child = fake_child("emit(Finished())")
    site_target.result.fatal = None
    site_target.read(child, [])
    assert site_target.result.fatal is None


# -- the real check process, where no server was reached ------------------------------------


def test_the_check_processs_verdicts_reach_the_runner_through_the_protocol(tmp_path):
    """The check process itself (not a fake) on a plugin with two heads, for a target no
    server reached: the history is judged and blamed, every live check is not_run, and
    the runner reports exactly that, with the process's last word heard."""
    spec = PluginSpec("processheads", healthy_revisions())
    spec.revisions.append(Revision("c3", "a1", "pass", "pass"))
    package = write_plugin(tmp_path / "src", spec)
    plugin = Plugin(spec.package, "0", package.parent, package / "_private" / "alembic", "x")
    names = ("single_head", "upgrade_stepwise", "offline_sql", "constraints_named")
    running = target_run(tmp_path, checks=names)
    where = TargetSpec(running.target.engine, running.target.id, tmp_path / "sql")
    path = [package.parent, harness_path(tmp_path / "cache")]
    child = Child(Path(sys.executable), [], CellSpec(plugin, where, names), None, path)
    running.read(child, None)
    assert running.result.fatal is None, child.tail()
    (head,) = [c for c in running.result.checks if c.name == "single_head"]
    assert (head.status, head.revision) == (Status.FAILED, "b2,c3")
    assert statuses(running)["upgrade_stepwise"] == (
        Status.NOT_RUN,
        "no live server was reached",
    )
    for name in ("offline_sql", "constraints_named"):
        assert statuses(running)[name] == (
            Status.NOT_RUN,
            "needs single_head, which did not pass",
        )
    assert running.waivers_used == set()
    assert ("log", "schema pl_processheads") in running.progress.seen  # Ready, decoded


# -- the protocol itself ----------------------------------------------------------------


def test_every_spec_and_event_goes_through_json_and_back():
    plugin = Plugin("peek_plugin_x", "1.0", Path("/env/lib"), Path("/env/lib/x/alembic"), "wheel")
    where = TargetSpec("postgresql", "pg15", Path("sql/pg15"), 60.0, 30.0, {"waive": []})
    spec = CellSpec(
        plugin,
        where,
        CHECKS,
        scale=10,
        previous=PreviousRelease(alembic_dir=Path("/old"), version="0.9", head="a1"),
    )
    assert decode_spec(CellSpec, encode_spec(spec)) == spec
    result = CheckResult("single_head", Status.FAILED, reason="two heads", revision="b2")
    for event in (Started("x"), Done(result), WaiversUsed([1]), Finished()):
        line = f"@@matrix {encode_spec(event)}"
        assert parse_event(line) == event


def test_a_spec_the_other_side_does_not_know_is_refused_not_guessed():
    """A field renamed on one side is an error where the spec is read, never a KeyError later."""
    where = {"engine": "postgresql", "target": "pg15", "sql_dir": "sql", "policy": {}}
    with pytest.raises(TypeError, match="no field engines"):
        load(TargetSpec, {**where, "engines": ["postgresql"]})
    with pytest.raises(TypeError):
        load(TargetSpec, {"engine": "postgresql"})  # target and sql_dir missing
    assert parse_event('@@matrix {"event": "no_such_event"}') is None
    assert parse_event("plain output") is None


def test_a_probe_that_is_gone_leaves_the_check_process_started_instead(tmp_path):
    """Forking is a saving, never a condition: without the kept probe, a process is started."""
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "fakechild.py").write_text(FAKE.format(body="    emit(Finished())"))
    path = [folder, harness_path(tmp_path / "cache")]
    forks = probe([], Path(sys.executable), path, (), 60, serve=True).forks
    assert forks is not None and forks.alive
    forks.close()

    child = Child(Path(sys.executable), [], None, None, path, module="fakechild", forks=forks)
    events = list(child.events(timeout=30))
    child.kill()

    assert not forks.alive
    assert not isinstance(child.process, ForkedProcess)
    assert events == [Finished()]
    assert child.process.returncode == 0


def test_a_fork_the_harness_gave_up_on_never_runs_beside_its_replacement(tmp_path, monkeypatch):
    """No answer in time: the process is started instead, and the fork, unsaid, ends unrun."""
    folder = tmp_path / "fake"
    folder.mkdir()
    marker = tmp_path / "ran"
    body = f"    open({str(marker)!r}, 'a').write(f'{{os.getppid()}}\\n'); emit(Finished())"
    (folder / "fakechild.py").write_text(FAKE.format(body=body))
    path = [folder, harness_path(tmp_path / "cache")]
    forks = probe([], Path(sys.executable), path, (), 60, serve=True).forks
    assert forks is not None
    monkeypatch.setattr("matrix.forks.ANSWER_TIMEOUT_S", 0.0)
    try:
        child = Child(Path(sys.executable), [], None, None, path, module="fakechild", forks=forks)
        events = list(child.events(timeout=30))
        child.kill()
        time.sleep(1.0)  # time enough for a fork that wrongly ran to write
    finally:
        forks.close()

    assert not isinstance(child.process, ForkedProcess)
    assert events == [Finished()]
    assert marker.read_text().split() == [str(os.getpid())]  # the started process only


def test_a_system_without_the_forks_channel_probes_as_before(tmp_path, monkeypatch):
    """Where the channel cannot be made, the probe ends as it always did, and nothing forks."""

    def no_channel():
        raise OSError("Protocol not supported")

    monkeypatch.setattr("matrix.install.prepare.channel_pair", no_channel)
    folder = tmp_path / "fake"
    folder.mkdir()
    probing = probe(
        [], Path(sys.executable), [folder, harness_path(tmp_path / "cache")], (), 60, serve=True
    )

    assert probing.forks is None
    assert probing.exit_code == 0
