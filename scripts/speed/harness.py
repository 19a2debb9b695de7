"""One timed ``python -m matrix run``: wall time, the report's phases, the tree's memory.

The wall time is the command's, from fork to exit, as a user waits for it;
the report's own ``phases`` say where it went (prepare: build, environment,
probe; per target: start, checks, cleanup), and what lies outside
``phases.total`` is the interpreter's start, the imports and the reports
written after the run. Within the checks phase, what the checks' own
durations do not cover is the check process's start, its imports, the
sibling databases and env.py's first run.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speed.memory import Sampled, run_sampled

RUN_TIMEOUT_S = 3600
# Walks whose evidence times each revision: upgrade or downgrade, one at a time.
WALKS = ("upgrade_stepwise", "downgrade_stepwise")


@dataclass
class HarnessRun:
    """One finished run and what its ``compat.json`` says."""

    wall_s: float
    returncode: int
    report: dict[str, Any]
    sampled: Sampled
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def targets(self) -> list[dict[str, Any]]:
        return self.report.get("targets", [])

    def verdict(self) -> str:
        """``10 passed, 1 not_run (offline_sql: why)`` over every target's checks."""
        counts: dict[str, int] = {}
        why: list[tuple[str, str]] = []
        for target in self.targets:
            for check in target.get("checks", []):
                counts[check["status"]] = counts.get(check["status"], 0) + 1
                if check["status"] != "passed" and check["name"] not in [w[0] for w in why]:
                    reason = textwrap.shorten(check.get("reason") or "", 150)
                    why.append((check["name"], reason))
        text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return text + "".join(f"; {name}: {reason}" for name, reason in why)


def command(python: Path, plugin: Path, reports: Path, options: list[str]) -> list[str]:
    return [
        str(python),
        "-m",
        "matrix",
        "run",
        "--plugin",
        str(plugin),
        *options,
        "--reports",
        str(reports),
    ]


def reproduce(python: Path, plugin: Path, options: list[str], env: dict[str, str]) -> str:
    """The shell line that runs the harness as the benchmark does."""
    variables = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    line = shlex.join(command(python, plugin, Path("REPORTS"), options))
    return f"{variables} {line}".strip()


def run(python: Path, plugin: Path, options: list[str], env: dict[str, str]) -> HarnessRun:
    """Run the harness once into a fresh reports folder; the folder is removed after."""
    reports = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    try:
        started = time.perf_counter()
        sampled = run_sampled(
            command(python, plugin, reports, options), env=env, timeout=RUN_TIMEOUT_S
        )
        wall = time.perf_counter() - started
        compat = reports / "compat.json"
        if not compat.is_file():
            raise SystemExit(
                f"the harness wrote no compat.json (exit {sampled.returncode}):\n"
                + sampled.output[-3000:]
            )
        report = json.loads(compat.read_text())
    finally:
        shutil.rmtree(reports, ignore_errors=True)
    result = HarnessRun(wall, sampled.returncode, report, sampled)
    result.figures = figures(result)
    return result


def figures(run: HarnessRun) -> dict[str, float]:
    """Every number one run gives, flat, so that rounds summarise key by key.

    One target: its phases, its checks, per-revision costs. Several: their
    phases under ``<target>.``; the matrix's figure is the wall time.
    """
    report = run.report
    found: dict[str, float] = {"wall": run.wall_s}
    phases = report.get("phases", {})
    for name, seconds in phases.items():
        found[f"run.{name}"] = seconds
    if "total" in phases:
        found["run.outside_total"] = run.wall_s - phases["total"]
    found["memory.tree_peak_mb"] = run.sampled.tree_peak_kb / 1024
    found["memory.parent_mb"] = run.sampled.peak_of("-m matrix run") / 1024
    # The check processes are forked from the probe (matrix/forks.py) and keep its command
    # line; a harness that starts them (a baseline) gives them their own.
    probe = "matrix.check.process --probe"
    found["memory.check_process_mb"] = (
        max(
            run.sampled.forked_peak(probe),
            run.sampled.peak_of("matrix.check.process", without="--probe"),
        )
        / 1024
    )
    found["memory.probe_mb"] = (
        max(
            (
                p.peak_kb
                for p in run.sampled.processes
                if probe in p.command
                and p.parent not in {q.pid for q in run.sampled.processes if probe in q.command}
            ),
            default=0,
        )
        / 1024
    )
    revisions = report.get("plugin", {}).get("revisions") or 0
    for target in run.targets:
        prefix = "" if len(run.targets) == 1 else f"{target['id']}."
        for phase, seconds in target.get("phases", {}).items():
            found[f"{prefix}target.{phase}"] = seconds
        found[f"{prefix}target.ready"] = target.get("ready_seconds") or 0.0
        checks = {c["name"]: c for c in target.get("checks", [])}
        for name, check in checks.items():
            found[f"{prefix}check.{name}"] = check.get("duration_s") or 0.0
        if target.get("phases") and target.get("duration_s"):
            # between start and checks: waiting for the plugin's probe, CREATE EXTENSION
            # postgis and the server's version, which no phase of the report holds
            found[f"{prefix}target.unphased"] = target["duration_s"] - sum(
                target["phases"].values()
            )
        if "checks" in target.get("phases", {}):
            found[f"{prefix}target.checks_outside_checks"] = target["phases"]["checks"] - sum(
                c.get("duration_s") or 0.0 for c in checks.values()
            )
        if prefix or not revisions:
            continue
        for walk in WALKS:
            check = checks.get(walk)
            if check is None:
                continue
            own = sum(e.get("seconds") or 0.0 for e in check.get("evidence") or [])
            found[f"per_revision.{walk}_ms"] = 1000 * (check.get("duration_s") or 0.0) / revisions
            found[f"per_revision.{walk}_own_ms"] = 1000 * own / revisions
    return found
