"""The run, as a list of small steps: plugin, cells, reports.

:func:`run_matrix` reads in one screen: take the reports folder (one writer
at a time), start the targets' servers while the plugin is built, installed
in its own environment and probed, run every target's cell (in parallel,
each with its own database and check process), and write the reports after
each cell, so that a crash keeps what was gathered.

A cell never raises: whatever happens in it (a server that never comes up,
a check process that dies, a check that outlives its timeout) becomes that
target's result, so the run always ends, within its own timeout.
"""

from __future__ import annotations

import copy
import datetime
import os
import queue
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL

import matrix
from matrix import catalogue, masking
from matrix.check import lint
from matrix.child import Child
from matrix.define.policy import Policy, stale
from matrix.define.targets import Target
from matrix.engines import engine_named
from matrix.errors import HarnessError, ProviderUnavailable
from matrix.install import index, sources
from matrix.install.prepare import PreparedPlugin, prepare_plugin
from matrix.provide import ProviderSet, databases, leftovers
from matrix.report import ReportWriter
from matrix.results import (
    CheckResult,
    PluginInfo,
    Provenance,
    RunReport,
    RunState,
    Status,
    TargetResult,
)

if TYPE_CHECKING:  # images imports the Docker SDK
    from matrix.provide.images import BuildPlace

DEFAULT_CHECK_TIMEOUT_S = 900.0
DEFAULT_RUN_TIMEOUT_S = 3600.0
DEFAULT_LOCK_TIMEOUT_S = 60.0
# After --run-timeout, how long a cell may take to kill its check process and
# drop its databases before its result is taken as it stands.
_GRACE_S = 30.0


@dataclass
class RunOptions:
    """Everything a run needs, resolved and validated by the command line."""

    plugin: str
    targets: list[Target]
    matrix_file: Path
    reports_dir: Path = Path("reports")
    provider: str = "auto"
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)
    keep: bool = False
    docker_network: str | None = None
    allow_build: bool = True
    dist_dir: Path | None = None
    cache_dir: Path = Path.home() / ".cache" / "peek-matrix"
    with_requirements: tuple[str, ...] = ()
    without_dependencies: tuple[str, ...] = ()
    constraints: Path | None = None
    policy: Policy = field(default_factory=Policy)
    external_urls: dict[str, URL] = field(default_factory=dict)
    pg_root: Path = Path("/usr/lib/postgresql")
    image_place: BuildPlace | None = None  # where the docker provider builds a missing image
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    checks: tuple[str, ...] = catalogue.REQUIRED
    # "auto" (the highest earlier release on pip's index), a --plugin form, or None
    previous: str | None = None
    check_options: dict[str, Any] = field(default_factory=dict)
    benchmark: dict[str, Any] | None = None
    # The command line's options that repeat this run, for the commands the gate suggests.
    run_options: tuple[str, ...] = ()


