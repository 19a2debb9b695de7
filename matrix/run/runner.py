"""The run, as a list of small steps: plugin, targets, reports.

:func:`run_matrix` reads in one screen: take the reports folder (one writer
at a time), start the targets' servers while the plugin is built, installed
in its own environment and probed, run every target (in parallel, each with
its own database and check process, :mod:`matrix.run.target`), and write the
reports after each target, so that a crash keeps what was gathered.

A target never raises, so the run always ends, within its own timeout. The
reports are written through the writer the command line gives (the report
stage comes after this one).
"""

from __future__ import annotations

import datetime
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import matrix
from matrix import catalogue, masking
from matrix.define.policy import stale
from matrix.engines import engine_named
from matrix.errors import HarnessError
from matrix.install import index, sources
from matrix.install.prepare import PreparedPlugin, prepare_plugin
from matrix.results import PluginInfo, Provenance, RunReport, RunState, TargetResult
from matrix.results.benchmark import Settings
from matrix.run.frame import (
    GRACE_S,
    Interrupted,
    Progress,
    Run,
    TargetsOptions,
    Writer,
    finished,
    run_frame,
    start_targets,
)
from matrix.run.target import TargetRun, not_run, pending


@dataclass(kw_only=True)
class RunOptions(TargetsOptions):
    """Everything a run needs, resolved and validated by the command line."""

    plugin: str
    dist_dir: Path | None = None
    with_requirements: tuple[str, ...] = ()
    without_dependencies: tuple[str, ...] = ()
    constraints: Path | None = None
    checks: tuple[str, ...] = catalogue.REQUIRED
    scale: int = 0  # --scale: rows per table for migration_cost
    # "auto" (the highest earlier release on pip's index), a --plugin form, or None
    previous: str | None = None
    benchmark: Settings | None = None
    # The command line's options that repeat this run, for the commands the gate suggests.
    run_options: tuple[str, ...] = ()

    @property
    def durable_servers(self) -> bool:
        """migration_cost times migrations: on servers that write as a site's do."""
        return "migration_cost" in self.checks


class ReportWriter(Writer, Protocol):
    """How the run hands its report on, as it goes (:class:`matrix.report.ReportWriter`)."""

    def begin(self, report: RunReport) -> None: ...

    def earlier_results(self, report: RunReport) -> list[TargetResult]: ...

    def write_target(self, report: RunReport, result: TargetResult) -> None: ...

    def write_summaries(self, report: RunReport) -> None: ...


class _Gathered:
    """What the run has gathered so far: every target's result, the report, how far it got."""

    def __init__(self, options: RunOptions, writer: ReportWriter) -> None:
        self.options = options
        self.writer = writer
        self.results: dict[str, TargetResult] = {t.id: pending(t) for t in options.targets}
        self.targets: dict[str, TargetRun] = {}
        self.finished: set[str] = set()
        self.report: RunReport | None = None
        self.stage = "preparing the plugin"
        self.started = time.perf_counter()

    def finish(self) -> None:
        """After the providers are closed: settle an interrupted run, write the summaries."""
        report = self.report
        if report is None:
            return
        if report.state == RunState.INTERRUPTED:
            self._settle_interrupted(report)
        report.phases["total"] = round(time.perf_counter() - self.started, 3)
        self.writer.write_summaries(report)

    def _settle_interrupted(self, report: RunReport) -> None:
        """Every target this run had not finished: an error saying how far it had got."""
        for target in self.options.targets:
            if target.id in self.finished:
                continue
            running = self.targets.get(target.id)
            if running is None:
                result = self.results[target.id] = pending(target)
                result.fatal = {
                    "status": "error",
                    "reason": f"interrupted ({report.interrupted}) before this target started",
                }
                result.checks = not_run(self.options.checks, "the run was interrupted")
                result.settle()
            else:
                self.results[target.id], _ = running.abandoned(
                    f"interrupted ({report.interrupted}) while {running.stage}"
                )
        report.targets = list(self.results.values())


