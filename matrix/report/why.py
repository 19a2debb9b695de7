"""Why each target is what it is: the one account compat.md and index.html both print.

A reader of a red report needs, per target, each finding once (its kind,
the revision to blame, the message), what to do about it, the code and SQL
of the step that caused it, and the policy entry that would acknowledge it
instead. The checks store all of that in the results; this module orders it
and removes the repetitions (a check's reason is its first finding again, a
target's reason its first check's again, a waiver's reason is the same for
every finding it covers), so that both reports say the same thing once.
Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matrix.catalogue import ADVICE, BY_NAME, NOT_RUN_KIND
from matrix.define.policy import entry
from matrix.results import (
    CODE_MARK,
    CheckResult,
    Finding,
    RunReport,
    Status,
    TargetResult,
    target_status,
)

ERROR_ADVICE = (
    "The harness or the server failed here, not the plugin: rerun; if it persists, the detail "
    "says where."
)


@dataclass
class Blame:
    """The findings of one check blamed on one revision (or on none), and their code."""

    revision: str | None
    findings: list[Finding]
    code: str  # the step's code and SQL, once for every finding of the group

    @property
    def anchor(self) -> str:
        return self.revision or "history"


@dataclass
class CheckWhy:
    check: CheckResult
    reason: str  # the check's own reason, when its findings do not already say it
    blames: list[Blame]
    advice: list[tuple[str, str]]  # (kind, what to do), once per kind present
    waivers: list[tuple[str, int]]  # (a waiver's reason, how many findings it covers)
    entries: list[str]  # policy entries acknowledging what is still open
    detail: str  # the check's own detail (a traceback), when no finding carries it


@dataclass
class TargetWhy:
    target: TargetResult
    reason: str  # the target's own reason, when no check below already says it
    checks: list[CheckWhy] = field(default_factory=list)  # not passed, then passed with notes

    @property
    def open_checks(self) -> list[CheckWhy]:
        return [c for c in self.checks if c.check.status != Status.PASSED]

    def summary(self) -> list[tuple[CheckWhy, list[str]]]:
        """Each check that did not pass, with the revisions its open findings blame."""
        return [
            (why, list(dict.fromkeys(b.revision for b in why.blames if b.revision and _open(b))))
            for why in self.open_checks
        ]


def _open(blame: Blame) -> bool:
    """Whether the group holds what made its check fail or be waived (not only notes)."""
    return any(f.blocking for f in blame.findings)


def explain(target: TargetResult) -> TargetWhy:
    """Every check of ``target`` with something to say, in catalogue order."""
    status = {check.name: check.status for check in target.checks}
    judged = target.reached and not target.fatal  # else nothing the plugin could change
    checks = [
        _check_why(check, status, judged)
        for check in target.checks
        if check.status != Status.PASSED or check.findings or check.warnings
    ]
    derived = target_status(target.checks, target.reached)[1] if target.reached else ""
    own = target.reason if target.reason and target.reason != derived else ""
    return TargetWhy(target, own, checks)


def worth_explaining(target: TargetResult) -> bool:
    why = explain(target)
    return bool(why.checks or why.reason)


@dataclass(frozen=True)
class Blamed:
    """Blocking findings of one kind, from one check, on one revision."""

    check: str
    kind: str
    count: int
    status: Status  # failed while any is open, else waived


def blamed_revisions(target: TargetResult) -> dict[str, list[Blamed]]:
    """Each revision a blocking finding blames, with what blames it, in check order."""
    counts: dict[str, dict[tuple[str, str], list[Finding]]] = {}
    for check in target.checks:
        for finding in check.findings:
            if finding.revision and finding.blocking:
                key = (check.name, finding.kind)
                counts.setdefault(finding.revision, {}).setdefault(key, []).append(finding)
    return {
        revision: [
            Blamed(
                check,
                kind,
                len(found),
                Status.WAIVED if all(f.waived for f in found) else Status.FAILED,
            )
            for (check, kind), found in kinds.items()
        ]
        for revision, kinds in counts.items()
    }


def anchor(target_id: str, check: str, blame: str | None = None) -> str:
    """The id of a target's check (and of a revision's findings in it) on the page."""
    return f"why-{target_id}-{check}" + (f"-{blame}" if blame else "")


def split_code(detail: str) -> tuple[str, str]:
    """A finding's detail as (its own part, the code and SQL of the step it carries)."""
    lines = detail.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(CODE_MARK):
            return "\n".join(lines[:index]).strip(), "\n".join(lines[index:]).strip()
    return detail.strip(), ""


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def policy_summary(report: RunReport) -> tuple[str, list[str]]:
    """The policy line every report prints, and the stale entries under it."""
    path = report.policy.get("path")
    waivers = len(report.policy.get("waivers") or [])
    limits = report.policy.get("cost") or {}
    if path:
        what = plural(waivers, "waiver") + (f", cost limits {_limits(limits)}" if limits else "")
        line = f"Policy: {path} ({what})"
    else:
        line = (
            "Policy: none (peek-matrix-policy.toml beside the plugin, or --policy FILE, "
            "acknowledges findings)"
        )
    return line, list(report.policy.get("stale") or [])


