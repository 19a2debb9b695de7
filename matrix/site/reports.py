"""The site's reports: compat.json, compat.md, junit.xml and index.html, plugins as rows.

Written atomically after every target (:func:`matrix.report.write_atomic`),
so a run that dies keeps what it gathered. The page is self-contained like
the plugin report's: styles inline, the upgrade window's timeline drawn by
matplotlib as inline SVG (:func:`matrix.report.html.inline_svg`), every
value escaped (``html.escape``: reasons and findings come from plugins and
databases).
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from matrix.errors import HarnessError
from matrix.report import ReportWriter, read_report, write_atomic
from matrix.results import CheckResult, LockHeld, Status
from matrix.site.catalogue import SITE_CHECKS
from matrix.site.results import KIND, SITE_REPORT_SCHEMA_VERSION, SiteReport, SiteTargetResult

DETAIL_LIMIT = 4000
SHORT = {info.name: info.name.removeprefix("site_") for info in SITE_CHECKS}


class SiteReportWriter:
    """The site's reports folder: held by one run at a time, all its files rewritten at once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._folder = ReportWriter(directory)

    def locked(self):
        return self._folder.locked()

    def write(self, report: SiteReport) -> None:
        write(self.directory, report)


def write(directory: Path, report: SiteReport) -> None:
    write_atomic(
        directory / "compat.json", json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    )
    write_atomic(directory / "compat.md", markdown(report))
    write_atomic(directory / "junit.xml", junit(report))
    write_atomic(directory / "index.html", page(report))


def load(path: Path) -> SiteReport:
    """A site report the harness wrote, or one paragraph saying why it cannot be read."""
    data = read_report(path, "site report")
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise HarnessError(
            f"{path} is not a site report (its kind is not {KIND!r}).",
            "Pass the compat.json that python -m matrix site wrote (reports/site by default).",
        )
    if data.get("schema_version") != SITE_REPORT_SCHEMA_VERSION:
        raise HarnessError(
            f"{path} has site report schema_version {data.get('schema_version')!r}; this harness "
            f"reads {SITE_REPORT_SCHEMA_VERSION}.",
            "Rerun python -m matrix site with this harness.",
        )
    try:
        return SiteReport.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise HarnessError(
            f"{path} is not a site report ({type(error).__name__}: {error}).",
            "Regenerate it with python -m matrix site; do not edit it by hand.",
        ) from None


# -- compat.md --------------------------------------------------------------------------


def markdown(report: SiteReport) -> str:
    lines = [
        f"# Site rehearsal: {report.site['name']}",
        "",
        f"- Overall: **{report.status.symbol} {report.status}**",
        f"- Site file: `{report.site['path']}` (sha256 `{report.site['sha256']}`)",
        f"- Rows per table: {report.scale or 'a few (no --scale)'}",
        f"- Commit: `{report.git_commit or 'unknown'}`; run `{report.run_id}` started "
        f"{report.started_at}",
        "- Checked with "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.harness.items()))
        + f"; the site's environment holds {len(report.environment)} distributions",
        "",
    ]
    if report.failure:
        lines += ["## Site-level failure", "", report.failure, ""]
    lines += [
        "## Plugins, in load order",
        "",
        "| # | plugin | this release | upgrades from |",
        "|---|---|---|---|",
    ]
    for index, plugin in enumerate(report.plugins, 1):
        since = (
            f"{plugin.previous['version']} ({plugin.previous['revisions']} revisions, head "
            f"`{plugin.previous['head']}`)"
            if plugin.previous
            else f"installed fresh: {plugin.fresh}"
        )
        lines.append(
            f"| {index} | {plugin.name} | {plugin.version} ({plugin.revisions} revisions, head "
            f"`{plugin.head}`) | {_one_line(since)} |"
        )
    lines += [
        "",
        "## Matrix",
        "",
        "| plugin | " + " | ".join(t.id for t in report.targets) + " |",
        "|---|" + "---|" * len(report.targets),
    ]
    for name in _plugin_names(report):
        cells = []
        for target in report.targets:
            row = _row(target, name)
            if row is None:
                cells.append(f"{target.status.symbol} {target.status}")
                continue
            bad = [SHORT[c.name] for c in row.checks if c.status in (Status.FAILED, Status.ERROR)]
            cells.append(
                f"{row.status.symbol} {row.status}" + (f" ({', '.join(bad)})" if bad else "")
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **site** | "
        + " | ".join(f"**{t.status.symbol} {t.status}**" for t in report.targets)
        + " |"
    )
    lines += ["", "Legend: " + ", ".join(f"{s.symbol} {s}" for s in Status), ""]
    for target in report.targets:
        lines += _target_markdown(target)
    return "\n".join(lines) + "\n"


