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
import shlex
import textwrap
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path

from matrix import catalogue, masking, settings
from matrix.define.targets import Matrix, Target, load_matrix
from matrix.engines import ServerInfo, engine_named
from matrix.errors import HarnessError
from matrix.install.sources import sha256_of, tree_commit
from matrix.report import load_report, merge_target_files, read_report, write_atomic
from matrix.report.markdown import markdown
from matrix.results import (
    CheckResult,
    Provenance,
    RunReport,
    Status,
    TargetResult,
    target_status,
)

REASON_WIDTH = 160  # of a target's own reason, quoted; compat.md has it whole
PROVEN = (Status.PASSED, Status.WAIVED)
REPORT_FILE = "compat.json"
TARGETS_FOLDER = "targets"


class Cause(StrEnum):
    FAILED = "failed"
    ERROR = "error"
    NOT_RUN = "not_run"
    MISSING = "missing"
    OTHER_COMMIT = "other_commit"
    OTHER_WHEEL = "other_wheel"
    INCONSISTENT = "inconsistent"  # the report's pieces disagree about a status
    INCOMPLETE = "incomplete"  # a target claims a pass without every required check


@dataclass(frozen=True)
class Refusal:
    """One reason not to publish: which target (if any), why, and what to do."""

    cause: Cause
    target: str | None
    message: str


@dataclass(frozen=True)
class Build:
    """What is about to be published: a wheel, and the commit its source tree is at now.

    ``commit`` is None where the report records none (nothing to compare) or
    where the tree's commit cannot be known any more.
    """

    wheel: Path
    sha256: str
    commit: str | None


@dataclass(frozen=True)
class Evidence:
    """What the reports folder holds: compat.json, read back, and what it was written from.

    ``stated_status`` is the overall status compat.json states (a derived
    value the typed report does not keep); ``target_files`` are the
    per-target files beside it, each read as a one-target report.
    """

    report: RunReport
    stated_status: str | None
    target_files: dict[Path, RunReport] = field(default_factory=dict)


@dataclass(frozen=True)
class Acknowledged:
    """A finding the plugin's policy waived on a target the gate counts as passed."""

    target: str
    check: str
    kind: str
    message: str
    revision: str | None = None
    reason: str | None = None  # None: the message already says why (a waived not_run)

    def describe(self) -> str:
        at = f" at revision {self.revision}" if self.revision else ""
        why = f" (waived: {self.reason})" if self.reason else ""
        return f"{self.target} {self.check}{at}, {self.kind}: {self.message}{why}"


@dataclass
class Verdict:
    """The gate's decision, with what the release notes and compat.md must carry."""

    report: RunReport
    build: Build
    required: frozenset[str] = frozenset()  # target ids the matrix requires
    refusals: list[Refusal] = field(default_factory=list)
    allowed_missing: list[str] = field(default_factory=list)  # waived by --allow-missing
    acknowledged: list[Acknowledged] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.refusals

    def summary(self, headline: bool = False) -> str:
        """What a pass means here: clean, with waived findings, with targets allowed missing."""
        count = len(self.acknowledged)
        waived = f" with {count} waived finding{'s' if count != 1 else ''}" if count else ""
        commit = " and commit" if self.report.plugin.commit else ""
        excepted = ["the findings the plugin's policy waives (listed)"] if count else []
        excepted += ["the targets allowed missing on purpose"] if self.allowed_missing else []
        said = f"every required target passed for this wheel{commit}" + (
            f", except {' and '.join(excepted)}" if excepted else ""
        )
        return f"{waived}: {said}" if headline else said


# -- the decision: pure functions ------------------------------------------------


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
            verdict.notes.append(f"{target.id} is {status or 'missing'}; not required.")
        elif target.id in allowed and never_reached(found):
            verdict.allowed_missing.append(target.id)
        else:
            verdict.refusals.append(target_refusal(target, found, allowed, report))
    idle = sorted(allowed - set(verdict.allowed_missing))
    if idle:
        verdict.notes.append(f"--allow-missing {', '.join(idle)}: nothing to waive.")
    verdict.acknowledged = acknowledged(report)
    return verdict


def never_reached(result: TargetResult | None) -> bool:
    """Absent, or not_run because no server answered: all ``--allow-missing`` may waive.

    A target a server reached is ``not_run`` only when a check could not
    judge; that is a verdict about the plugin, not a missing database.
    """
    return result is None or (
        result.status == Status.NOT_RUN and not result.reached and result.fatal is None
    )


