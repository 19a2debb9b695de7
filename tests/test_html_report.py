"""reports/index.html: escaped, self-contained, and right in a real browser.

The unit tests render reports built in Python, no server: whatever a plugin
or a database says (a check's reason, a finding, a warning) shows as text,
never as markup; every status has its mark; matplotlib is optional.

The live tests build the report as a CI pipeline builds it: one job
benchmarks a healthy plugin on pg15, another runs a plugin whose downgrade is
broken on a second PostgreSQL 15 target of a test matrix file (both served
by the session's server through the external provider; a server only proves
its own version), ``python -m matrix report`` merges their per-target files and
``python -m matrix html`` writes the page. In headless Chromium the page must
load without console errors, show the matrix with the failure's detail one
click away, show the charts and the baseline comparison, and fetch nothing
from anywhere.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sys

import pytest
from conftest import PG_TARGET, bench_cli, matrix_cli, sample_benchmark, scaled
from plugin_factory import PluginSpec, Revision, healthy_revisions, write_plugin

from matrix.bench.model import (
    BENCHMARK_FILE,
    BenchmarkDocument,
    Comparison,
    TargetBenchmark,
    load_document,
)
from matrix.definition import DEFAULT_MATRIX_FILE
from matrix.reports import ReportWriter
from matrix.reports.html import (
    CHARTS_EXTRA,
    INDEX,
    SCREENSHOT,
    WINDOW,
    chromium,
    render,
    write_html,
)
from matrix.results import (
    CheckResult,
    Finding,
    PluginInfo,
    Provenance,
    RunReport,
    Status,
    TargetResult,
)

GENERIC = ("insert_commit", "insert_batch", "read_pk", "query_many")
FAILING_TARGET = "pg15-second"
SCRIPT = "<script>alert('owned')</script>"
PROBE = """<script>
const details = document.querySelector("td.check.failed details");
const detail = details.querySelector(".detail");
const shownClosed = detail.checkVisibility();
details.open = true;
const box = detail.getBoundingClientRect();
document.body.dataset.probe = JSON.stringify({shownClosed, shownOpen: detail.checkVisibility(),
  height: box.height, left: box.left, right: box.right, width: innerWidth, text: detail.innerText});
</script>"""


def report_of(*targets: TargetResult, run_id: str = "run-1") -> RunReport:
    plugin = PluginInfo("peek-plugin-sample", "1.0.0", Provenance("wheel", commit="abc123"))
    return RunReport(plugin, run_id, "2026-01-01T00:00:00", "targets.toml", list(targets))


def target_of(checks: list[CheckResult], label: str = "PostgreSQL 15", **values) -> TargetResult:
    return TargetResult(PG_TARGET, "postgresql", label, True, checks=checks, **values)


def cell(page: str, check: str) -> str:
    """The content of a check's cell in the matrix: up to the next cell of the row."""
    start = page.index(">", page.index(f'title="{check}: ')) + 1
    end = re.compile(r'<td class="(check|num)').search(page, start).start()
    return page[start:end].strip().removesuffix("</td>")


def fetches_nothing(page: str) -> bool:
    return "://" not in page and not re.search(
        r"<(script|link|img|iframe)\b|@import|\bsrc=|url\((?!#)", page
    )


# -- unit: the page from reports built in Python -----------------------------------------


def test_what_plugins_and_databases_say_is_escaped(tmp_path):
    failed = CheckResult(
        "downgrade_stepwise",
        Status.FAILED,
        reason=SCRIPT,
        findings=[Finding("downgrade_failed", f"<img src=x> {SCRIPT}", "b2", detail=SCRIPT)],
        warnings=[f'" onmouseover="{SCRIPT}'],
    )
    crashed = CheckResult("data_survives", Status.ERROR, reason="crashed", detail=SCRIPT)
    checks = [CheckResult("single_head", Status.PASSED), failed, crashed]
    target = target_of(checks, label=SCRIPT, status=Status.FAILED, reason=SCRIPT)
    page = render(report_of(target), tmp_path, None)
    assert SCRIPT not in page and "<img" not in page and '" onmouseover' not in page
    # a reason, a finding and its detail, a warning, a traceback, the label, the target's reason
    assert page.count("&lt;script&gt;alert(") == 7