class Progress(Protocol):
    """Where the run tells what happens (the command line's console)."""

    def target(self, target_id: str, state: str, **info: str) -> None: ...

    def check(self, target_id: str, name: str, status: str) -> None: ...

    def log(self, target_id: str, message: str) -> None: ...


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C: unwind, clean up, keep the results so far."""


def run_matrix(options: RunOptions, progress: Progress) -> RunReport:
    run_id = secrets.token_hex(4)
    started = time.perf_counter()
    deadline = time.monotonic() + options.run_timeout_s
    writer = ReportWriter(options.reports_dir)
    with writer.locked(), scratch(run_id) as work, interrupt_on_signals():
        providers = ProviderSet(
            run_id,
            options.provider,
            options.keep,
            options.docker_network,
            options.allow_build,
            external_urls=options.external_urls,
            pg_root=options.pg_root,
            state_dir=options.cache_dir / "runs",
            image_place=options.image_place,
        )
        plugin: Future[PreparedPlugin] = Future()
        results: dict[str, TargetResult] = {t.id: _pending(t) for t in options.targets}
        cells: dict[str, _Cell] = {}
        finished: set[str] = set()
        # Until the plugin is known, the run's report says only that it runs: the
        # previous run's summaries must never pass for this one's.
        report = _unprepared_report(options, run_id, results)
        writer.begin(report)
        stage = "preparing the plugin"
        try:
            done = _run_cells(options, plugin, providers, progress, deadline, work, cells)
            _prepare(options, plugin, work, progress)
            prepared = plugin.result()
            report = _report(options, prepared, run_id, started)
            results = {t.id: t for t in writer.earlier_results(report)} | results
            report.targets = list(results.values())
            stage = "running the targets"
            used: set[int] = set()
            for result, waivers_used in done:
                finished.add(result.id)
                results[result.id] = result
                used |= waivers_used
                report.targets = list(results.values())
                writer.write_target(report, result)
                writer.write_summaries(report)
            report.policy["stale"] = stale(options.policy, used)
            report.state = RunState.FINISHED
        except BaseException as error:
            report.state = RunState.INTERRUPTED
            report.interrupted = f"{_cause(error)} while {stage}"
            raise
        finally:
            try:
                providers.close()
            finally:  # a failed cleanup still leaves the report of what was gathered
                if report.state == RunState.INTERRUPTED:
                    _settle_interrupted(report, results, cells, finished, options)
                report.phases["total"] = round(time.perf_counter() - started, 3)
                writer.write_summaries(report)
    return report


def _cause(error: BaseException) -> str:
    """What ended the run, in a few words: a signal, or the error's first line."""
    if isinstance(error, Interrupted | KeyboardInterrupt):
        return str(error) or "SIGINT"
    text = masking.mask(str(error)).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _settle_interrupted(
    report: RunReport,
    results: dict[str, TargetResult],
    cells: dict[str, _Cell],
    finished: set[str],
    options: RunOptions,
) -> None:
    """Every target this run had not finished: an error saying how far it had got."""
    for target in options.targets:
        if target.id in finished:
            continue
        cell = cells.get(target.id)
        if cell is None:
            results[target.id] = _pending(target)
            results[target.id].fatal = {
                "status": "error",
                "reason": f"interrupted ({report.interrupted}) before this target started",
            }
            results[target.id].checks = _not_run(options.checks, "the run was interrupted")
            results[target.id].settle()
        else:
            results[target.id], _ = cell.abandoned(
                f"interrupted ({report.interrupted}) while {cell.stage}"
            )
    report.targets = list(results.values())


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
    try:
        prepared = _prepare_one(options.plugin, options, work, progress, options.dist_dir)
        prepared.previous, prepared.previous_reason = _previous(options, prepared, work, progress)
    except BaseException as error:  # the cells wait on the future: never leave it unresolved
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


def _report(options: RunOptions, prepared: PreparedPlugin, run_id: str, started: float):
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
        run_id=run_id,
        started_at=_now(),
        matrix_file=str(options.matrix_file),
        phases={"prepare": round(time.perf_counter() - started, 3), **prepared.seconds},
        environment=versions,
        harness={
            "peek-plugin-matrix": matrix.__version__,
            **{k: versions[k] for k in ("SQLAlchemy", "alembic", "sqlglot") if k in versions},
        },
        policy={**options.policy.to_dict(), "stale": []},
        run_options=list(options.run_options),
        state=RunState.RUNNING,
    )


def _pending(target: Target) -> TargetResult:
    return TargetResult(target.id, target.engine, target.label, target.required)


