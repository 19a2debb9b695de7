"""``reports/index.html``: the compatibility matrix and the benchmark, on one page.

The page is what a reviewer opens from a CI artifact, often offline, so it is
self-contained: styles inline, charts inline SVG drawn by matplotlib (Agg,
no network, no CDN, no script), rendered SQL linked relatively. It is
written from ``compat.json`` alone, plus ``benchmark.json`` for the baseline
comparison when that file belongs to the same run, so ``python -m matrix
html`` can regenerate it from any report folder, including a merged one.

The page is a Mako template that escapes every value by default: check
reasons, findings and tracebacks come from plugins and databases, and must
show as text. Only the SVG drawn here is inserted as markup. matplotlib is
optional; without it the page says how to get the charts.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mako.template import Template

from matrix import processes
from matrix.catalogue import CHECKS
from matrix.errors import HarnessError
from matrix.report import INDEX, SCREENSHOT, load_report, write_atomic
from matrix.report.timeline import describe, lock_cell, timeline
from matrix.report.why import (
    anchor,
    blamed_revisions,
    explain,
    plural,
    policy_summary,
    split_code,
)
from matrix.results import CheckResult, RunReport, Status, TargetResult
from matrix.results.benchmark import (
    BENCHMARK_FILE,
    ORM,
    BenchmarkResult,
    Comparison,
    OperationResult,
    load_document,
)

if TYPE_CHECKING:
    import subprocess

TEMPLATE = Path(__file__).parent / "templates" / "index.html.mako"
CHARTS_EXTRA = "peek-plugin-matrix[html]"
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
# Status marks as words: they read the same without colour, in print, and where no emoji
# font is installed (headless Chromium on Debian draws the emoji marks as empty boxes).
MARKS = {
    Status.PASSED: "PASS",
    Status.WAIVED: "WAIVED",
    Status.FAILED: "FAIL",
    Status.ERROR: "ERROR",
    Status.NOT_RUN: "NOT RUN",
}
ORM_COLOUR = "#1f5fa8"
DRIVER_COLOURS = ("#e08a1e", "#3a9e4f", "#8c8c8c")


def write_html(reports_dir: Path, screenshot: bool = False) -> Path:
    """Write ``index.html`` from the folder's reports (and ``index.png`` if asked)."""
    report = load_report(reports_dir / "compat.json")
    page = reports_dir / INDEX
    write_atomic(page, render(report, reports_dir, _comparison(reports_dir, report)))
    if screenshot:
        take_screenshot(page, reports_dir / SCREENSHOT)
    return page


def _comparison(reports_dir: Path, report: RunReport) -> Comparison | None:
    """The baseline comparison of ``benchmark.json``, if it is about this very run."""
    path = reports_dir / BENCHMARK_FILE
    if not path.is_file():
        return None
    document = load_document(path)
    return document.comparison if document.run_id == report.run_id else None


def render(report: RunReport, reports_dir: Path, comparison: Comparison | None) -> str:
    """The page; every value is escaped by the template unless marked ``| n``."""
    present = {c.name for t in report.targets for c in t.checks}
    measured = {t.id: t.benchmark for t in report.targets if t.benchmark}
    template = Template(filename=str(TEMPLATE), default_filters=["h"], strict_undefined=True)
    explained = {t.id: explain(t) for t in report.targets}
    policy_line, stale_entries = policy_summary(report)
    return template.render(
        report=report,
        plugin_file=_plugin_file(report),
        Status=Status,
        ORM=ORM,
        marks=MARKS,
        columns=[c.name for c in CHECKS if c.required or c.name in present],
        discloses=discloses,
        explained={k: why for k, why in explained.items() if why.checks or why.reason},
        anchor=anchor,
        plural=plural,
        split_code=split_code,
        blamed_by={t.id: blamed_revisions(t) for t in report.targets},
        policy_line=policy_line,
        stale_entries=stale_entries,
        sql={t.id: _sql_scripts(t, reports_dir) for t in report.targets},
        measured=measured,
        charts=_charts(measured),
        timelines={t.id: timeline(t) for t in report.targets if timeline(t)},
        describe=describe,
        lock_cell=lock_cell,
        timeline_charts=_timeline_charts(report),
        charts_extra=CHARTS_EXTRA,
        comparison=comparison,
    )


def _plugin_file(report: RunReport) -> str:
    plugin = report.plugin
    return Path(plugin.wheel).name if plugin.wheel else "none (used in place)"


def discloses(check: CheckResult) -> bool:
    """Whether a check has more to show than its mark: why it did not pass, or notes.

    Such a check has its entry in the page's "Why" section, and its mark links there.
    """
    return check.status != Status.PASSED or bool(check.findings or check.warnings)


def _sql_scripts(target: TargetResult, reports_dir: Path) -> list[str]:
    """Which of the target's rendered scripts exist, linked from the page as sql/<target>/."""
    return [
        name
        for name in ("upgrade", "downgrade")
        if (reports_dir / "sql" / target.id / f"{name}.sql").is_file()
    ]


# -- the charts -----------------------------------------------------------------------


