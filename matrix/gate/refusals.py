"""Every reason not to publish, each one small pure function over the report and the build.

A stored status is only believed when the report's own pieces agree with it
(:func:`target_integrity`, :func:`file_refusals`); a required target that
did not pass is refused with what to run again (:func:`target_refusal`).
"""

from __future__ import annotations

import shlex
import textwrap
from dataclasses import fields, replace
from pathlib import Path

from matrix import catalogue
from matrix.define.targets import Matrix, Target
from matrix.engines import ServerInfo, engine_named
from matrix.gate.verdict import (
    PROVEN,
    REASON_WIDTH,
    TARGETS_FOLDER,
    Build,
    Cause,
    Evidence,
    Refusal,
)
from matrix.results import (
    CheckResult,
    RunReport,
    Status,
    TargetResult,
    target_status,
)


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
        engine = engine_named(target.engine, target.flavour)
        wrong = engine.wrong_server(target.version, target.postgis, info)
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
