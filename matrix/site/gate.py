"""The release gate over a site report: a platform release proven as a whole site.

The plugin gate (:mod:`matrix.gate`) proves one wheel; a platform release is
the site file (every plugin pinned, in load order), so the site gate asks of
``reports/site/compat.json``: is it about this very site file (sha256) and
this commit; did the site's plugins install together; did every required
target of the matrix run the whole rehearsal and pass (or pass with waived
findings)? Like the plugin gate it verifies rather than trusts: each
target's status is recomputed from its plugins' checks
(:func:`matrix.site.results.site_target_status`), each check's pass from its
findings (:func:`matrix.gate.check_disagreement`), and the overall status
from the targets. ``--allow-missing ID`` waives a required target that is
absent or that no server reached, never one that ran. Pure functions over
the typed report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matrix.define.targets import Matrix
from matrix.gate import Cause, Refusal, check_disagreement
from matrix.results import Status
from matrix.site.results import SiteReport, SiteTargetResult, site_target_status
from matrix.site.sitefile import Site

PROVEN = (Status.PASSED, Status.WAIVED)


@dataclass
class SiteVerdict:
    report: SiteReport
    refusals: list[Refusal] = field(default_factory=list)
    allowed_missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.refusals


def evaluate(
    report: SiteReport,
    stated_status: str | None,
    matrix: Matrix,
    site: Site,
    commit: str | None,
    allowed: frozenset[str] = frozenset(),
) -> SiteVerdict:
    """Every reason the site report does not prove this site file on the required targets."""
    verdict = SiteVerdict(report)
    refusals = verdict.refusals
    if report.site.get("sha256") != site.sha256:
        refusals.append(
            Refusal(
                Cause.OTHER_WHEEL,
                None,
                f"the site report is about a site file with sha256 {report.site.get('sha256')}, "
                f"but {site.path} has sha256 {site.sha256}: the release changed after the "
                f"rehearsal; rerun python -m matrix site --site {site.path}.",
            )
        )
    # A site file outside a repository records no commit: then only its bytes are compared.
    if report.git_commit is not None and report.git_commit != commit:
        refusals.append(
            Refusal(
                Cause.OTHER_COMMIT,
                None,
                f"the site report is about commit {report.git_commit}, but this is "
                f"commit {commit or 'unknown'}; rerun the rehearsal on this commit.",
            )
        )
    if report.failure:
        refusals.append(
            Refusal(Cause.FAILED, None, f"the site failed as a whole: {report.failure}")
        )
    if stated_status != str(report.status):
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                None,
                f"the site report states {stated_status}, but its targets make it "
                f"{report.status}: it was edited after the rehearsal wrote it; rerun it.",
            )
        )
    for target in report.targets:
        refusals += _integrity(target)
    distrusted = {r.target for r in refusals if r.target}
    by_id = {t.id: t for t in report.targets}
    for target in matrix.targets:
        found = by_id.get(target.id)
        if target.id in distrusted or (found and found.status in PROVEN):
            continue
        status = found.status if found else None
        if not target.required:
            verdict.notes.append(f"{target.id} is {status or 'missing'}; not required.")
        elif target.id in allowed and (found is None or not found.reached):
            verdict.allowed_missing.append(target.id)
        elif found is None:
            refusals.append(
                Refusal(
                    Cause.MISSING,
                    target.id,
                    f"{target.id} is required but the site was not rehearsed on it; run "
                    f"python -m matrix site --targets {target.id}, or pass --allow-missing "
                    f"{target.id} to release without it on purpose.",
                )
            )
        else:
            refusals.append(
                Refusal(
                    Cause(str(status)) if status != Status.WAIVED else Cause.FAILED,
                    target.id,
                    f"{target.id} is required and the site is {status} there "
                    f"({' '.join(found.reason.split())[:200]}); see compat.md."
                    + ("" if found.reached else f" Or pass --allow-missing {target.id}."),
                )
            )
    return verdict


def _integrity(target: SiteTargetResult) -> list[Refusal]:
    """A stored status against the plugins' checks, and each check against its findings."""
    refusals = []
    disagreeing = [
        f"{row.name} {why}"
        for row in target.plugins
        for check in row.checks
        if (why := check_disagreement(check))
    ]
    if disagreeing:
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                target.id,
                f"{target.id} holds checks whose status disagrees with their findings "
                f"({'; '.join(disagreeing)}); rerun the rehearsal.",
            )
        )
    recomputed, reason = site_target_status(target)
    if recomputed != target.status:
        refusals.append(
            Refusal(
                Cause.INCONSISTENT,
                target.id,
                f"{target.id} is stored as {target.status}, but its plugins' checks make it "
                f"{recomputed} ({reason}); rerun the rehearsal.",
            )
        )
    return refusals


def render(verdict: SiteVerdict) -> str:
    report = verdict.report
    lines = [
        f"Release gate for the site {report.site.get('name')}",
        f"  site file {report.site.get('path')} (sha256 {report.site.get('sha256')})",
        f"  report run {report.run_id} started {report.started_at}",
    ]
    if verdict.passed:
        lines.append("PASSED: every required target rehearsed the whole site and passed.")
    else:
        count = len(verdict.refusals)
        lines.append(f"REFUSED, {count} reason{'s' if count > 1 else ''}:")
        lines += [f"  - {r.message}" for r in verdict.refusals]
    if verdict.allowed_missing:
        lines.append(f"  allowed missing (deliberate): {', '.join(verdict.allowed_missing)}")
    lines += [f"  note: {note}" for note in verdict.notes]
    return "\n".join(lines)
