"""reports/index.html, rendered in a real browser (headless Chromium).

The report is built as a CI pipeline builds it: one job benchmarks a healthy
plugin on pg15, another runs a plugin whose downgrade is broken on pg17 (both
served by the session's server through the external provider), ``python -m
matrix report`` merges their per-target files and ``python -m matrix html``
writes the page. The page must load without console errors, show the matrix
with the failure's detail one click away, show the charts and the baseline
comparison, and fetch nothing from anywhere.
"""

from __future__ import annotations

import html
import json
import re
import shutil

import pytest
from conftest import PG_TARGET
from matplotlib.image import imread
from plugin_factory import PluginSpec, Revision, healthy_revisions, write_plugin
from test_bench import GENERIC, bench_cli, matrix_cli, scaled

from matrix import bench, html_report

FAILING_TARGET = "pg17-postgis35"
PROBE = """<script>
const details = document.querySelector("td.failed details");
const detail = details.querySelector(".detail");
const shownClosed = detail.checkVisibility();
details.open = true;
const box = detail.getBoundingClientRect();
document.body.dataset.probe = JSON.stringify({shownClosed, shownOpen: detail.checkVisibility(),
  height: box.height, left: box.left, right: box.right, width: innerWidth, text: detail.innerText});
</script>"""


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
    common = ("--provider", "external", "--reports", str(root / "broken"))
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


def _compare_with_a_faster_baseline(folder):
    """Put the comparison with a baseline twice as fast into benchmark.json."""
    path = folder / bench.BENCHMARK_FILE
    document = json.loads(path.read_text())
    baseline = scaled(document, 2)
    document["comparison"] = bench.comparison(document, baseline, folder / "base.json", 0.2)
    path.write_text(json.dumps(document))


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def test_page_loads_in_chromium_and_shows_the_matrix(reports):
    done = html_report.chromium(
        reports / html_report.INDEX, "--dump-dom", "--enable-logging=stderr", "--v=0"
    )
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
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


def test_failure_detail_opens_in_one_click_and_stays_on_screen(reports, tmp_path):
    page = (reports / html_report.INDEX).read_text()
    probe = reports / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    try:
        done = html_report.chromium(probe, "--dump-dom", "--window-size=1400,1800")
    finally:
        probe.unlink()
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    box = json.loads(html.unescape(found.group(1)))
    assert not box["shownClosed"] and box["shownOpen"] and box["height"] > 50
    assert 0 <= box["left"] and box["right"] <= box["width"]
    assert "downgrade b2 -> a1 failed" in box["text"] and "Missing" in box["text"]


def test_page_shows_benchmark_charts_and_baseline_comparison(reports):
    page = (reports / html_report.INDEX).read_text()
    assert page.count("<svg") == len(GENERIC)  # the plugin has no settings, no geometry
    for name in GENERIC:
        assert f'aria-label="{name}"' in page
    assert "no globalSetting" in page and "geometry" in page  # why the others are missing
    assert 'id="comparison"' in page
    flagged = re.findall(r'<tr class="slower">', page)
    figures = json.loads((reports / bench.BENCHMARK_FILE).read_text())["comparison"]["changes"]
    assert len(flagged) == len(figures) > 0


def test_page_links_the_rendered_sql_relatively(reports):
    page = (reports / html_report.INDEX).read_text()
    links = re.findall(r'<a href="([^"]+)"', page)
    assert (
        f"sql/{PG_TARGET}/upgrade.sql" in links and f"sql/{FAILING_TARGET}/downgrade.sql" in links
    )
    for link in links:
        assert (reports / link).is_file(), link


def test_page_fetches_nothing(reports):
    page = (reports / html_report.INDEX).read_text()
    assert "://" not in page
    assert not re.search(r"<(script|link|img|iframe)\b|@import|\bsrc=|url\((?!#)", page)


def test_screenshot_shows_the_matrix_colours(reports):
    pixels = imread(reports / html_report.SCREENSHOT)
    assert pixels.shape[:2] == (html_report.WINDOW[1], html_report.WINDOW[0])
    colours = {
        tuple(round(c * 255) for c in pixel[:3])
        for pixel in pixels[::4, ::4].reshape(-1, pixels.shape[2])
    }
    assert (0xD9, 0xF2, 0xDF) in colours  # a passed check
    assert (0xFB, 0xD5, 0xD5) in colours  # the failed check