def _run_cells(
    options: RunOptions,
    plugin: Future[PreparedPlugin],
    providers: ProviderSet,
    progress: Progress,
    deadline: float,
    work: Path,
    cells: dict[str, _Cell],
) -> Iterator[tuple[TargetResult, set[int]]]:
    """Start the cells on ``jobs`` daemon threads at once; yield results as they finish.

    The threads start before the plugin is ready, so servers come up while
    it is built and installed. Daemon threads, so that an interrupted run can
    leave while a cell still waits for a server: ``providers.close()`` removes
    what it started.
    """
    todo: queue.Queue[Target] = queue.Queue()
    done: queue.Queue[tuple[TargetResult, set[int]]] = queue.Queue()
    for target in options.targets:
        todo.put(target)
        progress.target(target.id, "waiting")

    def worker() -> None:
        while True:
            try:
                target = todo.get_nowait()
            except queue.Empty:
                return
            cell = cells[target.id] = _Cell(
                target, options, plugin, providers, progress, deadline, work
            )
            try:
                done.put(cell.run())
            except Exception as error:  # noqa: BLE001 - outside the cell's guard; still a result
                done.put(cell.abandoned(f"the harness failed: {type(error).__name__}: {error}"))

    for _ in range(max(1, min(options.jobs, len(options.targets)))):
        threading.Thread(target=worker, daemon=True).start()

    def results() -> Iterator[tuple[TargetResult, set[int]]]:
        pending = {target.id: target for target in options.targets}
        while pending:
            left = deadline + _GRACE_S - time.monotonic()
            if left <= 0:
                break
            try:
                result, used = done.get(timeout=min(0.2, left))
            except queue.Empty:
                continue
            pending.pop(result.id, None)
            yield result, used
        why = (
            f"the run outlived --run-timeout ({options.run_timeout_s:g} s) and "
            f"{_GRACE_S:g} s of grace while this target was still busy"
        )
        for target_id, target in pending.items():
            cell = cells.get(target_id) or _Cell(
                target, options, plugin, providers, progress, deadline, work
            )
            yield cell.abandoned(why)

    return results()