def test_every_status_has_its_mark_and_what_did_not_pass_is_one_click_away(tmp_path):
    checks = [
        CheckResult("single_head", Status.PASSED, warnings=["3 revisions have no docstring"]),
        CheckResult(
            "upgrade_stepwise",
            Status.WAIVED,
            findings=[Finding("table_rewrite", "rewrites Item", "a1", waived="small table")],
        ),
        CheckResult("version_table_at_head", Status.PASSED),
        CheckResult("model_matches_ddl", Status.FAILED, reason="Item.name: VARCHAR(50) != TEXT"),
        CheckResult("schema_isolation", Status.ERROR, reason="the server went away"),
        CheckResult("data_survives", Status.NOT_RUN, reason="no table could be filled"),
    ]
    target = target_of(checks, status=Status.ERROR, reason="schema_isolation: went away")
    page = render(report_of(target), tmp_path, None)
    for status in Status:
        assert f'class="check left {status}"' in page or f'class="check right {status}"' in page
        assert f"{status.symbol} {status}" in page  # the legend
    cells = {check.name: cell(page, check.name) for check in checks}
    assert cells["version_table_at_head"] == Status.PASSED.symbol  # nothing to disclose
    assert "<details>" in cells["single_head"] and "no docstring" in cells["single_head"]
    assert "waived: small table" in cells["upgrade_stepwise"]
    assert "rewrites Item" in cells["upgrade_stepwise"] and ">a1<" in cells["upgrade_stepwise"]
    assert "VARCHAR(50) != TEXT" in cells["model_matches_ddl"]
    assert "went away" in cells["schema_isolation"]
    assert "no table could be filled" in cells["data_survives"]
    assert '<td class="status error"><details><summary>💥 error' in page  # the target's reason


def test_charts_are_inline_svg_and_optional(tmp_path, monkeypatch):
    target = target_of([CheckResult("single_head", Status.PASSED)], benchmark=sample_benchmark())
    page = render(report_of(target), tmp_path, None)
    assert page.count("<svg") == 2 and 'aria-label="insert_batch"' in page
    assert "setting_read on pg15-postgis33: no globalSetting" in page
    assert CHARTS_EXTRA not in page and fetches_nothing(page)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    page = render(report_of(target), tmp_path, None)
    assert "<svg" not in page and f"pip install {CHARTS_EXTRA}" in page
    assert 'id="figures"' in page  # the figures are still there, as a table


def test_page_links_sql_and_shows_the_comparison_of_its_own_run_only(tmp_path):
    target = target_of([CheckResult("single_head", Status.PASSED)], benchmark=sample_benchmark())
    report = report_of(target)
    ReportWriter(tmp_path).write_summaries(report)
    (tmp_path / "sql" / PG_TARGET).mkdir(parents=True)
    (tmp_path / "sql" / PG_TARGET / "upgrade.sql").write_text("SELECT 1;\n")
    document = BenchmarkDocument({}, report.plugin.commit, report.run_id, report.started_at, {})
    document.targets[PG_TARGET] = TargetBenchmark(None, None, None, sample_benchmark())
    baseline = BenchmarkDocument.from_dict(document.to_dict())
    baseline.targets[PG_TARGET].result = sample_benchmark(2)
    document.comparison = Comparison.between(document, baseline, tmp_path / "base.json", 0.2)
    (tmp_path / BENCHMARK_FILE).write_text(json.dumps(document.to_dict()))
    page = write_html(tmp_path).read_text()
    assert re.findall(r'<a href="([^"]+)"', page) == [f"sql/{PG_TARGET}/upgrade.sql"]
    assert 'id="comparison"' in page and page.count('<tr class="slower">') == 5
    document.run_id = "another-run"
    (tmp_path / BENCHMARK_FILE).write_text(json.dumps(document.to_dict()))
    assert 'id="comparison"' not in write_html(tmp_path).read_text()


# -- live: a merged CI report in headless Chromium -----------------------------------------