def _target_markdown(target: SiteTargetResult) -> list[str]:
    lines = [
        f"## {target.id}: {target.status.symbol} {target.status}",
        "",
        f"{target.label}; server {target.server_version or '-'}, PostGIS "
        f"{target.postgis_version or '-'}, provider {target.provider or '-'}; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in target.phases.items()),
        "",
    ]
    if target.reason:
        lines += [_one_line(target.reason), ""]
    if target.plugins:
        lines += [
            "| plugin | " + " | ".join(SHORT.values()) + " | upgrade s |",
            "|---|" + "---|" * (len(SHORT) + 1),
        ]
        for row in target.plugins:
            by = {c.name: c for c in row.checks}
            marks = [by[n].status.symbol if n in by else "" for n in SHORT]
            seconds = f"{row.window_s:.3f}" if row.window_s is not None else "-"
            lines.append(f"| {row.name} | " + " | ".join(marks) + f" | {seconds} |")
        lines.append("")
    if target.window_s is not None:
        lines += [
            f"### Maintenance window: {target.window_s:.3f} s",
            "",
            "| plugin | revision | s | changes | exclusive lock on a table with rows |",
            "|---|---|---|---|---|",
        ]
        for row in target.plugins:
            for evidence in row.timeline:
                locks = [_lock(lock) for lock in evidence.locks if lock.exclusive and lock.rows]
                lines.append(
                    f"| {row.name} | {evidence.revision} | {evidence.seconds:.3f} | "
                    f"{_one_line('; '.join(evidence.changes))[:160] or '-'} | "
                    f"{'; '.join(locks) or '-'} |"
                )
        lines.append("")
    for row in target.plugins:
        unpassed = [c for c in row.checks if c.status != Status.PASSED and c.name]
        if not unpassed or row.status == Status.PASSED:
            continue
        lines.append(f"### {target.id} / {row.name}: {row.status.symbol} {row.status}")
        for check in unpassed:
            lines += [
                "",
                f"**{check.name}** ({check.status}"
                + (f", revision `{check.revision}`" if check.revision else "")
                + f"): {_one_line(check.reason)}",
            ]
            for finding in check.findings:
                blame = f" `{finding.revision}`" if finding.revision else ""
                note = "" if finding.blocking else " (note)"
                lines.append(f"- {finding.kind}{blame}{note}: {_one_line(finding.message)}")
            lines += [f"- warning: {w}" for w in check.warnings]
            if check.status in (Status.FAILED, Status.ERROR) and check.detail.strip():
                lines += ["", "```", check.detail.strip()[:DETAIL_LIMIT], "```"]
        lines.append("")
    return lines


def _lock(lock: LockHeld) -> str:
    return f"{lock.mode} on {lock.relation} ({lock.rows} rows), {lock.seconds:.3f} s"


def _plugin_names(report: SiteReport) -> list[str]:
    names = [p.name for p in report.plugins]
    for target in report.targets:
        names += [r.name for r in target.plugins if r.name not in names]
    return names


def _row(target: SiteTargetResult, name: str):
    return next((row for row in target.plugins if row.name == name), None)


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


# -- junit.xml ------------------------------------------------------------------------


def junit(report: SiteReport) -> str:
    suites = ET.Element("testsuites", name=f"site {report.site['name']}")
    if report.failure:
        suite = ET.SubElement(suites, "testsuite", name="site", tests="1", failures="1")
        case = ET.SubElement(suite, "testcase", classname="site", name="environment")
        ET.SubElement(case, "failure", message=report.failure[:200]).text = report.failure
    for target in report.targets:
        checks = [c for row in target.plugins for c in row.checks]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=target.id,
            tests=str(len(checks) + 1),
            failures=str(sum(c.status == Status.FAILED for c in checks)),
            errors=str(sum(c.status == Status.ERROR for c in checks)),
            skipped=str(sum(c.status == Status.NOT_RUN for c in checks)),
            time=f"{target.duration_s:.3f}",
        )
        whole = ET.SubElement(
            suite, "testcase", classname=target.id, name="site", time=f"{target.duration_s:.3f}"
        )
        _outcome(whole, target.status, target.reason, "")
        for row in target.plugins:
            for check in row.checks:
                case = ET.SubElement(
                    suite,
                    "testcase",
                    classname=f"{target.id}.{row.name}",
                    name=check.name,
                    time=f"{check.duration_s:.3f}",
                )
                _outcome(case, check.status, check.reason, check.detail)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _outcome(case: ET.Element, status: Status, reason: str, detail: str) -> None:
    message = _one_line(reason or str(status))[:200]
    if status == Status.FAILED:
        ET.SubElement(case, "failure", message=message).text = detail or reason
    elif status == Status.ERROR:
        ET.SubElement(case, "error", message=message).text = detail or reason
    elif status == Status.NOT_RUN:
        ET.SubElement(case, "skipped", message=message)


