"""``compat.md``: targets as rows, checks as columns, and why each non-pass is so.

The "Why" section is :mod:`matrix.report.why`'s account, the same one
index.html prints: each finding once with what to do, the code and SQL of
the step it blames folded beneath, and the policy entries that would
acknowledge what is still open.
"""

from __future__ import annotations

import re
from pathlib import Path

from matrix.catalogue import CHECKS
from matrix.report import timeline
from matrix.report.why import CheckWhy, explain, plural, policy_summary, split_code
from matrix.results import RunReport, RunState, Status

DETAIL_LIMIT = 4000


def markdown(report: RunReport) -> str:
    present = {c.name for t in report.targets for c in t.checks}
    names = [c.name for c in CHECKS if c.required or c.name in present]
    plugin = report.plugin
    policy, stale = policy_summary(report)
    lines = [
        f"# Compatibility of {plugin.name} {plugin.version}",
        "",
        f"- Overall: **{report.status}**" + _state(report),
        f"- Plugin: {plugin.source.describe()}",
        f"- Wheel tested: `{Path(plugin.wheel).name}` (sha256 `{plugin.wheel_sha256}`)"
        if plugin.wheel
        else "- Wheel tested: none (the package folder was used in place)",
        f"- Schema `{plugin.schema}`, {plugin.revisions} revisions",
        f"- Run `{report.run_id}` started {report.started_at}",
        "- Checked with "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.harness.items()))
        + f"; the plugin's environment holds {len(report.environment)} distributions "
        "(listed in compat.json)",
        f"- {policy}",
        *[f"  - stale waiver (it matched nothing in this run): {entry}" for entry in stale],
        "",
        "| target | database | server | PostGIS | provider | status | " + " | ".join(names) + " |",
        "|" + "---|" * (6 + len(names)),
    ]
    for target in report.targets:
        by_name = {c.name: c for c in target.checks}
        cells = [by_name[n].status.symbol if n in by_name else "" for n in names]
        lines.append(
            f"| {target.id} | {target.label} | {target.server_version or '-'} | "
            f"{target.postgis_version or '-'} | {target.provider or '-'} | "
            f"{target.status.symbol} {target.status} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Legend: " + ", ".join(f"{s.symbol} {s}" for s in Status), ""]
    explained = [explain(t) for t in report.targets]
    explained = [why for why in explained if why.checks or why.reason]
    if explained:
        lines += ["## Why", ""]
    for why in explained:
        target = why.target
        lines += [f"### {target.id} ({target.label}): {target.status.symbol} {target.status}", ""]
        if why.reason:
            lines += [_one_line(why.reason), ""]
        for check, revisions in why.summary():
            blamed = f", blaming {', '.join(f'`{r}`' for r in revisions)}" if revisions else ""
            lines.append(f"- {check.check.status.symbol} {check.check.name}{blamed}")
        lines += [""] if why.open_checks else []
        for check in why.checks:
            lines += _check(check)
    costed = [t for t in report.targets if timeline.has_cost(t)]
    if costed:
        lines += ["## Migration cost", ""]
        for target in costed:
            lines += timeline.markdown(target)
    return "\n".join(lines)


def _state(report: RunReport) -> str:
    if report.state == RunState.RUNNING:
        return f" (the run {report.run_id} has not finished: these results are incomplete)"
    if report.state == RunState.INTERRUPTED:
        return f" (the run was interrupted: {report.interrupted})"
    return ""


def _check(why: CheckWhy) -> list[str]:
    check = why.check
    notes = " (notes)" if check.status == Status.PASSED else ""
    lines = [f"#### {check.status.symbol} {check.name}: {check.status}{notes}"]
    if why.reason:
        _block(lines, [_one_line(why.reason)])
    for blame in why.blames:
        items: list[str] = []
        for finding in blame.findings:
            at = f" at `{finding.revision}`" if finding.revision else ""
            note = " (waived)" if finding.waived else "" if finding.blocking else " (note)"
            items.append(f"- `{finding.kind}`{at}{note}: {_one_line(finding.message)}")
            own = split_code(finding.detail)[0]
            if own:
                items += ["", *_folded("the difference", own, indent="  "), ""]
        _block(lines, items)
        if blame.code:
            _block(lines, _folded(f"code and SQL of {blame.revision}", blame.code))
    notes_ = [f"- waived by the policy ({plural(n, 'finding')}): {r}" for r, n in why.waivers]
    notes_ += [f"- warning: {_one_line(warning)}" for warning in check.warnings]
    if notes_:
        _block(lines, notes_)
    if why.detail:
        _block(lines, _folded("detail", why.detail))
    if why.advice:
        _block(lines, ["What to do:", *[f"- `{kind}`: {text}" for kind, text in why.advice]])
    if why.entries:
        _block(lines, ["Or acknowledge it: paste into the policy file and write the reason:"])
        _block(lines, _fenced("\n\n".join(why.entries), "toml"))
    return [*lines, ""]


def _block(lines: list[str], block: list[str]) -> None:
    """Append a Markdown block, one blank line from the one before."""
    while block and not block[-1]:
        block = block[:-1]
    lines += ["", *block]


def _folded(summary: str, text: str, indent: str = "") -> list[str]:
    """A ``<details>`` block, which GitLab and GitHub render folded."""
    body = _fenced(text.strip()[:DETAIL_LIMIT])
    lines = [f"<details><summary>{summary}</summary>", "", *body, "", "</details>"]
    return [f"{indent}{line}" if line else line for line in lines]


def _fenced(text: str, language: str = "") -> list[str]:
    """A code block whose fence no run of backticks inside it can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", *text.splitlines(), fence]


def _one_line(text: str) -> str:
    return " ".join((text or "").split())