class _Cell:
    """One target: a server, a database, a check process, a result."""

    def __init__(
        self,
        target: Target,
        options: RunOptions,
        plugin: Future[PreparedPlugin],
        providers: ProviderSet,
        progress: Progress,
        deadline: float,
        work: Path,
    ) -> None:
        self.work = work
        self.target = target
        self.options = options
        self.plugin = plugin
        self.providers = providers
        self.progress = progress
        self.deadline = deadline
        self.result = _pending(target)
        self.waivers_used: set[int] = set()
        self.stage = "choosing a provider"  # how far it got, for an interrupted run's report

    def run(self) -> tuple[TargetResult, set[int]]:
        started = time.perf_counter()
        try:
            self._run(started)
        except ProviderUnavailable as error:
            self._offline(masking.mask(str(error)))
        except HarnessError as error:
            self._error(masking.mask(str(error)))
        except Exception as error:  # noqa: BLE001 - one target's crash must not end the run
            self._error(masking.mask(f"{type(error).__name__}: {error}"))
        self.result.duration_s = round(time.perf_counter() - started, 3)
        self.result.settle()
        self.progress.target(self.target.id, "done", status=str(self.result.status))
        return self.result, self.waivers_used

    def abandoned(self, reason: str) -> tuple[TargetResult, set[int]]:
        """What this cell gathered so far, as an error: its thread is no longer waited for."""
        result = copy.deepcopy(self.result)
        result.fatal = {"status": "error", "reason": masking.mask(reason)}
        done = {check.name for check in result.checks}
        missing = tuple(name for name in self.options.checks if name not in done)
        result.checks += _not_run(missing, "the target was abandoned before this check")
        result.settle()
        self.progress.target(self.target.id, "done", status=str(result.status))
        return result, set(self.waivers_used)

    def _run(self, started: float) -> None:
        target, result = self.target, self.result
        provider, reason = self.providers.choose(target)
        if provider is None:
            raise ProviderUnavailable(reason)
        result.provider = provider.name
        self.progress.target(target.id, "starting", provider=provider.name)
        self.stage = f"starting its server ({provider.name})"
        with provider.database(target, lambda m: self.progress.log(target.id, m)) as db:
            result.ready_seconds = round(db.ready_seconds, 3)
            for note in db.notes:  # how the server came to be (image, network), its memory
                self.progress.log(target.id, note)
            result.phases["start"] = round(time.perf_counter() - started, 3)
            self.stage = "waiting for the plugin, its server ready"
            prepared = self._plugin()
            if prepared is None:
                return
            self.stage = "preparing its database"
            databases.prepare_database(
                db.url,
                postgis=bool(target.postgis),
                statement_timeout_s=self.options.check_timeout_s,
                lock_timeout_s=self.options.lock_timeout_s,
            )
            info = databases.server_info(db.url)
            result.server_version, result.postgis_version = (
                info.server_version,
                info.postgis_version,
            )
            wrong = engine_named(target.engine).wrong_server(target.version, target.postgis, info)
            if wrong:
                raise ProviderUnavailable(
                    f"The server given for {target.id} is another version: {wrong}.",
                    f"Serve {target.label} (its image, MATRIX_PG_ROOT, or "
                    f"{target.settings.url_env}), or leave it out with --targets.",
                )
            result.reached = True
            self.progress.target(target.id, "running", provider=provider.name)
            checks_started = time.perf_counter()
            try:
                release = self._seed(prepared, db.url)
                self._checks(prepared, db.url, release)
                lint.attach(self.result, self.options.reports_dir / "sql" / target.id, target)
            finally:
                databases.drop_siblings(db.url)
            result.phases["checks"] = round(time.perf_counter() - checks_started, 3)
            cleanup_started = time.perf_counter()
            self.stage = "cleaning up, its checks done"
        result.phases["cleanup"] = round(time.perf_counter() - cleanup_started, 3)

    def _plugin(self) -> PreparedPlugin | None:
        """The prepared plugin; None (the target stays pending) when preparing failed."""
        try:
            prepared = self.plugin.result()
        except BaseException:  # noqa: BLE001 - the main thread reports it
            return None
        failure = prepared.load_failure(self.target.engine)
        if failure:
            self.result.fatal = {"status": "failed", "reason": failure}
            self.result.checks = _not_run(self.options.checks, "the plugin cannot be loaded")
            return None
        return prepared

    def _offline(self, reason: str) -> None:
        """No server: the target is not_run, and the checks that need none still run."""
        self.result.status, self.result.reason = Status.NOT_RUN, reason
        self.progress.log(self.target.id, f"not_run: {reason}")
        prepared = self._plugin()
        if prepared is None or self.result.checks:
            return
        try:
            self._checks(prepared, None)
        except Exception as error:  # noqa: BLE001 - recorded, never raised: no deadlock
            self.result.checks = self.result.checks or _not_run(
                self.options.checks, f"the check process failed: {error}"
            )

    def _error(self, reason: str) -> None:
        self.result.fatal = self.result.fatal or {"status": "error", "reason": reason}
        self.progress.log(self.target.id, f"error: {reason.splitlines()[0]}")
        if not self.result.checks:
            self.result.checks = _not_run(self.options.checks, "the target errored before")

    def _seed(self, prepared: PreparedPlugin, url: URL) -> dict[str, Any]:
        """The previous release at its head, with rows, in ``<database>_release``.

        Its own check process (its plugin, its environment) runs its
        migrations and writes the rows; what it wrote comes back as a ledger
        file for ``upgrade_from_release``.
        """
        previous = prepared.previous
        if previous is None:
            return {"reason": prepared.previous_reason}
        failure = previous.load_failure(self.target.engine)
        if failure:
            return {"reason": f"the previous release {previous.plugin.version}: {failure}"}
        facts = {
            "alembic_dir": str(previous.plugin.alembic_dir),
            "version": previous.plugin.version,
            "head": ",".join(previous.heads),
        }
        if url is None:
            return facts
        engine = engine_named(url.get_backend_name())
        name = f"{url.database}_release"
        template = url.database if engine.clones_databases else None
        release = databases.create_database(url, name, template=template)
        databases.prepare_database(
            release,
            postgis=False,
            statement_timeout_s=self.options.check_timeout_s,
            lock_timeout_s=self.options.lock_timeout_s,
        )
        ledger = self.work / f"{self.target.id}-release-ledger.json"
        spec = {
            "plugin": previous.plugin.to_dict(),
            "engine": self.target.engine,
            "target": self.target.id,
            "sql_dir": str(ledger.parent),
            "ledger": str(ledger),
            "statement_timeout_s": self.options.check_timeout_s,
            "lock_timeout_s": self.options.lock_timeout_s,
        }
        self.progress.log(self.target.id, f"bringing {name} to release {previous.plugin.version}")
        self.stage = f"bringing {name} to the previous release"
        rendered = release.render_as_string(hide_password=False)
        child = Child(previous.environment.python, ["--seed"], spec, rendered, previous.child_path)
        seeded: dict[str, Any] = {}
        started = time.monotonic()
        try:
            for event in child.events(timeout=0.5):
                if time.monotonic() - started > self.options.check_timeout_s:
                    seeded = {"error": f"timed out after {self.options.check_timeout_s:g} s"}
                    break
                if event is not None and "seeded" in event:
                    seeded = event["seeded"]
        finally:
            child.kill()
        if not seeded:
            seeded = {"error": f"its check process ended: {child.tail()[-300:]}"}
        facts.update(siblings={"release": name}, ledger=str(ledger))
        if "error" in seeded:
            facts["seed_error"] = seeded["error"]
        return facts

    def _checks(
        self, prepared: PreparedPlugin, url: URL | None, previous: dict[str, Any] | None = None
    ) -> None:
        """Run the check process, watching every check's time and the run's."""
        target, options = self.target, self.options
        previous = previous if previous is not None else self._seed(prepared, None)
        self.stage = "starting its check process"
        spec = {
            "plugin": prepared.plugin.to_dict(),
            "engine": target.engine,
            "target": target.id,
            "sql_dir": str(options.reports_dir / "sql" / target.id),
            "checks": list(options.checks),
            "policy": options.policy.to_dict(),
            "statement_timeout_s": options.check_timeout_s,
            "lock_timeout_s": options.lock_timeout_s,
            "options": {
                **options.check_options,
                "previous": previous,
                "siblings": previous.get("siblings", {}),
            },
            "benchmark": options.benchmark,
        }
        rendered = url.render_as_string(hide_password=False) if url is not None else None
        child = Child(prepared.environment.python, [], spec, rendered, prepared.child_path)
        reported: dict[str, CheckResult] = {}
        running: tuple[str, float] | None = None
        stopped = ""
        finished = False
        try:
            for event in child.events(timeout=0.5):
                now = time.monotonic()
                if running and now - running[1] > options.check_timeout_s:
                    stopped = self._stalled(running[0], url, options.check_timeout_s)
                    break
                if now > self.deadline:
                    stopped = f"the run's timeout of {options.run_timeout_s:g} s was reached"
                    if running:
                        reported[running[0]] = CheckResult(
                            running[0], Status.ERROR, reason=f"stopped: {stopped}"
                        )
                    break
                if event is None:
                    continue
                if "start" in event:
                    running = (event["start"], now)
                    self.stage = f"running {event['start']}"
                    self.progress.check(target.id, event["start"], "running")
                elif "done" in event:
                    check = CheckResult.from_dict(event["done"])
                    reported[check.name] = check
                    running = None
                    self.progress.check(target.id, check.name, str(check.status))
                elif "ready" in event:
                    self.progress.log(target.id, f"schema {event['ready']['schema']}")
                elif "waivers_used" in event:  # its last word after the checks
                    self.waivers_used = set(event["waivers_used"])
                    finished = True
                elif "benchmark" in event:  # the measurement ends the "benchmark" step
                    self.result.benchmark = event["benchmark"]
                    running = None
                elif "fatal" in event:
                    self.result.fatal = fatal_of(event["fatal"])
                    stopped = self.result.fatal["reason"].split(":")[0]
        finally:
            child.kill()
        if running and running[0] not in reported and not stopped:
            tail = child.tail()
            reported[running[0]] = CheckResult(
                running[0],
                Status.ERROR,
                reason=f"the check process ended (exit code {child.process.returncode}) "
                "while this check ran",
                detail=tail,
            )
            stopped = f"the check process ended during {running[0]}"
        if stopped.startswith("timed out"):
            reported[running[0]] = CheckResult(running[0], Status.ERROR, reason=stopped)
            stopped = f"the check process was stopped when {running[0]} timed out"
        missing = [name for name in options.checks if name not in reported]
        if not stopped and not self.result.fatal and (missing or not finished):
            # It died before a check or between two, or after them without saying
            # which waivers it used (they would be listed as stale): an error.
            when = f"before {missing[0]}" if missing else "after its checks"
            code = child.process.returncode
            stopped = f"the check process ended (exit code {code}) {when}"
            self.result.fatal = {"status": "error", "reason": f"{stopped}: {child.tail()[-500:]}"}
        if "benchmark" in reported:  # started, never finished: the measurement is missing
            crashed = reported["benchmark"]
            self.result.fatal = self.result.fatal or {
                "status": "error",
                "reason": f"the benchmark did not finish: {crashed.reason}",
            }
        self.result.checks = [
            reported.get(name) or CheckResult(name, Status.NOT_RUN, reason=stopped or "not run")
            for name in options.checks
        ]

    def _stalled(self, check: str, url: URL | None, timeout: float) -> str:
        """What the database was doing when ``check`` ran out of time."""
        running = _active_statements(url) if url is not None else []
        what = "; ".join(
            f"session {r['session']} {r['state']} {r['seconds']:.0f} s"
            + (f" waiting {r['waiting']}" if r.get("waiting") else "")
            + f": {' '.join(str(r['statement']).split())[:300]}"
            for r in running
        )
        return masking.mask(
            f"timed out after {timeout:g} s"
            + (f"; the database was running: {what}" if what else "; no statement was running")
        )


