"""``compat.md``: targets as rows, checks as columns, and why each non-pass is so."""

from __future__ import annotations

from pathlib import Path

from matrix.catalogue import CHECKS
from matrix.reports import timeline
from matrix.results import RunReport, Status

DETAIL_LIMIT = 4000


def markdown(report: RunReport) -> str:
    present = {c.name for t in report.targets for c in t.checks}
    names = [c.name for c in CHECKS if c.required or c.name in present]
    plugin = report.plugin
    lines = [
        f"# Compatibility of {plugin.name} {plugin.version}",
        "",
        f"- Overall: **{report.status}**",
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
        "",
        "| target | server | PostGIS | provider | status | " + " | ".join(names) + " |",
        "|" + "---|" * (5 + len(names)),
    ]
    for target in report.targets:
        by_name = {c.name: c for c in target.checks}
        cells = [by_name[n].status.symbol if n in by_name else "" for n in names]
        lines.append(
            f"| {target.id} | {target.server_version or '-'} | "
            f"{target.postgis_version or '-'} | {target.provider or '-'} | "
            f"{target.status.symbol} {target.status} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Legend: " + ", ".join(f"{s.symbol} {s}" for s in Status), ""]
    stale = report.policy.get("stale") or []
    if report.policy.get("path"):
        lines += [f"Policy: `{report.policy['path']}`"]
        lines += [f"- stale waiver (matched nothing): {entry}" for entry in stale]
        lines.append("")
    costed = [t for t in report.targets if timeline.has_cost(t)]
    if costed:
        lines += ["## Migration cost", ""]
        for target in costed:
            lines += timeline.markdown(target)
    problems = [t for t in report.targets if t.status != Status.PASSED]
    if problems:
        lines += ["## Why", ""]
    for target in problems:
        lines.append(f"### {target.id}: {target.status}")
        if target.reason:
            lines += ["", _one_line(target.reason)]
        for check in target.checks:
            if check.status == Status.PASSED:
                continue
            lines += [
                "",
                f"**{check.name}** ({check.status}"
                + (f", revision `{check.revision}`" if check.revision else "")
                + f"): {_one_line(check.reason)}",
            ]
            for finding in check.findings:
                waived = f" (waived: {finding.waived})" if finding.waived else ""
                blame = f" `{finding.revision}`" if finding.revision else ""
                lines.append(f"- {finding.kind}{blame}: {finding.message}{waived}")
            lines += [f"- warning: {w}" for w in check.warnings]
            if check.status in (Status.FAILED, Status.ERROR) and check.detail.strip():
                lines += ["", "```", check.detail.strip()[:DETAIL_LIMIT], "```"]
        lines.append("")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join((text or "").split())