def _limits(limits: dict[str, float]) -> str:
    return ", ".join(f"{key} = {value:g}" for key, value in limits.items())


def _check_why(check: CheckResult, status: dict[str, Status], judged: bool) -> CheckWhy:
    groups: dict[str | None, Blame] = {}
    for finding in check.findings:  # waived ones too: a waived finding is shown, as waived
        group = groups.setdefault(finding.revision, Blame(finding.revision, [], ""))
        group.findings.append(finding)
        group.code = group.code or split_code(finding.detail)[1]
    open_ = [f for f in check.findings if f.blocking and not f.waived]
    # Advice for what fails, and for the kinds that are only ever notes; a note of a kind
    # that can fail (create_all would differ, but Peek does not use it) needs none.
    kinds = list(
        dict.fromkeys(
            f.kind
            for f in check.findings
            if not f.waived and f.kind in ADVICE and (f.blocking or ADVICE[f.kind].note_only)
        )
    )
    advice = [(kind, ADVICE[kind].advice) for kind in kinds]
    entries = list(dict.fromkeys(entry(check.name, f.kind, f.revision) for f in open_))
    waived: dict[str, int] = {}
    for finding in check.findings:
        if finding.waived:
            waived[finding.waived] = waived.get(finding.waived, 0) + 1
    # A failed check's reason is its first finding again, a waived one's its findings
    # and waivers again: shown only when it says something else.
    said = {f.message for f in check.findings}
    repeated = check.reason in said or (check.status == Status.WAIVED and bool(check.findings))
    reason = "" if repeated else check.reason
    if check.status == Status.NOT_RUN:
        advice, entries = _not_run_advice(check, status, judged)
    if check.status == Status.ERROR:
        advice = [("error", ERROR_ADVICE)]
    own = check.detail.strip() if check.status == Status.ERROR or not check.findings else ""
    return CheckWhy(
        check,
        reason,
        list(groups.values()),
        advice,
        list(waived.items()),
        entries,
        "" if check.status == Status.PASSED else own,
    )


def _not_run_advice(
    check: CheckResult, status: dict[str, Status], judged: bool
) -> tuple[list[tuple[str, str]], list[str]]:
    """What to do about a check that could not judge, and an entry only where one helps.

    A check that follows another one's failure is settled by fixing (or
    acknowledging) that one; a check that cannot judge this plugin on its
    own (an env.py without an offline branch) is acknowledged by kind
    ``not_run``.
    """
    follows = check.blocked_by or next(
        (n for n in BY_NAME[check.name].needs if status.get(n) != Status.PASSED), None
    )
    if follows and status.get(follows) not in (None, Status.PASSED):
        return [
            (
                NOT_RUN_KIND,
                f"Follows {follows}: fix it, or acknowledge its findings (that waiver covers "
                "this check too).",
            )
        ], []
    if not judged:
        why = "See the target's reason: nothing in this check to acknowledge."
        return [(NOT_RUN_KIND, why)], []
    return [(NOT_RUN_KIND, ADVICE[NOT_RUN_KIND].advice)], [entry(check.name, NOT_RUN_KIND)]