# -- index.html -------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 0; background: #f6f7f9; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 20px 48px; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 28px; } code { font-size: 13px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0; }
th, td { border: 1px solid #d5d8dd; padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: #eef0f3; font-size: 12px; } td.c { text-align: center; }
.passed { background: #d9f2df; } .waived { background: #e9f3c9; } .failed { background: #fbd5d5; }
.error { background: #f6c7a8; } .not_run { background: #eceae4; color: #666; }
.meta, .note { color: #555; font-size: 13px; } pre { white-space: pre-wrap; font-size: 12px;
  max-height: 40vh; overflow: auto; } summary { cursor: pointer; }
.chart svg { width: 100%; height: auto; background: #fff; border: 1px solid #d5d8dd; }
"""


def page(report: SiteReport) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(report.site['name'])}: site rehearsal</title><style>{_STYLE}</style>",
        "</head><body><main>",
        f"<h1>Site rehearsal: {e(report.site['name'])} "
        f"<span class='{report.status}'>&nbsp;{report.status.symbol} {report.status}&nbsp;"
        "</span></h1>",
        f"<p class='meta'>site file <code>{e(report.site['path'])}</code> (sha256 "
        f"<code>{e(report.site['sha256'][:16])}…</code>) · commit "
        f"<code>{e(report.git_commit or 'unknown')}"
        f"</code> · run <code>{e(report.run_id)}</code> started {e(report.started_at)} · "
        f"{report.scale or 'a few'} rows per table</p>",
    ]
    if report.failure:
        parts.append(f"<h2>Site-level failure</h2><p class='failed'>{e(report.failure)}</p>")
    parts.append(
        "<h2>Matrix: plugins in load order, targets as columns</h2><table><thead><tr>"
        "<th>#</th><th>plugin</th><th>this release</th><th>upgrades from</th>"
    )
    for target in report.targets:
        parts.append(f"<th colspan='{len(SHORT) + 1}'>{e(target.id)}</th>")
    parts.append("</tr><tr><th colspan='4'></th>")
    for _ in report.targets:
        parts.append("<th>status</th>" + "".join(f"<th>{e(s)}</th>" for s in SHORT.values()))
    parts.append("</tr></thead><tbody>")
    infos = {p.name: p for p in report.plugins}
    for index, name in enumerate(_plugin_names(report), 1):
        info = infos.get(name)
        since = (
            f"{info.previous['version']}"
            if info and info.previous
            else f"fresh: {info.fresh}"
            if info
            else "-"
        )
        parts.append(
            f"<tr><td>{index}</td><td><b>{e(name)}</b></td>"
            f"<td>{e(info.version if info else '-')}</td><td>{e(since)}</td>"
        )
        for target in report.targets:
            row = _row(target, name)
            if row is None:
                parts.append(
                    f"<td class='{target.status}' colspan='{len(SHORT) + 1}'>"
                    f"{target.status.symbol} {e(_one_line(target.reason)[:200])}</td>"
                )
                continue
            parts.append(f"<td class='{row.status} c'>{row.status.symbol}</td>")
            by = {c.name: c for c in row.checks}
            parts += [_cell(by.get(n)) for n in SHORT]
        parts.append("</tr>")
    parts.append("<tr><td></td><td><b>site</b></td><td colspan='2'></td>")
    for target in report.targets:
        window = f"window {target.window_s:.2f} s" if target.window_s is not None else ""
        parts.append(
            f"<td class='{target.status} c' colspan='{len(SHORT) + 1}'>{target.status.symbol} "
            f"{e(str(target.status))} {e(window)}"
            + (
                f"<br><span class='note'>{e(_one_line(target.reason)[:300])}</span>"
                if target.reason
                else ""
            )
            + "</td>"
        )
    parts.append("</tr></tbody></table>")
    parts.append(
        "<p class='note'>"
        + " ".join(f"<span class='{s}'>&nbsp;{s.symbol} {s}&nbsp;</span>" for s in Status)
        + " · open a mark for its reason and findings.</p>"
    )
    charts = timeline_charts(report)
    for target in report.targets:
        if target.window_s is None:
            continue
        parts.append(f"<h2>{e(target.id)}: the upgrade window, {target.window_s:.3f} s</h2>")
        if target.id in charts:
            parts.append(f"<div class='chart'>{charts[target.id]}</div>")
        parts.append(
            "<table><thead><tr><th>plugin</th><th>revision</th><th>s</th><th>changes"
            "</th><th>locks held to the plugin's commit</th></tr></thead><tbody>"
        )
        for row in target.plugins:
            for evidence in row.timeline:
                locks = "<br>".join(
                    ("<b>" if lock.exclusive and lock.rows else "")
                    + e(_lock(lock))
                    + ("</b>" if lock.exclusive and lock.rows else "")
                    for lock in evidence.locks
                )
                parts.append(
                    f"<tr><td>{e(row.name)}</td><td><code>{e(evidence.revision)}</code></td>"
                    f"<td>{evidence.seconds:.3f}</td><td>{e('; '.join(evidence.changes))}</td>"
                    f"<td>{locks or '-'}</td></tr>"
                )
        parts.append("</tbody></table>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _cell(check: CheckResult | None) -> str:
    if check is None:
        return "<td></td>"
    e = html.escape
    body = [f"<b>{e(check.reason)}</b>"] if check.reason else []
    for finding in check.findings:
        blame = f" <code>{e(finding.revision)}</code>" if finding.revision else ""
        note = "" if finding.blocking else " (note)"
        body.append(f"<p>{e(finding.kind)}{blame}{note}: {e(finding.message)}</p>")
        if finding.detail:
            body.append(f"<pre>{e(finding.detail[:DETAIL_LIMIT])}</pre>")
    body += [f"<p>warning: {e(w)}</p>" for w in check.warnings]
    if check.status == Status.ERROR and check.detail:
        body.append(f"<pre>{e(check.detail[:DETAIL_LIMIT])}</pre>")
    title = f"{check.name}: {check.status}"
    if not body:
        return f"<td class='{check.status} c' title='{e(title)}'>{check.status.symbol}</td>"
    return (
        f"<td class='{check.status} c' title='{e(title)}'><details><summary>"
        f"{check.status.symbol}</summary>{''.join(body)}</details></td>"
    )


def timeline_charts(report: SiteReport) -> dict[str, str]:
    """Per target: each plugin's revisions laid end to end, exclusive locks in red."""
    timed = [t for t in report.targets if any(row.timeline for row in t.plugins)]
    if not timed:
        return {}
    try:
        import matplotlib
    except ImportError:
        return {}
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from matrix.report.html import inline_svg

    charts = {}
    for target in timed:
        rows = target.plugins
        figure = Figure(figsize=(10, 0.45 * len(rows) + 1.2), dpi=100, layout="constrained")
        axes = figure.subplots()
        clock = 0.0
        for y, row in enumerate(rows):
            for evidence in row.timeline:
                locked = any(lock.exclusive and lock.rows for lock in evidence.locks)
                axes.barh(
                    y,
                    max(evidence.seconds, 1e-4),
                    left=clock,
                    height=0.6,
                    color="#c0392b" if locked else "#1f5fa8",
                    edgecolor="white",
                )
                clock += evidence.seconds
            held = [lock for e in row.timeline for lock in e.locks if lock.exclusive and lock.rows]
            if held:
                longest = max(held, key=lambda lock: lock.seconds)
                axes.annotate(
                    f"{longest.seconds:.2f} s exclusive",
                    (clock, y),
                    fontsize=7,
                    xytext=(3, -3),
                    textcoords="offset points",
                )
        axes.set_yticks(range(len(rows)), [row.name for row in rows], fontsize=8)
        axes.invert_yaxis()
        axes.set_xlabel("seconds into the upgrade (the harness's observation left out)")
        axes.set_title(
            f"{target.id}: revisions in load order; red: an exclusive lock on a "
            "table with rows, held to the plugin's commit",
            fontsize=10,
            loc="left",
        )
        axes.spines[["top", "right"]].set_visible(False)
        charts[target.id] = inline_svg(figure, f"site-{target.id}")
    return charts
