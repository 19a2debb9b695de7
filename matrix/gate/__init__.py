"""The release gate: publish only a wheel the whole matrix has proven.

``python -m matrix gate`` reads ``compat.json`` and passes (exit 0) only when
every target the matrix marks ``required`` has passed (or passed with
findings the plugin's policy acknowledges: ``waived``) for the wheel about
to ship: the one ``compat.json`` names (or the one wheel in ``--dist``), by
sha256, and, where the report records a commit (a plugin built from a
repository's tree), for the commit that tree is at now. A published plugin
(a requirement) records no commit, so only its bytes are compared. Anything
else is refused (exit 1) with every reason listed, one sentence each, naming
the target, the cause and what to do: the commands it suggests repeat the
run's own options (``run_options`` in compat.json). Broken input (no report,
a report of another schema, no wheel) is a :class:`HarnessError` (exit 2).

The gate verifies rather than trusts: a stored status is only believed when
the report's own pieces agree with it. Each target's status is recomputed
from its checks with :func:`matrix.results.target_status`, the rule the
runner used; a target that claims a pass must hold every required check; a
check that claims a pass may hold no unwaived blocking finding; the overall
status must follow from the targets; and the per-target files the matrix
jobs wrote (``targets/<id>.json``) must say what ``compat.json`` says. A
report that fails any of these was edited, truncated or mixed from several
runs, so it proves nothing.

The decision is made by small pure functions over the :class:`Evidence`,
the :class:`Matrix` and the :class:`Build`, so that it can be tested without
servers and reused by ``python -m matrix publish``. ``--allow-missing ID`` is
the one deliberate exception: it waives a required target that is absent or
that no server reached (never one that failed, errored, or that a server
reached but a check could not judge), and the waiver is written into
``compat.json`` (``allowed_missing``) and ``compat.md`` so that the release
carries it.
"""

from __future__ import annotations

import json
from pathlib import Path

from matrix import masking, settings
from matrix.define.targets import Matrix, load_matrix
from matrix.errors import HarnessError
from matrix.gate.refusals import (
    build_refusals,
    check_disagreement,
    integrity_refusals,
    never_reached,
    rerun_command,
    server_refusals,
    target_refusal,
)
from matrix.gate.verdict import (
    PROVEN,
    REPORT_FILE,
    TARGETS_FOLDER,
    Acknowledged,
    Build,
    Cause,
    Evidence,
    Refusal,
    Verdict,
)
from matrix.install.sources import sha256_of, tree_commit
from matrix.report import INDEX, load_report, merge_target_files, read_report, write_atomic
from matrix.report.html import write_html
from matrix.report.junit import junit
from matrix.report.markdown import markdown
from matrix.results import Provenance, RunReport, Status, TargetResult

__all__ = [
    "Acknowledged",
    "Build",
    "Cause",
    "Evidence",
    "REPORT_FILE",
    "Refusal",
    "Verdict",
    "acknowledged",
    "acknowledged_lines",
    "check_disagreement",
    "current_commit",
    "decide",
    "evaluate",
    "find_wheel",
    "gate_markdown",
    "gated_wheel",
    "load_evidence",
    "never_reached",
    "record",
    "render",
    "rerun_command",
]


