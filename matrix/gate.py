"""The release gate: publish only a wheel the whole matrix has proven.

``python -m matrix gate`` reads ``compat.json`` and passes (exit 0) only when
every target the matrix marks ``required`` has ``passed`` for the same git
commit and the same wheel (by sha256) as the one in ``dist/``. Anything else
is refused (exit 1) with every reason listed, one sentence each, naming the
target, the cause and what to do. Broken input (no report, no wheel) is a
:class:`HarnessError` (exit 2).

The decision is made by small pure functions over a :class:`RunReport`, the
:class:`Matrix` and the wheel's digest, so that it can be tested without
servers and reused by ``python -m matrix publish``. ``--allow-missing ID`` is
the one deliberate exception: it waives a required target that is missing or
was not run (never one that failed), and the waiver is written into
``compat.json`` (``allowed_missing``) and ``compat.md`` so that the release
carries it.
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from matrix import masking, reports
from matrix.definition import DEFAULT_MATRIX_FILE, Matrix, Target, load_matrix
from matrix.errors import HarnessError
from matrix.plugin import sha256_of
from matrix.results import RunReport, Status, TargetResult

EXIT_PASSED, EXIT_REFUSED = 0, 1
ALLOW_MISSING_ENV = "MATRIX_ALLOW_MISSING"
REASON_WIDTH = 160  # of a target's own reason, quoted; compat.md has it whole
WAIVABLE = (Status.NOT_RUN, None)  # None: the target is absent from the report


class Cause(StrEnum):
    FAILED = "failed"
    ERROR = "error"
    NOT_RUN = "not_run"
    MISSING = "missing"
    OTHER_COMMIT = "other_commit"
    OTHER_WHEEL = "other_wheel"


@dataclass(frozen=True)
class Refusal:
    """One reason not to publish: which target (if any), why, and what to do."""

    cause: Cause
    target: str | None
    message: str


@dataclass(frozen=True)
class Build:
    """What is about to be published: the wheel in dist/ and the commit."""

    wheel: Path
    sha256: str
    commit: str | None


@dataclass
class Verdict:
    report: RunReport
    build: Build
    required: frozenset[str] = frozenset()  # target ids the matrix requires
    refusals: list[Refusal] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.refusals


# -- the decision: pure functions ------------------------------------------------


def evaluate(
    report: RunReport, matrix: Matrix, build: Build, allowed: frozenset[str] = frozenset()
) -> Verdict:
    """Every reason the report does not prove this build on the required targets."""
    unknown = sorted(allowed - {t.id for t in matrix.targets})
    if unknown:
        raise HarnessError(
            f"--allow-missing names {', '.join(unknown)}, not a target of {matrix.path}.",
            f"Use ids from `python -m matrix list --matrix {matrix.path}`.",
        )
    required = frozenset(t.id for t in matrix.targets if t.required)
    verdict = Verdict(report, build, required, refusals=build_refusals(report, build))
    by_id = {t.id: t for t in report.targets}
    for target in matrix.targets:
        found = by_id.get(target.id)
        status = found.status if found else None
        if not target.required:
            if status != Status.PASSED:
                verdict.notes.append(f"{target.id} is {status or 'missing'}; not required.")
        elif status == Status.PASSED:
            continue
        elif target.id in allowed and status in WAIVABLE:
            verdict.waived.append(target.id)
        else:
            verdict.refusals.append(target_refusal(target, found, allowed))
    idle = sorted(allowed - set(verdict.waived))
    if idle:
        verdict.notes.append(f"--allow-missing {', '.join(idle)}: nothing to waive.")
    return verdict


def build_refusals(report: RunReport, build: Build) -> list[Refusal]:
    """The report must be about this very wheel and commit."""
    refusals = []
    proven = report.plugin.wheel_sha256
    if proven != build.sha256:
        what = f"wheel sha256 {proven}" if proven else f"the {report.plugin.source} plugin"
        refusals.append(
            Refusal(
                Cause.OTHER_WHEEL,
                None,
                f"compat.json proves {what}, but {build.wheel} has sha256 {build.sha256}: "
                f"the wheel changed after the matrix ran; rerun the matrix on this wheel "
                f"(python -m matrix run --plugin {build.wheel}) or publish the wheel "
                "that was proven.",
            )
        )
    if report.git_commit is None or report.git_commit != build.commit:
        refusals.append(
            Refusal(
                Cause.OTHER_COMMIT,
                None,
                f"compat.json is about commit {report.git_commit or 'unknown'}, but this is "
                f"commit {build.commit or 'unknown'}; rerun the matrix on this commit "
                "(the tag's pipeline does) before publishing.",
            )
        )
    return refusals


def target_refusal(target: Target, result: TargetResult | None, allowed: frozenset[str]) -> Refusal:
    """One sentence: the required target, what happened to it, what to do."""
    name = f"{target.id} ({target.label})"
    status = result.status if result else None
    why = _why(result)
    rerun = f"python -m matrix run --targets {target.id}"
    waiver = f"or pass --allow-missing {target.id} to release without it on purpose"
    if status is None:
        return Refusal(
            Cause.MISSING,
            target.id,
            f"{name} is required but missing from compat.json; run it ({rerun}, then "
            f"merge with python -m matrix report) {waiver}.",
        )
    if status == Status.NOT_RUN:
        return Refusal(
            Cause.NOT_RUN,
            target.id,
            f"{name} is required but was not run{why}; give it a server "
            f"(Docker, or {target.settings.url_env} with --provider external) and "
            f"run {rerun}, {waiver}.",
        )
    note = f" (--allow-missing does not waive a {status} target)" if target.id in allowed else ""
    return Refusal(
        Cause(str(status)),
        target.id,
        f"{name} is required and {status}{why}; fix the plugin or the environment "
        f"until {rerun} passes, see compat.md for the failing checks{note}.",
    )


def _why(result: TargetResult | None) -> str:
    """`` (the target's own reason, or the checks that did not pass)``, or nothing."""
    if result is None:
        return ""
    failing = [c.name for c in result.checks if c.status in (Status.FAILED, Status.ERROR)]
    reason = result.reason or (f"checks {', '.join(failing)}" if failing else "")
    return f" ({textwrap.shorten(reason, REASON_WIDTH, placeholder=' …')})" if reason else ""


# -- reading the inputs ------------------------------------------------------------


def find_wheel(dist_dir: Path) -> Path:
    """The one wheel in dist/: the gate must know exactly what would ship."""
    wheels = sorted(dist_dir.glob("*.whl"))
    if len(wheels) == 1:
        return wheels[0]
    if not wheels:
        raise HarnessError(
            f"There is no wheel in {dist_dir}, so there is nothing to gate.",
            "Build it first (nox -s build), or pass --dist with the folder that holds it.",
        )
    raise HarnessError(
        f"{dist_dir} holds {len(wheels)} wheels ({', '.join(w.name for w in wheels)}); "
        "the gate cannot tell which one would be published.",
        "Rebuild with nox -s build, which empties dist/ first.",
    )


def check(reports_dir: Path, dist_dir: Path, matrix_file: Path, allowed: frozenset[str]) -> Verdict:
    """Load compat.json, the matrix and the wheel, and decide."""
    report = reports.load_report(reports_dir / "compat.json")
    wheel = find_wheel(dist_dir)
    build = Build(wheel, sha256_of(wheel), reports.git_commit())
    return evaluate(report, load_matrix(matrix_file), build, allowed)


# -- recording and printing ----------------------------------------------------------


def record(verdict: Verdict, reports_dir: Path) -> None:
    """Write the waivers into compat.json and the verdict into compat.md."""
    verdict.report.allowed_missing = sorted(verdict.waived)
    reports.write_atomic(
        reports_dir / "compat.json",
        json.dumps(verdict.report.to_dict(), indent=2, default=str) + "\n",
    )
    reports.write_atomic(
        reports_dir / "compat.md", reports.markdown(verdict.report) + gate_markdown(verdict)
    )


def gate_markdown(verdict: Verdict) -> str:
    """The passing verdict as compat.md states it, waivers included."""
    build = verdict.build
    lines = [
        "",
        "## Release gate",
        "",
        f"- Passed for `{build.wheel.name}` (sha256 `{build.sha256}`) at commit "
        f"`{build.commit}`: every required target passed, except those allowed missing.",
        "- Allowed missing (deliberate exception, `--allow-missing`): "
        + (", ".join(f"`{i}`" for i in verdict.waived) or "none"),
    ]
    return "\n".join(lines) + "\n"


def render(verdict: Verdict) -> str:
    """What the gate prints: the build, then every reason, then the notes."""
    plugin, build = verdict.report.plugin, verdict.build
    lines = [
        f"Release gate for {plugin.name} {plugin.version}",
        f"  wheel  {build.wheel} (sha256 {build.sha256})",
        f"  commit {build.commit or 'unknown'}",
        f"  report run {verdict.report.run_id} started {verdict.report.started_at}",
    ]
    if verdict.passed:
        lines.append("PASSED: every required target passed for this wheel and commit.")
    else:
        count = len(verdict.refusals)
        lines.append(f"REFUSED, {count} reason{'s' if count > 1 else ''}:")
        lines += [f"  - {r.message}" for r in verdict.refusals]
    if verdict.waived:
        lines.append(f"  allowed missing (deliberate): {', '.join(verdict.waived)}")
    lines += [f"  note: {note}" for note in verdict.notes]
    return masking.mask("\n".join(lines))


# -- command line ------------------------------------------------------------------


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``gate`` and ``publish``, which runs the gate first."""
    parser.add_argument(
        "--reports", type=Path, default=Path("reports"), help="folder of compat.json"
    )
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="folder of the wheel")
    parser.add_argument(
        "--matrix",
        type=Path,
        default=DEFAULT_MATRIX_FILE,
        help="matrix file that says which targets are required (default: the bundled one)",
    )
    parser.add_argument(
        "--allow-missing",
        action="append",
        metavar="ID",
        default=os.environ.get(ALLOW_MISSING_ENV, "").replace(",", " ").split(),
        help="waive a required target that is missing or not run (repeatable; "
        f"also read from {ALLOW_MISSING_ENV}, space or comma separated)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")


def run_gate(args: argparse.Namespace) -> Verdict:
    """Decide, print, and record a passing verdict into the reports."""
    verdict = check(args.reports, args.dist, args.matrix, frozenset(args.allow_missing))
    print(render(verdict), flush=True)
    if verdict.passed:
        record(verdict, args.reports)
    return verdict


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``gate``, and the release commands that build on it."""
    from matrix import release

    gate = sub.add_parser("gate", help="refuse a release the whole matrix has not proven")
    add_gate_options(gate)
    gate.set_defaults(handler=lambda args: EXIT_PASSED if run_gate(args).passed else EXIT_REFUSED)
    release.add_commands(sub)
