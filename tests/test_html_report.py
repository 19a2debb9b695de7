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

from matrix.define.targets import DEFAULT_MATRIX_FILE
from matrix.report import ReportWriter
from matrix.report.html import (
    CHARTS_EXTRA,
    INDEX,
    MARKS,
    SCREENSHOT,
    WINDOW,
    chromium,
    render,
    write_html,
)
from matrix.report.markdown import markdown
from matrix.results import (
    CheckResult,
    Finding,
    LockHeld,
    PluginInfo,
    Provenance,
    RevisionEvidence,
    RunReport,
    Status,
    TargetResult,
)
from matrix.results.benchmark import (
    BENCHMARK_FILE,
    BenchmarkDocument,
    Comparison,
    TargetBenchmark,
    load_document,
)

GENERIC = ("insert_commit", "insert_batch", "read_pk", "query_many")
FAILING_TARGET = "pg15-second"
SCRIPT = "<script>alert('owned')</script>"
PROBE = """<script>
const failed = document.querySelector(".why-check.failed");
const message = failed.querySelector(".findings tbody td:nth-child(3)");
const code = failed.querySelector("tr.code details");
const link = document.querySelector("td.check.failed a");
const box = message.getBoundingClientRect();
const mark = document.querySelector("h1 .mark").getBoundingClientRect();
document.body.dataset.probe = JSON.stringify({
  messageShown: message.checkVisibility(), left: box.left, right: box.right, width: innerWidth,
  text: message.innerText, codeFolded: !code.open, codeText: code.textContent,
  target: link.getAttribute("href"), linkedShown: document.querySelector(
    link.getAttribute("href")).checkVisibility(), markWidth: mark.width,
  matrixRight: document.querySelector("#matrix").getBoundingClientRect().right});
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


def test_every_status_has_a_mark_in_words_and_each_mark_links_to_its_why(tmp_path):
    checks = [
        CheckResult("single_head", Status.PASSED, warnings=["3 revisions have no docstring"]),
        CheckResult(
            "upgrade_stepwise",
            Status.WAIVED,
            findings=[Finding("rows_lost", "rows of Item", "a1", waived="small table")],
        ),
        CheckResult("version_table_at_head", Status.PASSED),
        CheckResult("model_matches_ddl", Status.FAILED, reason="Item.name: VARCHAR(50) != TEXT"),
        CheckResult("schema_isolation", Status.ERROR, reason="the server went away"),
        CheckResult("data_survives", Status.NOT_RUN, reason="no table could be filled"),
    ]
    target = target_of(checks, status=Status.ERROR, reason="schema_isolation: went away")
    page = render(report_of(target), tmp_path, None)
    for status in Status:
        assert f'<td class="check {status}"' in page
        assert f'<span class="mark {status}">{MARKS[status]}</span> {status}' in page  # legend
    assert not re.search(r"[\u2600-\u27bf\U0001f300-\U0001faff]", page)  # no emoji anywhere
    cells = {check.name: cell(page, check.name) for check in checks}
    assert cells["version_table_at_head"] == '<span class="mark passed">PASS</span>'
    for name in ("single_head", "upgrade_stepwise", "model_matches_ddl", "data_survives"):
        assert cells[name].startswith(f'<a href="#why-{PG_TARGET}-{name}">'), cells[name]
        assert f'id="why-{PG_TARGET}-{name}"' in page
    why = page[page.index('<h2 id="why">') :]
    assert "no docstring" in why and "VARCHAR(50) != TEXT" in why and "went away" in why
    assert "waived by the policy (1 finding): small table" in why
    assert "rows of Item" in why  # a waived finding is shown, as waived
    assert "no table could be filled" in why
    assert '<td class="status error"><a href="#why-pg15-postgis33">' in page


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
    assert re.findall(r'<a href="([^"#][^"]*)"', page) == [f"sql/{PG_TARGET}/upgrade.sql"]
    assert 'id="comparison"' in page and page.count('<tr class="slower">') == 5
    document.run_id = "another-run"
    (tmp_path / BENCHMARK_FILE).write_text(json.dumps(document.to_dict()))
    assert 'id="comparison"' not in write_html(tmp_path).read_text()


def _scaled_target() -> TargetResult:
    """Three revisions walked up and down; at scale r1 locks Item, r2 holds no lock, and r3
    never ran at scale (not sampled)."""
    up = [RevisionEvidence(r, "upgrade", 0.01, [f"+ table {r}"]) for r in ("r1", "r2", "r3")]
    down = [RevisionEvidence(r, "downgrade", 0.02) for r in ("r3", "r2", "r1")]
    lock = LockHeld("Item", "AccessExclusiveLock", 0.4, rows=5000, exclusive=True)
    cost = [
        RevisionEvidence("r1", "upgrade", 0.5, rows=0, locks=[lock], rewrites=["Item"]),
        RevisionEvidence("r2", "upgrade", 0.1, rows=15000),
    ]
    return target_of(
        [
            CheckResult("upgrade_stepwise", Status.PASSED, evidence=up),
            CheckResult("downgrade_stepwise", Status.PASSED, evidence=down),
            CheckResult("migration_cost", Status.PASSED, evidence=cost),
        ]
    )


def _row(text: str, revision: str) -> str:
    start = text.index(f"<code>{revision}</code>")
    return text[start : text.index("</tr>", start)]


def test_scale_columns_say_what_they_count_and_tell_no_lock_from_not_sampled(tmp_path):
    page = render(report_of(_scaled_target()), tmp_path, None)
    assert "rows already in the schema" in page and "in all tables together" in page
    assert "AccessExclusiveLock on Item (5,000 rows), 0.400 s" in _row(page, "r1")
    assert "15,000" in _row(page, "r2") and "no lock" in _row(page, "r2")
    assert "not sampled" in _row(page, "r3") and "no lock" not in _row(page, "r3")
    text = markdown(report_of(_scaled_target()))
    assert "rows already in the schema before it (all tables)" in text
    assert "| r2 | 0.100 | 15,000 | no lock | none |" in text
    assert "| r3 | not sampled |  | not sampled |" in text


def test_the_timeline_chart_shows_the_downgrades(tmp_path):
    pytest.importorskip("matplotlib")
    page = render(report_of(_scaled_target()), tmp_path, None)
    chart = page[
        page.index('aria-label="timeline-') : page.index("</svg>", page.index("timeline-"))
    ]
    assert ">downgrade<" in chart and ">upgrade<" in chart


def test_the_matrix_keeps_its_first_column_in_view_and_wraps_its_headers(tmp_path):
    page = render(report_of(_scaled_target()), tmp_path, None)
    assert "#matrix th:first-child, #matrix td:first-child { position: sticky; left: 0;" in page
    assert "downgrade_<wbr>" in page  # check names break at their underscores


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
        r'<td class="check failed" title="downgrade_stepwise: failed[^"]*">(.*?)</td>',
        dom,
        re.DOTALL,
    )
    assert failed, "the failed check is not marked in the matrix"
    assert f'href="#why-{FAILING_TARGET}-downgrade_stepwise"' in failed.group(1)
    assert '<span class="mark failed">FAIL</span>' in failed.group(1)
    assert dom.count('class="check passed"') >= 10
    assert "15." in dom and "external" in dom  # server version and provider


@pytest.mark.live
def test_why_a_target_failed_is_on_the_page_without_a_click(reports):
    """Formerly one click away behind each mark: a CI artifact's reader saw no reason."""
    page = (reports / INDEX).read_text()
    probe = reports / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    try:
        done = chromium(probe, "--dump-dom", "--window-size=1400,1800")
    finally:
        probe.unlink()
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["messageShown"], seen
    assert "downgrade b2 -> a1 failed" in seen["text"] and "Missing" in seen["text"]
    assert 0 <= seen["left"] and seen["right"] <= seen["width"]
    assert seen["codeFolded"] and "downgrade() of b2" in seen["codeText"]  # folded beneath
    assert seen["target"] == f"#why-{FAILING_TARGET}-downgrade_stepwise" and seen["linkedShown"]
    assert seen["markWidth"] > 20  # "FAIL" drawn in letters, not an empty emoji box
    assert seen["matrixRight"] <= seen["width"]  # the matrix fits 1,400 px


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
    links = [link for link in re.findall(r'<a href="([^"#][^"]*)"', page)]  # not in-page ones
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