def run_matrix(options: RunOptions, progress: Progress, writer: ReportWriter) -> RunReport:
    gathered = _Gathered(options, writer)
    with run_frame(options, writer, progress, gathered.finish) as run:
        # Until the plugin is known, the run's report says only that it runs: the
        # previous run's summaries must never pass for this one's.
        report = gathered.report = _unprepared_report(options, run.run_id, gathered.results)
        writer.begin(report)
        try:
            done = _run_targets(run, gathered)
            _prepare(options, run.prepared, run.work, progress)
            report = gathered.report = _report(options, run.prepared.result(), run)
            results = {t.id: t for t in writer.earlier_results(report)} | gathered.results
            gathered.results = results
            report.targets = list(results.values())
            gathered.stage = "running the targets"
            used: set[int] = set()
            for result, waivers_used in done:
                gathered.finished.add(result.id)
                results[result.id] = result
                used |= waivers_used
                report.targets = list(results.values())
                writer.write_target(report, result)
                writer.write_summaries(report)
            report.policy["stale"] = stale(options.policy, used)
            report.state = RunState.FINISHED
        except BaseException as error:
            report.state = RunState.INTERRUPTED
            report.interrupted = f"{_cause(error)} while {gathered.stage}"
            raise
        finally:
            if run.prepared.done() and run.prepared.exception() is None:
                run.prepared.result().close()
    return report


def _run_targets(run: Run[PreparedPlugin], gathered: _Gathered):
    """Start every target on its thread at once; yield (result, waivers used) as each finishes.

    Every server starts at once, before the plugin is ready, so servers come
    up while it is built and installed: starting is waiting (on the engine,
    initdb, the disk), not work. Only the checks, which are work, take one
    of ``jobs`` slots. Once the run's timeout and its grace are over, a
    target still busy is taken as it stands, as an error.
    """
    done: queue.Queue[tuple[TargetResult, set[int]]] = queue.Queue()
    options = run.options
    slots = threading.BoundedSemaphore(max(1, options.jobs))
    for target in options.targets:
        run.progress.target(target.id, "waiting")

    def run_one(target) -> tuple[TargetResult, set[int]]:
        running = gathered.targets[target.id] = TargetRun(target, run, slots)
        try:
            return running.run()
        except Exception as error:  # noqa: BLE001 - outside the target's guard; still a result
            return running.abandoned(f"the harness failed: {type(error).__name__}: {error}")

    start_targets(options.targets, len(options.targets), run_one, done)

    def results():
        left = {target.id for target in options.targets}
        yield from finished(done, left, run.deadline, key=lambda item: item[0].id)
        why = (
            f"the run outlived --run-timeout ({options.run_timeout_s:g} s) and "
            f"{GRACE_S:g} s of grace while this target was still busy"
        )
        for target in options.targets:
            if target.id in left:
                running = gathered.targets.get(target.id) or TargetRun(target, run)
                yield running.abandoned(why)

    return results()