def _timeline_charts(report: RunReport) -> dict[str, str]:
    """Per target that ran migration_cost, seconds per revision: up, down, and at scale.

    Without ``--scale`` the per-revision table says all there is, and every
    run is spared importing matplotlib (a second and a half, 40 MB).
    """
    scaled = [t for t in report.targets if any(r.scale_s is not None for r in timeline(t))]
    if not scaled:
        return {}
    try:
        import matplotlib
    except ImportError:
        return {}
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    charts = {}
    for target in scaled:
        rows = [r for r in timeline(target) if r.up_s is not None or r.scale_s is not None]
        if len(rows) < 2:
            continue
        figure = Figure(figsize=(8.5, 2.6), dpi=100, layout="constrained")
        axes = figure.subplots()
        positions = range(len(rows))
        down = any(r.down_s is not None for r in rows)
        width = 0.4 if down else 0.8
        ups = [p - width / 2 if down else p for p in positions]
        axes.bar(ups, [r.up_s or 0 for r in rows], width, color=ORM_COLOUR, label="upgrade")
        if down:
            downs = [p + width / 2 for p in positions]
            axes.bar(
                downs, [r.down_s or 0 for r in rows], width, color="#e08a1e", label="downgrade"
            )
        if any(r.scale_s is not None for r in rows):
            colours = ["#c0392b" if r.exclusive else "#7f8c8d" for r in rows]
            # a revision not sampled at scale has no point, rather than a false 0 s
            scaled = [float("nan") if r.scale_s is None else r.scale_s for r in rows]
            axes.plot(positions, scaled, "o-", color="#555", lw=1)
            axes.scatter(
                positions,
                scaled,
                c=colours,
                zorder=3,
                label="at scale (red: exclusive lock on rows)",
            )
        axes.set_ylabel("seconds")
        axes.set_xticks(
            list(positions)[:: max(1, len(rows) // 20)],
            [r.revision[:8] for r in rows][:: max(1, len(rows) // 20)],
            rotation=45,
            ha="right",
            fontsize=7,
        )
        axes.spines[["top", "right"]].set_visible(False)
        axes.legend(fontsize=8, frameon=False)
        axes.set_title(f"{target.id}: seconds per revision", fontsize=11, loc="left")
        charts[target.id] = inline_svg(figure, f"timeline-{target.id}")
    return charts


def _charts(measured: dict[str, BenchmarkResult]) -> list[str] | None:
    """One SVG chart per operation with every target in it; None without matplotlib."""
    if not any(o.figures for result in measured.values() for o in result.operations):
        return []
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    by_operation: dict[str, list[tuple[str, OperationResult]]] = {}
    for target_id, result in measured.items():
        for operation in result.operations:
            if operation.figures:
                by_operation.setdefault(operation.operation, []).append((target_id, operation))
    return [_chart(pairs) for pairs in by_operation.values()]


def _chart(measured: list[tuple[str, OperationResult]]) -> str:
    """One operation on every target: a group of bars per target, ORM first."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    layers = {f.method: f.layer for _, o in measured for f in o.figures}
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
            color=ORM_COLOUR if layer == ORM else next(colours),
            label=f"{'ORM' if layer == ORM else 'driver'}: {method}",
        )
        if layer == ORM:
            ratios = [f"{o.orm_to_driver:.0%}" for _, o in measured]
            axes.bar_label(bars, ratios, padding=2, fontsize=9, fontweight="bold")
    first = measured[0][1]
    axes.set_xticks(range(len(measured)), [t for t, _ in measured])
    axes.set_title(f"{first.title} ({first.unit})", fontsize=12, loc="left")
    axes.yaxis.set_major_formatter(EngFormatter(sep=""))
    axes.margins(y=0.18)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return inline_svg(figure, first.operation)


def _series(
    measured: list[tuple[str, OperationResult]], method: str, offset: float
) -> tuple[list[float], list[float], list[list[float]]]:
    """Bar positions, medians and (below, above) whiskers of one method on every target."""
    xs, medians, below, above = [], [], [], []
    for position, (_, operation) in enumerate(measured):
        for figure in operation.figures:
            if figure.method == method:
                xs.append(position + offset)
                medians.append(figure.median)
                below.append(figure.median - figure.min)
                above.append(figure.max - figure.median)
    return xs, medians, [below, above]


def inline_svg(figure, name: str) -> str:
    """The figure as inline SVG: no XML prolog, no namespace URLs, ids unique to it.

    matplotlib escapes the text it draws; ``name`` goes into ids and the label
    reduced to characters that need no escaping.
    """
    import matplotlib

    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    root, body = svg[svg.index("<svg") :].split(">", 1)
    root = re.sub(r'\s(?:xmlns(?::\w+)?|width|height)="[^"]*"', "", root)
    body = re.sub(r"<metadata>.*?</metadata>", "", body, flags=re.DOTALL)
    body = re.sub(r'(id="|url\(#|href="#)', rf"\g<1>{prefix}-", body)
    return f'{root} role="img" aria-label="{prefix}">{body}'


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
        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action]
        return processes.run([*command, page.resolve().as_uri()], "Chromium", timeout=timeout)


def take_screenshot(page: Path, png: Path) -> Path:
    """What a reviewer sees on a laptop screen, as a PNG beside the page."""
    png.unlink(missing_ok=True)
    done = chromium(page, f"--screenshot={png.resolve()}", "--window-size={},{}".format(*WINDOW))
    if not png.is_file():
        raise HarnessError(
            f"Chromium wrote no screenshot of {page}:\n{processes.tail(done.stderr)}",
            "Open the page in a browser to see what is wrong with it.",
        )
    return png
