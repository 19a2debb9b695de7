"""``reports/index.html``: the compatibility matrix and the benchmark, on one page.

The page is what a reviewer opens from a CI artifact, often offline, so it is
self-contained: styles inline, charts inline SVG drawn by matplotlib (Agg,
no network, no CDN, no script), rendered SQL linked relatively. It is
written from ``compat.json`` alone, plus ``benchmark.json`` for the baseline
comparison when that file belongs to the same run, so ``python -m matrix
html`` can regenerate it from any report folder, including a merged one.
"""

from __future__ import annotations

import argparse
import html
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from matrix import bench, reports
from matrix.checks import CHECKS
from matrix.errors import HarnessError
from matrix.results import RunReport, Status, TargetResult

INDEX = "index.html"
SCREENSHOT = "index.png"
WINDOW = (1400, 1800)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
MARK = {"passed": "✓", "failed": "✗", "error": "!", "not_run": "–"}
ORM_COLOUR = "#1f5fa8"
DRIVER_COLOURS = ("#e08a1e", "#3a9e4f", "#8c8c8c")

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 0; background: #f6f7f9; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 20px 48px; box-sizing: border-box; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0 0 4px; } code { font-size: 13px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #d5d8dd; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; font-size: 12px; }
#matrix { width: 100%; } #matrix td, #matrix th { padding: 4px 5px; }
#matrix th { font-size: 11.5px; } .nowrap { white-space: nowrap; } .scroll { overflow-x: auto; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#matrix td.check { text-align: center; position: relative; }
.passed { background: #d9f2df; } .failed { background: #fbd5d5; }
.error { background: #f6c7a8; } .not_run { background: #eceae4; color: #666; }
.status { font-weight: 600; white-space: nowrap; }
.badge { font-size: 11px; color: #fff; background: #6b7280; border-radius: 3px; padding: 0 4px; }
summary { cursor: pointer; font-weight: 600; list-style: none; }
summary::-webkit-details-marker { display: none; }
summary::before { content: "▸ "; } details[open] > summary::before { content: "▾ "; }
td.check summary { text-decoration: underline dotted; } td.check summary::before { content: none; }
.detail { position: absolute; z-index: 5; top: 100%; width: min(860px, 70vw);
  background: #fff; border: 1px solid #999; box-shadow: 0 6px 18px rgba(0,0,0,.25);
  padding: 8px 10px; text-align: left; font-weight: normal; }
td.left .detail { left: 0; } td.right .detail { right: 0; }
pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; margin: 4px 0;
  max-height: 50vh; overflow: auto; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px; }
.chart { background: #fff; border: 1px solid #d5d8dd; padding: 6px; }
.chart svg { width: 100%; height: auto; display: block; }
.slower { background: #fbd5d5; font-weight: 600; }
.note { color: #555; font-size: 13px; }
"""


def write_html(reports_dir: Path, screenshot: bool = False) -> Path:
    """Write ``index.html`` from the folder's reports (and ``index.png`` if asked)."""
    report = reports.load_report(reports_dir / "compat.json")
    page = reports_dir / INDEX
    reports.write_atomic(page, render(report, reports_dir, _comparison(reports_dir, report)))
    if screenshot:
        take_screenshot(page, reports_dir / SCREENSHOT)
    return page


def _comparison(reports_dir: Path, report: RunReport) -> dict[str, Any] | None:
    """The baseline comparison of ``benchmark.json``, if it is about this very run."""
    path = reports_dir / bench.BENCHMARK_FILE
    if not path.is_file():
        return None
    document = bench.load_document(path)
    return document.get("comparison") if document.get("run_id") == report.run_id else None


def render(report: RunReport, reports_dir: Path, comparison: dict[str, Any] | None) -> str:
    plugin = report.plugin
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(plugin.name)} {_e(plugin.version)}: compatibility</title>",
            f"<style>{STYLE}</style></head><body><main>",
            _header(report),
            _matrix(report, reports_dir),
            _benchmark(report),
            _baseline(comparison),
            "</main></body></html>",
        ]
    )


def _header(report: RunReport) -> str:
    plugin = report.plugin
    wheel = Path(plugin.wheel).name if plugin.wheel else plugin.source
    sha = f" (sha256 <code>{_e(plugin.wheel_sha256[:16])}…</code>)" if plugin.wheel_sha256 else ""
    return (
        f"<h1>{_e(plugin.name)} {_e(plugin.version)}: "
        f'<span class="{report.status}">&nbsp;{_e(report.status)}&nbsp;</span></h1>'
        f'<p class="meta">Wheel <code>{_e(wheel)}</code>{sha} · commit '
        f"<code>{_e(report.git_commit or 'unknown')}</code> · run <code>{_e(report.run_id)}</code>"
        f" started {_e(report.started_at)} · matrix <code>{_e(report.matrix_file)}</code></p>"
    )


# -- the compatibility matrix -------------------------------------------------------


def _matrix(report: RunReport, reports_dir: Path) -> str:
    names = [c.name for c in CHECKS]
    head = "".join(f"<th>{_e(n).replace('_', '_<wbr>')}</th>" for n in names)
    rows = "\n".join(_matrix_row(t, names, reports_dir) for t in report.targets)
    legend = " ".join(f'<span class="{s}">&nbsp;{MARK[s]} {s}&nbsp;</span>' for s in MARK)
    return (
        "<h2>Compatibility matrix</h2>"
        '<div class="scroll"><table id="matrix"><thead><tr><th>target</th><th>server</th>'
        f"<th>PostGIS</th><th>provider</th><th>status</th>{head}<th>seconds</th><th>SQL</th>"
        f"</tr></thead><tbody>\n{rows}\n</tbody></table></div>"
        f'<p class="note">{legend} · click a failed check for its detail.</p>'
    )


def _matrix_row(target: TargetResult, names: list[str], reports_dir: Path) -> str:
    by_name = {c.name: c for c in target.checks}
    cells = []
    for index, name in enumerate(names):
        check = by_name.get(name)
        side = "left" if index < len(names) / 2 else "right"
        if check is None:
            cells.append(f'<td class="check {side}"></td>')
            continue
        title = f"{name}: {check.status}, {check.duration_s:.2f} s"
        cells.append(
            f'<td class="check {side} {check.status}" title="{_e(title)}">'
            + _details(MARK[check.status], _check_detail(check))
            + "</td>"
        )
    required = '<span class="badge">required</span> ' if target.required else ""
    reason = _details(str(target.status), _e(target.reason)) if target.reason else target.status
    return (
        f'<tr id="target-{_e(target.id)}"><td><b class="nowrap">{_e(target.id)}</b><br>'
        f'{required}<span class="note">{_e(target.label)}</span></td>'
        f"<td>{_e(target.server_version or '-')}</td><td>{_e(target.postgis_version or '-')}</td>"
        f"<td>{_e(target.provider or '-')}</td>"
        f'<td class="status {target.status}">{reason}</td>'
        + "".join(cells)
        + f'<td class="num">{target.duration_s:.1f}</td><td>{_sql_links(target, reports_dir)}</td>'
        "</tr>"
    )


def _check_detail(check) -> str:
    if check.status == Status.PASSED or not check.detail:
        return ""
    revision = f"<p>revision <code>{_e(check.revision)}</code></p>" if check.revision else ""
    return f"{revision}<pre>{_e(check.detail.strip())}</pre>"


def _details(summary: str, body: str) -> str:
    """A one-click disclosure; plain text when there is nothing to disclose."""
    if not body:
        return _e(summary)
    return f'<details><summary>{_e(summary)}</summary><div class="detail">{body}</div></details>'


def _sql_links(target: TargetResult, reports_dir: Path) -> str:
    links = [
        f'<a href="sql/{_e(target.id)}/{name}.sql" title="{name}.sql">{name}</a>'
        for name in ("upgrade", "downgrade")
        if (reports_dir / "sql" / target.id / f"{name}.sql").is_file()
    ]
    return "<br>".join(links) or "-"


# -- the benchmark --------------------------------------------------------------------


def _benchmark(report: RunReport) -> str:
    measured = {t.id: t.benchmark for t in report.targets if t.benchmark}
    if not measured:
        return ""
    by_operation: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    notes = []
    for target_id, benchmark in measured.items():
        if "operations" not in benchmark:
            notes.append(f"{target_id}: {benchmark.get('skipped', 'no figures')}")
        for operation in benchmark.get("operations", []):
            if "figures" in operation:
                by_operation.setdefault(operation["operation"], []).append((target_id, operation))
            else:
                why = operation.get("skipped") or operation.get("error")
                notes.append(f"{operation['operation']} on {target_id}: {why}")
    charts = "".join(f'<div class="chart">{_chart(pairs)}</div>' for pairs in by_operation.values())
    settings = next(iter(measured.values())).get("settings", {})
    missing = f"<p class='note'>Not measured: {_e('; '.join(notes))}.</p>" if notes else ""
    return (
        '<h2 id="benchmark">Session throughput: ORM beside the raw driver</h2>'
        '<p class="note">Bars are the median of the measured rounds, whiskers their '
        "minimum and maximum; the percentage over the ORM bar is its share of the fastest "
        f"driver method. Settings: {_e(_settings_text(settings))}.</p>"
        f'<div class="charts">{charts}</div>{missing}{_figure_table(measured)}'
    )


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in settings.items())


def _chart(measured: list[tuple[str, dict[str, Any]]]) -> str:
    """One operation on every target: a group of bars per target, ORM first."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    layers = {f["method"]: f["layer"] for _, o in measured for f in o["figures"]}
    colours = iter(DRIVER_COLOURS * len(layers))
    width = 0.8 / len(layers)
    figure = Figure(figsize=(6.6, 3.5), dpi=100, layout="constrained")
    axes = figure.subplots()
    for index, (method, layer) in enumerate(layers.items()):
        offset = (index - (len(layers) - 1) / 2) * width
        xs, medians, errors = _series(measured, method, offset)
        bars = axes.bar(
            xs,
            medians,
            width * 0.92,
            yerr=errors,
            capsize=3,
            color=ORM_COLOUR if layer == bench.ORM else next(colours),
            label=f"{'ORM' if layer == bench.ORM else 'driver'}: {method}",
        )
        if layer == bench.ORM:
            ratios = [f"{o['orm_to_driver']:.0%}" for _, o in measured]
            axes.bar_label(bars, ratios, padding=2, fontsize=9, fontweight="bold")
    first = measured[0][1]
    axes.set_xticks(range(len(measured)), [t for t, _ in measured])
    axes.set_title(f"{first['title']} ({first['unit']})", fontsize=12, loc="left")
    axes.yaxis.set_major_formatter(EngFormatter(sep=""))
    axes.margins(y=0.18)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _inline_svg(figure, first["operation"])


def _series(
    measured: list[tuple[str, dict[str, Any]]], method: str, offset: float
) -> tuple[list[float], list[float], list[list[float]]]:
    """Bar positions, medians and (below, above) whiskers of one method on every target."""
    xs, medians, below, above = [], [], [], []
    for position, (_, operation) in enumerate(measured):
        for figure in operation["figures"]:
            if figure["method"] == method:
                xs.append(position + offset)
                medians.append(figure["median"])
                below.append(figure["median"] - figure["min"])
                above.append(figure["max"] - figure["median"])
    return xs, medians, [below, above]


def _inline_svg(figure, prefix: str) -> str:
    """The figure as inline SVG: no XML prolog, no namespace URLs, ids unique to it."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    root, body = svg[svg.index("<svg") :].split(">", 1)
    root = re.sub(r'\s(?:xmlns(?::\w+)?|width|height)="[^"]*"', "", root)
    body = re.sub(r"<metadata>.*?</metadata>", "", body, flags=re.DOTALL)
    body = re.sub(r'(id="|url\(#|href="#)', rf"\g<1>{prefix}-", body)
    return f'{root} role="img" aria-label="{_e(prefix)}">{body}'


FIGURE_COLUMNS = (
    "target operation layer method median min–max cv unit rounds×size ORM/driver statements/op"
).split()


def _figure_table(measured: dict[str, dict[str, Any]]) -> str:
    rows = [
        _figure_row(target_id, operation, figure)
        for target_id, benchmark in measured.items()
        for operation in benchmark.get("operations", [])
        for figure in operation.get("figures", [])
    ]
    head = "".join(f"<th>{_e(c)}</th>" for c in FIGURE_COLUMNS)
    return (
        "<details><summary>Every figure</summary>"
        f'<table id="figures"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></details>"
    )


def _figure_row(target_id: str, operation: dict[str, Any], figure: dict[str, Any]) -> str:
    orm = figure["layer"] == "orm"
    ratio = f"{operation['orm_to_driver']:.0%}" if orm else ""
    statements = "" if figure["statements"] is None else f"{figure['statements']:g}"
    cells = [
        _e(target_id),
        _e(operation["title"]),
        _e(figure["layer"]),
        _e(figure["method"]),
        f"{figure['median']:,.0f}",
        f"{figure['min']:,.0f} – {figure['max']:,.0f}",
        f"{figure['cv']:.1%}",
        _e(figure["unit"]),
        f"{figure['rounds']} × {figure['size']}",
        ratio,
        statements,
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


# -- the baseline ---------------------------------------------------------------------


def _baseline(comparison: dict[str, Any] | None) -> str:
    if not comparison:
        return ""
    changes = sorted(comparison["changes"], key=lambda c: c["ratio"])
    rows = "".join(
        f'<tr class="{"slower" if c["slower"] else ""}"><td>{_e(c["target"])}</td>'
        f"<td>{_e(c['operation'])}</td><td>{_e(c['layer'])}: {_e(c['method'])}</td>"
        f"<td class='num'>{c['baseline']:,.0f}</td><td class='num'>{c['current']:,.0f}</td>"
        f"<td>{_e(c['unit'])}</td><td class='num'>×{c['ratio']:.2f}</td>"
        f"<td>{'slower' if c['slower'] else ''}</td></tr>"
        for c in changes
    )
    return (
        '<h2 id="baseline">Compared with the baseline</h2>'
        f'<p class="note">Baseline <code>{_e(comparison["baseline"])}</code> (run '
        f"<code>{_e(comparison.get('baseline_run') or '?')}</code>, commit "
        f"<code>{_e(comparison.get('baseline_commit') or '?')}</code>). "
        f"<b>{comparison['slower']}</b> of {len(changes)} figures fell by more than "
        f"{comparison['threshold']:.0%}; ratio is current over baseline throughput.</p>"
        '<table id="comparison"><thead><tr><th>target</th><th>operation</th><th>figure</th>'
        "<th>baseline</th><th>current</th><th>unit</th><th>ratio</th><th></th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


# -- the browser ----------------------------------------------------------------------


def chromium(page: Path, *action: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Open a local page in headless Chromium, offline, with a throwaway profile."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise HarnessError(
            "No Chromium to render the report with.",
            "Install it (apt-get install chromium) or leave out --screenshot.",
        )
    with tempfile.TemporaryDirectory(prefix="matrix-chromium-") as profile:
        return subprocess.run(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                *action,
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def take_screenshot(page: Path, png: Path) -> Path:
    """What a reviewer sees on a laptop screen, as a PNG beside the page."""
    png.unlink(missing_ok=True)
    done = chromium(page, f"--screenshot={png.resolve()}", "--window-size={},{}".format(*WINDOW))
    if not png.is_file():
        raise HarnessError(
            f"Chromium wrote no screenshot of {page}:\n{done.stderr[-2000:]}",
            "Open the page in a browser to see what is wrong with it.",
        )
    return png


# -- the command ----------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction) -> None:
    """``python -m matrix html``: regenerate the page from a report folder."""
    parser = sub.add_parser("html", help="write reports/index.html from compat.json")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument(
        "--screenshot", action="store_true", help="also render index.png in headless Chromium"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(handler=_html)


def _html(args: argparse.Namespace) -> int:
    page = write_html(args.reports, screenshot=args.screenshot)
    print(page)
    return 0


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