def _cause(error: BaseException) -> str:
    """What ended the run, in a few words: a signal, or the error's first line."""
    if isinstance(error, Interrupted | KeyboardInterrupt):
        return str(error) or "SIGINT"
    text = masking.mask(str(error)).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _unprepared_report(
    options: RunOptions, run_id: str, results: dict[str, TargetResult]
) -> RunReport:
    """The run's report before its plugin is prepared: which run, and that it is running."""
    for result in results.values():
        result.reason = f"the run {run_id} (pid {os.getpid()}) has not reached this target yet"
    return RunReport(
        plugin=PluginInfo(
            name=str(options.plugin),
            version="",
            source=Provenance("not prepared yet", file=str(options.plugin)),
        ),
        run_id=run_id,
        started_at=_now(),
        matrix_file=str(options.matrix_file),
        targets=list(results.values()),
        policy={**options.policy.to_dict(), "stale": []},
        state=RunState.RUNNING,
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _prepare(
    options: RunOptions, plugin: Future[PreparedPlugin], work: Path, progress: Progress
) -> None:
    """Build, install and probe the plugin; the cells wait on the future."""
    prepared = None
    try:
        prepared = _prepare_one(options.plugin, options, work, progress, options.dist_dir)
        prepared.previous, prepared.previous_reason = _previous(options, prepared, work, progress)
    except BaseException as error:  # the cells wait on the future: never leave it unresolved
        if prepared is not None:
            prepared.close()  # its kept probe: nobody will fork from it
        plugin.set_exception(error)
        raise
    plugin.set_result(prepared)
    env = "reused" if prepared.environment.reused else "created"
    progress.log(
        "plugin",
        f"{prepared.plugin.package} {prepared.plugin.version}: {len(prepared.revisions)} "
        f"revisions, schema {prepared.schema}; environment {env} in "
        f"{prepared.environment.seconds:.1f} s",
    )


def _prepare_one(
    spec: str | Path,
    options: RunOptions,
    work: Path,
    progress: Progress,
    dist_dir: Path | None = None,
) -> PreparedPlugin:
    """One plugin (this build or the previous release) with the run's environment options."""
    engines = sorted({t.engine for t in options.targets})
    return prepare_plugin(
        spec,
        cache=options.cache_dir,
        work=work,
        dist_dir=dist_dir,
        with_requirements=options.with_requirements,
        without_dependencies=options.without_dependencies,
        constraints=options.constraints,
        drivers=tuple(engine_named(e).driver_requirement for e in engines),
        engines=tuple(engines),
        log=lambda message: progress.log("plugin", message),
        serve=True,
    )


def _previous(
    options: RunOptions, prepared: PreparedPlugin, work: Path, progress: Progress
) -> tuple[PreparedPlugin | None, str]:
    """The previous release, prepared in an environment of its own; or None and why.

    An explicit ``--previous`` that cannot be prepared is bad input (raised);
    one looked up on the index that cannot be installed is reported on the
    release checks instead, so the rest of the run still proves this build.
    """
    if options.previous is None:
        return None, "no previous release was given (--previous auto, or REQ or PATH)"
    spec = options.previous
    if spec == "auto":
        plugin = prepared.plugin
        if not plugin.distribution:
            return None, "a package used in place has no releases; pass --previous REQ|PATH"
        found = index.previous_release(plugin.distribution, plugin.version)
        if found.requirement is None:
            return None, found.why
        spec = found.requirement
        progress.log("plugin", f"previous release: {spec} ({found.why})")
    else:
        progress.log("plugin", f"previous release: {spec}")
    try:
        previous = _prepare_one(spec, options, work / "previous", progress)
    except HarnessError as error:
        if options.previous != "auto":
            raise
        return None, f"the previous release {spec} cannot be prepared: {error.cause}"
    return previous, ""


def _report(options: RunOptions, prepared: PreparedPlugin, run: Run) -> RunReport:
    plugin = prepared.plugin
    versions = prepared.environment.versions
    return RunReport(
        plugin=PluginInfo(
            name=plugin.package,
            version=plugin.version,
            source=prepared.built.provenance,
            wheel=sources.shown(plugin.wheel) if plugin.wheel else None,
            wheel_sha256=plugin.wheel_sha256,
            distribution=plugin.distribution,
            revisions=len(prepared.revisions),
            schema=prepared.schema,
        ),
        run_id=run.run_id,
        started_at=_now(),
        matrix_file=str(options.matrix_file),
        phases={"prepare": round(time.perf_counter() - run.started, 3), **prepared.seconds},
        environment=versions,
        harness={
            "peek-plugin-matrix": matrix.__version__,
            **{k: versions[k] for k in ("SQLAlchemy", "alembic", "sqlglot") if k in versions},
        },
        policy={**options.policy.to_dict(), "stale": []},
        run_options=list(options.run_options),
        state=RunState.RUNNING,
    )