def evaluate(
    evidence: Evidence, matrix: Matrix, build: Build, allowed: frozenset[str] = frozenset()
) -> Verdict:
    """Every reason the evidence does not prove this build on the required targets."""
    unknown = sorted(allowed - {t.id for t in matrix.targets})
    if unknown:
        raise HarnessError(
            f"--allow-missing names {', '.join(unknown)}, not a target of {matrix.path}.",
            f"Use ids from `python -m matrix list --matrix {matrix.path}`.",
        )
    report = evidence.report
    required = frozenset(t.id for t in matrix.targets if t.required)
    verdict = Verdict(report, build, required, refusals=build_refusals(report, build))
    verdict.refusals += integrity_refusals(evidence)
    verdict.refusals += server_refusals(report, matrix)
    distrusted = {r.target for r in verdict.refusals if r.target is not None}
    by_id = {t.id: t for t in report.targets}
    for target in matrix.targets:
        found = by_id.get(target.id)
        status = found.status if found else None
        if target.id in distrusted or status in PROVEN:
            continue
        if not target.required:
            verdict.notes.append(
                f"{target.id} ({target.label}) is {status or 'missing'}; not required."
            )
        elif target.id in allowed and never_reached(found):
            verdict.allowed_missing.append(target.id)
        else:
            verdict.refusals.append(target_refusal(target, found, allowed, report))
    idle = sorted(allowed - set(verdict.allowed_missing))
    if idle:
        verdict.notes.append(f"--allow-missing {', '.join(idle)}: nothing to waive.")
    verdict.acknowledged = acknowledged(report)
    return verdict


def acknowledged(report: RunReport) -> list[Acknowledged]:
    """What the ``waived`` targets passed with: each waived finding, each waived not_run."""
    found = []
    for target in report.targets:
        if target.status != Status.WAIVED:
            continue
        for check in target.checks:
            waived = [f for f in check.findings if f.waived]
            found += [
                Acknowledged(target.id, check.name, f.kind, f.message, f.revision, f.waived)
                for f in waived
            ]
            if check.status == Status.WAIVED and not waived:
                found.append(Acknowledged(target.id, check.name, "not_run", check.reason))
    return found


def acknowledged_lines(items: list[Acknowledged]) -> list[str]:
    """One line per fact: the same waiver of the same finding on several targets is one line.

    A finding waived on every target (and a revision's several lost tables)
    would otherwise repeat its reason once per target and finding.
    """
    groups: dict[tuple, list[Acknowledged]] = {}
    for item in items:
        groups.setdefault((item.check, item.kind, item.revision, item.reason), []).append(item)
    lines = []
    for found in groups.values():
        first = found[0]
        targets = list(dict.fromkeys(a.target for a in found))
        if len(found) == 1:
            lines.append(first.describe())
            continue
        at = f" at revision {first.revision}" if first.revision else ""
        why = f" (waived: {first.reason})" if first.reason else ""
        more = len(found) - len(targets)
        also = f", and {more} more like it" if more else ""
        lines.append(
            f"{first.check}{at}, {first.kind}, on {', '.join(targets)}: {first.message}{also}{why}"
        )
    return lines


# -- reading the inputs ------------------------------------------------------------


def gated_wheel(report: RunReport, dist_dir: Path | None) -> Path:
    """The wheel that would ship: the one wheel in ``--dist``, else the one compat.json names."""
    if dist_dir is not None:
        return find_wheel(dist_dir)
    plugin = report.plugin
    if plugin.wheel is None:
        raise HarnessError(
            f"compat.json is about {plugin.source.describe()}, so there is no wheel to gate.",
            "Run the matrix on a wheel, an sdist, a requirement or a project folder, or pass "
            "--dist with the folder of the wheel to publish.",
        )
    wheel = Path(plugin.wheel)
    if not wheel.is_file():
        raise HarnessError(
            f"The wheel compat.json proves, {wheel}, is not there any more.",
            f"Pass --dist with the folder that holds it, or rerun the matrix "
            f"({rerun_command(report)}).",
        )
    return wheel


def current_commit(source: Provenance) -> str | None:
    """The commit the plugin's source tree is at now; None where the report records none."""
    if source.commit is None:
        return None
    if source.tree and Path(source.tree).is_dir():
        return tree_commit(Path(source.tree))
    return settings.ci_commit()


def find_wheel(dist_dir: Path) -> Path:
    """The one wheel in ``--dist``: the gate must know exactly what would ship."""
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


def load_evidence(reports_dir: Path) -> Evidence:
    """compat.json (of this harness's schema), the status it states, and its per-target files."""
    path = reports_dir / REPORT_FILE
    report = load_report(path)
    stated = read_report(path, "matrix report").get("status")
    files = sorted((reports_dir / TARGETS_FOLDER).glob("*.json"))
    return Evidence(report, stated, {p: merge_target_files([p]) for p in files})