def fatal_of(cause: dict[str, Any]) -> dict[str, str]:
    """A target's fatal status from the check process's first cause.

    The plugin's own code failing is a verdict on the plugin (``failed``); an
    error with nothing of the plugin on the stack is the harness's (``error``).
    """
    where = f" at {cause['where']}" if cause.get("where") else ""
    if cause.get("kind") == "harness":
        return {"status": "error", "reason": f"the harness failed{where}: {cause['error']}"}
    return {"status": "failed", "reason": f"the plugin cannot be loaded{where}: {cause['error']}"}


def _not_run(names: tuple[str, ...], reason: str) -> list[CheckResult]:
    return [CheckResult(name, Status.NOT_RUN, reason=reason) for name in names]


def _active_statements(url: URL) -> list[dict[str, Any]]:
    engine = engine_named(url.get_backend_name())
    found = []
    try:
        sa_engine = databases.connect_engine(url.set(database=engine.maintenance_database))
        try:
            with sa_engine.connect() as conn:
                for name in databases.family_of(conn, url):
                    rows = conn.execute(sa.text(engine.active_statements_sql), {"database": name})
                    found += [dict(row._mapping) for row in rows]
        finally:
            sa_engine.dispose()
    except sa.exc.DBAPIError:
        return []
    return found


@contextmanager
def scratch(run_id: str) -> Iterator[Path]:
    """A temporary folder for the run, removed on every exit (and by the next run
    after a SIGKILL, which the folders of dead runs left behind)."""
    leftovers.reap_scratch()
    path = Path(tempfile.mkdtemp(prefix=f"{leftovers.scratch_prefix('run')}{run_id}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into one :class:`Interrupted`, so cleanup runs once.

    Only the first signal interrupts: a second one while the run cleans up
    and writes its report would otherwise cut that short and leave no report.
    """
    hit: list[int] = []

    def handler(signum, frame):
        if hit:
            return
        hit.append(signum)
        raise Interrupted(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        number: signal.signal(number, handler) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for number, was in previous.items():
            signal.signal(number, was)
