"""The session benchmark: real figures on a live PostgreSQL + PostGIS, honest statistics.

The benchmark runs through the CLI exactly as a user runs it (``python -m
matrix bench``) against the session's server, with small sizes so that it
takes seconds. Nothing asserts on speed: the tests check that every figure
is there, for both layers, with a consistent spread, that the baseline
comparison flags a slowdown and not an equal run, and that a plugin the
harness has never seen is measured where it can be and skipped, with the
reason, where it cannot.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PG_TARGET, ROOT
from plugin_factory import PluginSpec, healthy_revisions, write_plugin
from sqlalchemy.engine import URL

from matrix import bench

SMALL = ("--rows", "300", "--ops", "30", "--queries", "3", "--rounds", "3", "--warmup", "1")
GENERIC = ("insert_commit", "insert_batch", "read_pk", "query_many")


def matrix_cli(server_url: URL, *args: str) -> subprocess.CompletedProcess:
    """``python -m matrix ARGS`` with the external provider on the session's server."""
    environment = {
        **os.environ,
        "MATRIX_POSTGRESQL_URL": server_url.render_as_string(hide_password=False),
    }
    return subprocess.run(
        [sys.executable, "-m", "matrix", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


def bench_cli(server_url: URL, plugin: Path, reports: Path, *args: str):
    return matrix_cli(
        server_url,
        "bench",
        "--plugin",
        str(plugin),
        "--targets",
        PG_TARGET,
        "--provider",
        "external",
        "--reports",
        str(reports),
        *SMALL,
        *args,
    )


@pytest.fixture(scope="module")
def tutorial(pg_server_url, tmp_path_factory):
    """One benchmark of the tutorial plugin, its figures saved as a baseline."""
    folder = tmp_path_factory.mktemp("bench-tutorial")
    baseline = folder / "baseline.json"
    done = bench_cli(
        pg_server_url,
        ROOT / "plugin_under_test",
        folder / "reports",
        "--dist",
        str(folder / "dist"),
        "--save-baseline",
        str(baseline),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reports = folder / "reports"
    return {
        "output": done.stdout,
        "reports": reports,
        "baseline": baseline,
        "document": json.loads((reports / bench.BENCHMARK_FILE).read_text()),
    }


def operations(document: dict) -> dict[str, dict]:
    return {o["operation"]: o for o in document["targets"][PG_TARGET]["operations"]}


def test_every_operation_has_orm_and_driver_figures(tutorial):
    measured = operations(tutorial["document"])
    assert list(measured) == [b.name for b in bench.BENCHMARKS]
    for name, operation in measured.items():
        assert "figures" in operation, f"{name}: {operation.get('skipped') or operation}"
        layers = [f["layer"] for f in operation["figures"]]
        assert layers[0] == bench.ORM and bench.DRIVER in layers, name
        orm = operation["figures"][0]
        assert orm["statements"] >= 1, name  # counted in the warm-up
        limit = max(f["median"] for f in operation["figures"] if f["layer"] == bench.DRIVER)
        assert math.isclose(operation["orm_to_driver"], orm["median"] / limit)
        for figure in operation["figures"]:
            assert figure["rounds"] == 3 and len(figure["seconds"]) == 3
            assert figure["min"] <= figure["median"] <= figure["max"]
            assert figure["cv"] >= 0 and figure["size"] > 0
            assert all(s > 0 for s in figure["seconds"])
    batch = {f["method"] for f in measured["insert_batch"]["figures"]}
    assert {"execute_values", "COPY"} <= batch
    assert measured["insert_batch"]["driver_limit"] in batch
    target = tutorial["document"]["targets"][PG_TARGET]
    assert target["table"] == "pl_tutorial.StringIntTuple"
    assert target["spatial_table"] == "pl_tutorial.SpatialFeature"
    assert target["global_setting"].endswith("Setting.globalSetting")
    assert target["server_version"].startswith("15.") and target["provider"] == "external"
    assert 0 < target["timed_s"] < target["wall_s"]


def test_figures_land_in_compat_json_and_the_target_json(tutorial):
    reports = tutorial["reports"]
    compat = json.loads((reports / "compat.json").read_text())
    per_target = json.loads((reports / "targets" / f"{PG_TARGET}.json").read_text())
    from_compat = next(t for t in compat["targets"] if t["id"] == PG_TARGET)["benchmark"]
    assert from_compat["operations"] == per_target["target"]["benchmark"]["operations"]
    assert from_compat["operations"] == tutorial["document"]["targets"][PG_TARGET]["operations"]
    assert tutorial["document"]["run_id"] == compat["run_id"]
    assert (reports / "index.html").read_text().count("<svg") == len(bench.BENCHMARKS)
    assert "insert_commit" in tutorial["output"] and "ORM/driver" in tutorial["output"]


def test_saved_baseline_is_the_benchmark_document(tutorial):
    assert json.loads(tutorial["baseline"].read_text()) == tutorial["document"]


def test_statistics_on_known_numbers():
    stats = bench.spread([4.0, 2.0, 1.0])
    assert (stats.median, stats.min, stats.max) == (2.0, 1.0, 4.0)
    # sample standard deviation sqrt(7/3) over the mean 7/3
    assert math.isclose(stats.cv, math.sqrt(7 / 3) / (7 / 3))
    assert bench.spread([5.0]).cv == 0.0
    with pytest.raises(ValueError):
        bench.spread([])
    figure = bench.Figure.from_seconds("op", bench.ORM, "m", "rows/s", 4, [1.0, 2.0, 4.0])
    assert (figure.median, figure.min, figure.max) == (2.0, 1.0, 4.0)  # throughput, not time
    assert figure.cv == stats.cv and figure.rounds == 3


def scaled(document: dict, factor: float) -> dict:
    """The document with every median multiplied: a baseline that was faster or slower."""
    result = copy.deepcopy(document)
    for operation in operations(result).values():
        for figure in operation.get("figures", []):
            figure["median"] *= factor
    return result


def test_compare_flags_a_slowdown_and_not_an_equal_run(tutorial):
    document = tutorial["document"]
    count = sum(len(o["figures"]) for o in operations(document).values())
    equal = bench.compare(document, document, threshold=0.2)
    assert len(equal) == count
    assert not any(c.slower for c in equal) and {c.ratio for c in equal} == {1.0}
    faster_baseline = bench.compare(document, scaled(document, 1.5), threshold=0.2)
    assert all(c.slower for c in faster_baseline)
    assert all(math.isclose(c.ratio, 1 / 1.5) for c in faster_baseline)
    within_threshold = bench.compare(document, scaled(document, 1.1), threshold=0.2)
    assert not any(c.slower for c in within_threshold)


def test_unknown_plugin_is_measured_where_it_can_be_and_compared(pg_server_url, tmp_path, tutorial):
    """A plugin without settings or geometry: generic operations run, the rest say why.

    Its figures are compared with a baseline ten times faster than the
    tutorial's, so every figure the two share is flagged and the exit code is 1.
    """
    package = write_plugin(tmp_path / "src", PluginSpec("benchplain", healthy_revisions()))
    baseline = tmp_path / "fast.json"
    baseline.write_text(json.dumps(scaled(tutorial["document"], 10)))
    done = bench_cli(pg_server_url, package, tmp_path / "reports", "--compare", str(baseline))
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads((tmp_path / "reports" / bench.BENCHMARK_FILE).read_text())
    measured = operations(document)
    assert document["targets"][PG_TARGET]["table"] == "pl_benchplain.Item"
    for name in GENERIC:
        assert {f["layer"] for f in measured[name]["figures"]} == {bench.ORM, bench.DRIVER}
    assert "no globalSetting" in measured["setting_read"]["skipped"]
    assert "no globalSetting" in measured["setting_write"]["skipped"]
    assert "geometry" in measured["spatial_insert"]["skipped"]
    assert "geometry" in measured["spatial_query"]["skipped"]
    comparison = document["comparison"]
    shared = sum(len(measured[name]["figures"]) for name in GENERIC)
    assert len(comparison["changes"]) == shared
    assert comparison["slower"] == shared and comparison["threshold"] == 0.2
    assert "slower" in done.stdout


def test_a_missing_baseline_is_refused_before_the_run(pg_server_url, tmp_path):
    done = bench_cli(
        pg_server_url, ROOT / "plugin_under_test", tmp_path, "--compare", str(tmp_path / "no.json")
    )
    assert done.returncode == 2
    assert "baseline" in done.stderr and not (tmp_path / "compat.json").exists()