def decide(
    reports_dir: Path, dist_dir: Path | None, matrix_file: Path, allowed: frozenset[str]
) -> Verdict:
    """Load the evidence, the matrix and the wheel to ship, and decide."""
    evidence = load_evidence(reports_dir)
    wheel = gated_wheel(evidence.report, dist_dir)
    build = Build(wheel, sha256_of(wheel), current_commit(evidence.report.plugin.source))
    return evaluate(evidence, load_matrix(matrix_file), build, allowed)


# -- recording and printing ----------------------------------------------------------


def record(verdict: Verdict, reports_dir: Path) -> None:
    """Write a passing verdict into every report of the folder, so that they agree: its
    waivers into compat.json, junit.xml and index.html, the whole verdict into compat.md."""
    verdict.report.allowed_missing = sorted(verdict.allowed_missing)
    write_atomic(
        reports_dir / REPORT_FILE,
        json.dumps(verdict.report.to_dict(), indent=2, default=str) + "\n",
    )
    write_atomic(reports_dir / "compat.md", markdown(verdict.report) + gate_markdown(verdict))
    write_atomic(reports_dir / "junit.xml", junit(verdict.report))
    if (reports_dir / INDEX).is_file():  # the page a run wrote; a merged report may have none
        write_html(reports_dir)


def gate_markdown(verdict: Verdict) -> str:
    """The passing verdict as compat.md states it, waivers included."""
    build = verdict.build
    lines = [
        "",
        "## Release gate",
        "",
        f"- Passed for `{build.wheel.name}` (sha256 `{build.sha256}`), "
        f"{verdict.report.plugin.source.describe()}: {verdict.summary()}.",
        "- Allowed missing (deliberate exception, `--allow-missing`): "
        + (", ".join(f"`{i}`" for i in verdict.allowed_missing) or "none"),
        "- Acknowledged by the plugin's policy:" + ("" if verdict.acknowledged else " nothing"),
        *[f"  - {line}" for line in acknowledged_lines(verdict.acknowledged)],
    ]
    return "\n".join(lines) + "\n"


def render(verdict: Verdict) -> str:
    """What the gate prints: the build, then every reason, then the waivers and notes."""
    plugin, build = verdict.report.plugin, verdict.build
    lines = [
        f"Release gate for {plugin.name} {plugin.version}",
        f"  plugin {plugin.source.describe()}",
        f"  wheel  {build.wheel} (sha256 {build.sha256})",
        f"  report run {verdict.report.run_id} started {verdict.report.started_at}",
    ]
    if verdict.passed:
        lines.append(f"PASSED{verdict.summary(headline=True)}.")
    else:
        count = len(verdict.refusals)
        lines.append(f"REFUSED, {count} reason{'s' if count > 1 else ''}:")
        lines += [f"  - {r.message}" for r in verdict.refusals]
    waivable = [r.target for r in verdict.refusals if r.cause in (Cause.MISSING, Cause.NOT_RUN)]
    waivable = [t for t in waivable if never_reached(_result(verdict.report, t))]
    if len(waivable) > 1:
        lines.append(
            f"  to release without all of {', '.join(waivable)} on purpose: --allow-missing "
            f"{','.join(waivable)} (recorded in the reports)"
        )
    if verdict.allowed_missing:
        lines.append(f"  allowed missing (deliberate): {', '.join(verdict.allowed_missing)}")
    if verdict.acknowledged:
        lines.append("  waived by the plugin's policy:")
        lines += [f"    - {line}" for line in acknowledged_lines(verdict.acknowledged)]
    lines += [f"  note: {note}" for note in verdict.notes]
    return masking.mask("\n".join(lines))


def _result(report: RunReport, target_id: str | None) -> TargetResult | None:
    return next((t for t in report.targets if t.id == target_id), None)