def build_refusals(report: RunReport, build: Build) -> list[Refusal]:
    """The report must be about this very wheel, and, where it records one, this commit."""
    refusals = []
    plugin = report.plugin
    if plugin.wheel_sha256 != build.sha256:
        what = (
            f"the wheel {Path(plugin.wheel).name} (sha256 {plugin.wheel_sha256})"
            if plugin.wheel_sha256
            else "a package folder used in place, no wheel"
        )
        refusals.append(
            Refusal(
                Cause.OTHER_WHEEL,
                None,
                f"compat.json proves {what}, but the wheel to publish, {build.wheel}, has "
                f"sha256 {build.sha256}: that is not the wheel the matrix ran; rerun the "
                f"matrix on it ({rerun_command(report, plugin=str(build.wheel))}) or publish "
                "the wheel that was proven (without --dist the gate takes the one compat.json "
                "names).",
            )
        )
    recorded = plugin.commit
    if recorded is not None and recorded != build.commit:
        refusals.append(
            Refusal(
                Cause.OTHER_COMMIT,
                None,
                f"compat.json is about {plugin.source.tree} at commit {recorded}, but it is "
                f"now at commit {build.commit or 'unknown'}; rerun the matrix on this commit "
                f"({rerun_command(report)}; the tag's pipeline does) before publishing.",
            )
        )
    return refusals


def rerun_command(report: RunReport, target: str | None = None, plugin: str | None = None) -> str:
    """``python -m matrix run`` with the run's own options, for one target or another wheel."""
    options = list(report.run_options)
    if plugin is not None:
        at = options.index("--plugin") + 1 if "--plugin" in options else None
        if at is None:
            options = ["--plugin", plugin, *options]
        else:
            options[at] = plugin
    targets = ["--targets", target] if target else []
    return shlex.join(["python", "-m", "matrix", "run", *targets, *options])


def integrity_refusals(evidence: Evidence) -> list[Refusal]:
    """Every place where the report's pieces disagree; a disagreeing target proves nothing."""
    report = evidence.report
    refusals = []
    derived = str(report.status)
    if evidence.stated_status != derived:
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                None,
                f"compat.json states the overall status {evidence.stated_status or 'nothing'}, "
                f"but its targets make it {derived}; the report was edited after the matrix "
                "wrote it: rerun the matrix (or python -m matrix report on the per-target "
                "files) and do not edit the reports by hand.",
            )
        )
    for result in report.targets:
        refusals += target_integrity(report, result)
    ids = [result.id for result in report.targets]
    for repeated in sorted({i for i in ids if ids.count(i) > 1}):
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                repeated,
                f"compat.json holds {ids.count(repeated)} results for {repeated}; a target has "
                "one result per run, so the report was mixed or edited: rerun the matrix (or "
                "python -m matrix report on the per-target files).",
            )
        )
    refusals += file_refusals(report, evidence.target_files)
    return refusals


def server_refusals(report: RunReport, matrix: Matrix) -> list[Refusal]:
    """A target is proven only by a server of its own version (and PostGIS's)."""
    refusals = []
    targets = {t.id: t for t in matrix.targets}
    for result in report.targets:
        target = targets.get(result.id)
        if target is None or not result.reached or not result.server_version:
            continue
        info = ServerInfo(result.server_version, result.postgis_version)
        wrong = engine_named(target.engine).wrong_server(target.version, target.postgis, info)
        if wrong:
            refusals.append(
                Refusal(
                    Cause.INCONSISTENT,
                    result.id,
                    f"{result.id} ({target.label}) was run on another server: {wrong}; "
                    f"rerun it on {target.label}.",
                )
            )
    return refusals


def target_integrity(report: RunReport, result: TargetResult) -> list[Refusal]:
    """A target's stored status against its checks, and each check against its findings."""
    name = f"{result.id} ({result.label})"
    rerun = (
        f"rerun {rerun_command(report, result.id)} with this harness and do not "
        "edit the reports by hand"
    )
    names = {check.name for check in result.checks}
    missing = [n for n in catalogue.REQUIRED if n not in names]
    if result.status in PROVEN and missing:
        return [
            Refusal(
                Cause.INCOMPLETE,
                result.id,
                f"{name} is stored as {result.status} but holds "
                f"{len(catalogue.REQUIRED) - len(missing)} of the {len(catalogue.REQUIRED)} "
                f"required checks (missing: {', '.join(missing)}), so it proves nothing; "
                f"{rerun}.",
            )
        ]
    refusals = []
    disagreeing = [why for check in result.checks if (why := check_disagreement(check))]
    if disagreeing:
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                result.id,
                f"{name} holds checks whose status disagrees with their findings "
                f"({'; '.join(disagreeing)}); {rerun}.",
            )
        )
    recomputed, reason = target_status(result.checks, result.reached, result.fatal)
    if recomputed != result.status:
        failing = _failing(result)
        why = f"failed or errored checks: {', '.join(failing)}" if failing else reason
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                result.id,
                f"{name} is stored as {result.status}, but its checks make it {recomputed} "
                f"({why}); {rerun}.",
            )
        )
    return refusals