@pytest.fixture(scope="module")
def reports(pg_server_url, tmp_path_factory):
    """A merged report folder: one benchmarked target, one failing target."""
    root = tmp_path_factory.mktemp("html")
    folder = root / "reports"
    healthy = write_plugin(root / "src", PluginSpec("htmlok", healthy_revisions()))
    done = bench_cli(pg_server_url, healthy, folder, "--save-baseline", str(root / "base.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    revisions = healthy_revisions()
    revisions[1] = Revision(
        "b2", "a1", revisions[1].upgrade, 'op.drop_table("Missing", schema="{schema}")'
    )
    broken = write_plugin(root / "src", PluginSpec("htmlbroken", revisions))
    # Another plugin is another build: its own folder, merged in afterwards.
    matrix = root / "targets.toml"
    matrix.write_text(_with_a_second_pg15(DEFAULT_MATRIX_FILE.read_text()))
    common = ("--provider", "external", "--reports", str(root / "broken"), "--matrix", str(matrix))
    done = matrix_cli(
        pg_server_url, "run", "--plugin", str(broken), "--targets", FAILING_TARGET, *common
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # As GitLab does with the jobs' artifacts: one reports folder for all.
    shutil.copytree(root / "broken" / "sql", folder / "sql", dirs_exist_ok=True)
    done = matrix_cli(
        pg_server_url,
        "report",
        *map(str, (folder / "targets").glob("*.json")),
        *map(str, (root / "broken" / "targets").glob("*.json")),
        "--reports",
        str(folder),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    _compare_with_a_faster_baseline(folder)
    done = matrix_cli(pg_server_url, "html", "--reports", str(folder), "--screenshot")
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def _with_a_second_pg15(text: str) -> str:
    """The bundled matrix plus FAILING_TARGET: PostgreSQL 15 again, under another id."""
    start = text.index('[[target]]\nid = "pg15-postgis33"')
    block = text[start : text.index("[[target]]", start + 1)]
    return text + "\n" + block.replace('id = "pg15-postgis33"', f'id = "{FAILING_TARGET}"')


def _compare_with_a_faster_baseline(folder):
    """Put the comparison with a baseline twice as fast into benchmark.json."""
    path = folder / BENCHMARK_FILE
    document = load_document(path)
    baseline = scaled(document, 2)
    document.comparison = Comparison.between(document, baseline, folder / "base.json", 0.2)
    path.write_text(json.dumps(document.to_dict()))


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


@pytest.mark.live
def test_page_loads_in_chromium_and_shows_the_matrix(reports):
    done = chromium(reports / INDEX, "--dump-dom", "--enable-logging=stderr", "--v=0")
    dom = done.stdout
    assert console_messages(done.stderr) == []
    assert 'id="matrix"' in dom
    rows = re.findall(r'<tr id="target-([^"]+)"', dom)
    assert sorted(rows) == [PG_TARGET, FAILING_TARGET]
    failed = re.search(
        r'<td class="check [a-z]+ failed" title="downgrade_stepwise: failed[^"]*">(.*?)</td>',
        dom,
        re.DOTALL,
    )
    assert failed, "the failed check is not marked in the matrix"
    assert "<details>" in failed.group(1) and "Missing" in failed.group(1)
    assert dom.count('class="check left passed"') + dom.count('class="check right passed"') >= 10
    assert "15." in dom and "external" in dom  # server version and provider


@pytest.mark.live
def test_failure_detail_opens_in_one_click_and_stays_on_screen(reports):
    page = (reports / INDEX).read_text()
    probe = reports / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    try:
        done = chromium(probe, "--dump-dom", "--window-size=1400,1800")
    finally:
        probe.unlink()
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    box = json.loads(html.unescape(found.group(1)))
    assert not box["shownClosed"] and box["shownOpen"] and box["height"] > 50
    assert 0 <= box["left"] and box["right"] <= box["width"]
    assert "downgrade b2 -> a1 failed" in box["text"] and "Missing" in box["text"]


@pytest.mark.live
def test_page_shows_benchmark_charts_and_baseline_comparison(reports):
    page = (reports / INDEX).read_text()
    assert page.count("<svg") == len(GENERIC)  # the plugin has no settings, no geometry
    for name in GENERIC:
        assert f'aria-label="{name}"' in page
    assert "no globalSetting" in page and "geometry" in page  # why the others are missing
    assert 'id="comparison"' in page
    flagged = re.findall(r'<tr class="slower">', page)
    assert len(flagged) == len(load_document(reports / BENCHMARK_FILE).comparison.changes) > 0


@pytest.mark.live
def test_page_links_the_rendered_sql_relatively_and_fetches_nothing(reports):
    page = (reports / INDEX).read_text()
    links = re.findall(r'<a href="([^"]+)"', page)
    assert (
        f"sql/{PG_TARGET}/upgrade.sql" in links and f"sql/{FAILING_TARGET}/downgrade.sql" in links
    )
    for link in links:
        assert (reports / link).is_file(), link
    assert fetches_nothing(page)


@pytest.mark.live
def test_screenshot_shows_the_matrix_colours(reports):
    imread = pytest.importorskip("matplotlib.image").imread
    pixels = imread(reports / SCREENSHOT)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    colours = {
        tuple(round(c * 255) for c in pixel[:3])
        for pixel in pixels[::4, ::4].reshape(-1, pixels.shape[2])
    }
    assert (0xD9, 0xF2, 0xDF) in colours  # a passed check
    assert (0xFB, 0xD5, 0xD5) in colours  # the failed check
