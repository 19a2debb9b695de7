"""The run, as a list of small steps: plugin, cells, reports.

:func:`run_matrix` reads in one screen: install the plugin once, run every
target's cell (in parallel, each with its own database and process), write
the reports after each cell so that a crash keeps what was gathered. A cell
is: choose a provider, start the database, run the checks in a child
process, clean up; a target no provider can serve is ``not_run`` but still
gets its offline checks.
"""

from __future__ import annotations

import collections
import datetime
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from matrix import databases, masking, reports
from matrix.cell import cell_environment, parse_event
from matrix.checks import CHECKS
from matrix.definition import Target
from matrix.errors import HarnessError, ProviderUnavailable
from matrix.plugin import Plugin, resolve_plugin
from matrix.progress import Progress
from matrix.providers import ProviderSet
from matrix.results import CheckResult, PluginInfo, RunReport, Status, TargetResult


@dataclass
class RunOptions:
    plugin_path: Path
    targets: list[Target]
    matrix_file: Path
    reports_dir: Path = Path("reports")
    provider: str = "auto"
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)
    keep: bool = False
    docker_network: str | None = None
    allow_build: bool = True
    dist_dir: Path | None = None
    benchmark: dict[str, Any] | None = None  # settings; None: no benchmark


_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C: unwind, clean up, keep the results so far."""


def run_matrix(options: RunOptions, progress: Progress) -> RunReport:
    run_id = secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix=f"matrix-run-{run_id}-"))
    providers = ProviderSet(
        run_id,
        options.provider,
        options.keep,
        options.docker_network,
        options.allow_build,
    )
    started = time.perf_counter()
    plugin = resolve_plugin(options.plugin_path, workdir, options.dist_dir)
    report = RunReport(
        plugin=PluginInfo(
            plugin.package,
            plugin.version,
            plugin.source,
            str(plugin.wheel) if plugin.wheel else None,
            plugin.wheel_sha256,
        ),
        git_commit=reports.git_commit(),
        run_id=run_id,
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        matrix_file=str(options.matrix_file),
        phases={"install": round(time.perf_counter() - started, 3)},
    )
    writer = reports.ReportWriter(options.reports_dir)
    # Earlier runs of the same build (nox -s migrate-postgres, then
    # migrate-mssql) add up to one report; this run's targets replace theirs.
    results = {t.id: t for t in writer.earlier_results(report)}
    results.update({t.id: _pending(t) for t in options.targets})
    report.targets = list(results.values())
    with _terminate_on_sigterm():
        try:
            for result in _run_cells(options, plugin, providers, progress):
                results[result.id] = result
                report.targets = list(results.values())
                writer.write_target(report, result)
                writer.write_summaries(report)
        finally:
            with _children_lock:
                for child in _children:
                    child.kill()
            providers.close()
            for result in results.values():
                if result.status == Status.NOT_RUN and not result.reason:
                    result.status, result.reason = Status.ERROR, "interrupted"
            report.targets = list(results.values())
            report.phases["total"] = round(time.perf_counter() - started, 3)
            writer.write_summaries(report)
    return report


def _pending(target: Target) -> TargetResult:
    return TargetResult(target.id, target.engine, target.label, target.required)


def _run_cells(
    options: RunOptions, plugin: Plugin, providers: ProviderSet, progress: Progress
) -> Iterator[TargetResult]:
    """Run the cells on ``jobs`` daemon threads, yielding results as they finish.

    Daemon threads, so that an interrupted run can leave while a cell is still
    waiting for a server: the providers' ``close`` removes what it started.
    """
    todo: queue.Queue[Target] = queue.Queue()
    done: queue.Queue[TargetResult] = queue.Queue()
    for target in options.targets:
        todo.put(target)
        progress.target(target.id, "waiting")

    def worker() -> None:
        while True:
            try:
                target = todo.get_nowait()
            except queue.Empty:
                return
            done.put(_run_cell(target, options, plugin, providers, progress))

    for _ in range(max(1, min(options.jobs, len(options.targets)))):
        threading.Thread(target=worker, daemon=True).start()
    for _ in options.targets:
        while True:
            try:
                yield done.get(timeout=0.2)
                break
            except queue.Empty:
                continue


def _run_cell(
    target: Target,
    options: RunOptions,
    plugin: Plugin,
    providers: ProviderSet,
    progress: Progress,
) -> TargetResult:
    result = _pending(target)
    started = time.perf_counter()
    sql_dir = options.reports_dir / "sql" / target.id
    try:
        provider, reason = providers.choose(target)
        if provider is None:
            raise ProviderUnavailable(reason)
        result.provider = provider.name
        progress.target(target.id, "starting", provider=provider.name)
        with provider.database(target, lambda m: progress.log(target.id, m)) as db:
            result.ready_seconds = round(db.ready_seconds, 3)
            result.phases["start"] = round(time.perf_counter() - started, 3)
            databases.prepare_database(db.url, postgis=bool(target.postgis))
            info = databases.server_info(db.url)
            result.server_version, result.postgis_version = (
                info.server_version,
                info.postgis_version,
            )
            progress.target(target.id, "running", provider=provider.name)
            checks_started = time.perf_counter()
            result.checks = _run_checks_in_child(
                target, plugin, db.url, sql_dir, progress, result, options.benchmark
            )
            result.phases["checks"] = round(time.perf_counter() - checks_started, 3)
            cleanup_started = time.perf_counter()
        result.phases["cleanup"] = round(time.perf_counter() - cleanup_started, 3)
    except ProviderUnavailable as error:
        result.status, result.reason = Status.NOT_RUN, masking.mask(str(error))
    except HarnessError as error:
        result.status, result.reason = Status.ERROR, masking.mask(str(error))
    except Exception as error:  # noqa: BLE001 - one target's crash must not end the run
        result.status = Status.ERROR
        result.reason = masking.mask(f"{type(error).__name__}: {error}")
    if result.status in (Status.NOT_RUN, Status.ERROR) and not result.checks:
        progress.log(target.id, f"{result.status}: {result.reason}")
        result.checks = _run_checks_in_child(target, plugin, offline_url(target), sql_dir, progress)
    result.duration_s = round(time.perf_counter() - started, 3)
    result.settle()
    progress.target(target.id, "done", status=str(result.status))
    return result


def offline_url(target: Target) -> URL:
    """A URL that only names the dialect, for rendering SQL without a server."""
    return databases.with_driver(f"{target.engine}://offline@127.0.0.1/offline")


def _run_checks_in_child(
    target: Target,
    plugin: Plugin,
    url: URL,
    sql_dir: Path,
    progress: Progress,
    live_result: TargetResult | None = None,
    benchmark: dict[str, Any] | None = None,
) -> list[CheckResult]:
    """Run the checks (live when ``live_result`` is given) in a child process.

    A live cell may also run the benchmark; its figures land in ``live_result``.
    """
    env = cell_environment(
        plugin,
        url.render_as_string(hide_password=False),
        sql_dir,
        live=live_result is not None,
        benchmark=benchmark,
    )
    results: dict[str, CheckResult] = {}
    output: collections.deque[str] = collections.deque(maxlen=30)
    with subprocess.Popen(
        [sys.executable, "-m", "matrix", "cell"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as child:
        with _children_lock:
            _children.add(child)
        try:
            for line in child.stdout:
                event = parse_event(line)
                if event is None:
                    output.append(masking.mask(line.rstrip()))
                elif "start" in event:
                    progress.check(target.id, event["start"], "running")
                elif "done" in event:
                    check = CheckResult.from_dict(event["done"])
                    results[check.name] = check
                    progress.check(target.id, check.name, str(check.status))
                elif "benchmark" in event and live_result is not None:
                    live_result.benchmark = event["benchmark"]
                elif "fatal" in event:
                    raise HarnessError(event["fatal"])
        finally:
            with _children_lock:
                _children.discard(child)
            if child.poll() is None:
                child.kill()
    return [
        results.get(item.name)
        or CheckResult(
            item.name,
            Status.ERROR,
            detail=f"the check process ended (exit code {child.returncode}) before "
            f"this check reported:\n" + "\n".join(output),
        )
        for item in CHECKS
    ]


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into an exception, so cleanup runs as for Ctrl-C."""

    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