def check_disagreement(check: CheckResult) -> str | None:
    """Why a check's stored pass disagrees with its findings, or None when it does not.

    The findings are settled again by the rule the check process used. A
    ``waived`` check without blocking findings is a ``not_run`` the policy
    acknowledged, which the findings cannot confirm or deny.
    """
    if check.status not in PROVEN:
        return None
    settled = replace(check)
    settled.settle_from_findings()
    if settled.status == check.status or (
        check.status == Status.WAIVED and settled.status == Status.PASSED
    ):
        return None
    open_ = [f for f in check.findings if f.blocking and not f.waived]
    if open_:
        blame = f" at revision {open_[0].revision}" if open_[0].revision else ""
        return (
            f"{check.name} is stored as {check.status} but holds the unwaived blocking finding "
            f"{open_[0].kind}{blame}: {open_[0].message}"
        )
    return f"{check.name} is stored as passed but its blocking findings are waived, so it is waived"


def file_refusals(report: RunReport, files: dict[Path, RunReport]) -> list[Refusal]:
    """Each per-target file must say what compat.json says about its target and build."""
    by_id = {t.id: t for t in report.targets}
    merge = f"python -m matrix report {TARGETS_FOLDER}/*.json"
    refusals = []
    for path, part in files.items():
        (target,) = part.targets
        ours = by_id.get(target.id)
        theirs = (part.plugin.wheel_sha256, part.plugin.commit)
        if theirs != (report.plugin.wheel_sha256, report.plugin.commit):
            problem = (
                f"is about another build (wheel sha256 {theirs[0]}, commit {theirs[1]}) "
                "than compat.json"
            )
        elif ours is None:
            problem = f"says {target.status}, but compat.json leaves the target out"
        elif ours != target:
            differ = [
                f.name
                for f in fields(TargetResult)
                if getattr(ours, f.name) != getattr(target, f.name)
            ]
            said = (
                f"says {target.status} where compat.json says {ours.status}"
                if target.status != ours.status
                else "disagrees with compat.json"
            )
            problem = f"{said} (they differ in {', '.join(differ)})"
        else:
            continue
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                target.id,
                f"{path} about {target.id} {problem}; merge the per-target files again "
                f"({merge}) or rerun the matrix into an empty reports folder.",
            )
        )
    return refusals


def target_refusal(
    target: Target, result: TargetResult | None, allowed: frozenset[str], report: RunReport
) -> Refusal:
    """One sentence: the required target, what happened to it, what to do."""
    name = f"{target.id} ({target.label})"
    status = result.status if result else None
    why = _why(result)
    rerun = rerun_command(report, target.id)
    waiver = f"or pass --allow-missing {target.id} to release without it on purpose"
    if status is None:
        return Refusal(
            Cause.MISSING,
            target.id,
            f"{name} is required but missing from compat.json; run it ({rerun}: runs of the "
            f"same build add up in one reports folder) {waiver}.",
        )
    if never_reached(result):
        return Refusal(
            Cause.NOT_RUN,
            target.id,
            f"{name} is required but was not run{why}; give it a server "
            f"(Docker, or {target.settings.url_env} with --provider external) and "
            f"run {rerun}, {waiver}.",
        )
    note = f" (--allow-missing does not waive a {status} target)" if target.id in allowed else ""
    if status == Status.NOT_RUN:
        return Refusal(
            Cause.NOT_RUN,
            target.id,
            f"{name} is required, and a server ran it, but a check could not judge{why}; fix "
            f"what it names until {rerun} passes, or acknowledge it in the plugin's policy "
            f'(a [[waive]] with kind = "not_run") if that is deliberate{note}.',
        )
    return Refusal(
        Cause(str(status)),
        target.id,
        f"{name} is required and {status}{why}; fix the plugin or the environment "
        f"until {rerun} passes, see compat.md for the failing checks{note}.",
    )


def _why(result: TargetResult | None) -> str:
    """`` (the checks that failed or errored; the target's own reason)``, or nothing.

    The reason names the first failing check only; compat.md has them all, whole.
    """
    if result is None:
        return ""
    failing = _failing(result)
    parts = [f"checks {', '.join(failing)}"] if failing else []
    text = "; ".join(parts + ([result.reason] if result.reason else []))
    return f" ({textwrap.shorten(text, REASON_WIDTH, placeholder=' …')})" if text else ""


def _failing(result: TargetResult) -> list[str]:
    """The names of the target's checks that failed or errored."""
    return [c.name for c in result.checks if c.status in (Status.FAILED, Status.ERROR)]


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
    """Write a passing verdict's waivers into compat.json and the verdict into compat.md."""
    verdict.report.allowed_missing = sorted(verdict.allowed_missing)
    write_atomic(
        reports_dir / REPORT_FILE,
        json.dumps(verdict.report.to_dict(), indent=2, default=str) + "\n",
    )
    write_atomic(reports_dir / "compat.md", markdown(verdict.report) + gate_markdown(verdict))


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
