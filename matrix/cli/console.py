"""What the user sees while the matrix runs, and the summary after it.

On a terminal, a live table with one row per cell (target, provider, state,
the check running, how many passed); elsewhere (CI logs), one plain line per
event, so that a log shows the same story in order.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from matrix import masking
from matrix.report.why import policy_summary
from matrix.results import RunReport, Status

STYLE = {
    "passed": "green",
    "waived": "green",
    "failed": "red",
    "error": "red",
    "not_run": "yellow",
}


@dataclass
class CellState:
    state: str = "waiting"
    provider: str = ""
    check: str = ""
    passed: int = 0
    finished: int = 0
    status: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


class Progress:
    """Plain lines: one per event, safe for any log."""

    announce_checks = True

    def __init__(self, console: Console | None = None, verbose: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.cells: dict[str, CellState] = {}
        self._lock = threading.Lock()

    def target(self, target_id: str, state: str, **info: str) -> None:
        with self._lock:
            cell = self.cells.setdefault(target_id, CellState())
            cell.state = state
            cell.provider = info.get("provider", cell.provider)
            cell.status = info.get("status", cell.status)
            if state == "starting":
                cell.started = time.monotonic()
            if state == "done":
                cell.ended = time.monotonic()
        if state != "waiting":
            extra = f" via {cell.provider}" if state == "starting" else ""
            extra += f": {cell.status}" if state == "done" else ""
            self.line(target_id, f"{state}{extra}")

    def check(self, target_id: str, name: str, status: str) -> None:
        with self._lock:
            cell = self.cells.setdefault(target_id, CellState())
            cell.check = name
            if status != "running":
                cell.finished += 1
                cell.passed += status == "passed"
        if status != "running" and self.announce_checks:
            self.line(target_id, f"{name} {status}")

    def log(self, target_id: str, message: str) -> None:
        self.line(target_id, message)

    def line(self, target_id: str, message: str) -> None:
        self.console.print(f"[{target_id}] {masking.mask(message)}", markup=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LiveProgress(Progress):
    """A live table on a terminal; messages scroll above it."""

    announce_checks = False  # the table shows them

    def __enter__(self) -> Self:
        self._live = Live(
            self._table(),
            console=self.console,
            refresh_per_second=4,
            get_renderable=self._table,
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(*exc)

    def _table(self) -> Table:
        table = Table(title="Migration matrix", expand=False)
        for column in ("target", "provider", "state", "check", "passed", "elapsed"):
            table.add_column(column)
        with self._lock:
            for target_id, cell in self.cells.items():
                state = cell.status or cell.state
                table.add_row(
                    target_id,
                    cell.provider,
                    Text(state, style=STYLE.get(state, "cyan")),
                    cell.check if cell.state == "running" else "",
                    f"{cell.passed}/{cell.finished}",
                    f"{(cell.ended or time.monotonic()) - cell.started:.1f}s",
                )
        return table


def make_progress(verbose: bool = False) -> Progress:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if console.is_terminal and sys.stderr.isatty():
        return LiveProgress(console, verbose)
    return Progress(console, verbose)


def print_summary(report: RunReport, reports_dir: Path) -> None:
    """The run's table: one row per target, with the first reason it did not pass."""
    table = Table(title=f"{report.plugin.name} {report.plugin.version}: {report.status}")
    columns = ("target", "database", "provider", "server", "PostGIS", "status", "checks", "seconds")
    for column in (*columns, "why"):
        table.add_column(column, overflow="fold")
    for target in report.targets:
        passed = sum(c.status == Status.PASSED for c in target.checks)
        waived = sum(c.status == Status.WAIVED for c in target.checks)
        why = target.reason or ""
        table.add_row(
            target.id,
            target.label,
            target.provider or "-",
            target.server_version or "-",
            target.postgis_version or "-",
            Text(str(target.status), style=STYLE.get(str(target.status), "")),
            f"{passed}/{len(target.checks)}" + (f" + {waived} waived" if waived else ""),
            f"{target.duration_s:.1f}",
            Text(textwrap.shorten(masking.mask(why), 200, placeholder=" …")),
        )
    console = Console(highlight=False, width=max(Console().width, 120))
    console.print(Text(f"plugin: {masking.mask(report.plugin.source.describe())}"))
    console.print(table)
    policy, stale = policy_summary(report)
    console.print(policy)
    for entry in stale:
        console.print(f"warning: stale waiver in the policy (it matched nothing): {entry}")
    console.print(f"reports: {reports_dir}/compat.json, compat.md, junit.xml, index.html")
    console.print(Text(next_step(report, reports_dir)))


def next_step(report: RunReport, reports_dir: Path) -> str:
    """The one thing to do next, after this run."""
    if report.status in (Status.PASSED, Status.WAIVED):
        return f"next: python -m matrix gate --reports {reports_dir} (may this wheel be released?)"
    return (
        f"next: read the Why section of {reports_dir}/compat.md (or index.html): what to do "
        "about each finding, and the [[waive]] entry that acknowledges it; fix the plugin, or "
        "paste the entry into peek-matrix-policy.toml beside the plugin (--policy FILE for a "
        "requirement)"
    )
