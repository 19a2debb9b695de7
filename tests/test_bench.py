"""The session benchmark: honest statistics, typed results, real figures on PostGIS.

The unit tests need no server: the statistics on known numbers, the results'
JSON round trip (through ``compat.json``'s target results too), the baseline
comparison, discovery of a plugin's tables, the command's options. The live
tests run the benchmark through the CLI exactly as a user runs it (``python
-m matrix bench``) against the session's server, with small sizes so that it
takes seconds. Nothing asserts on speed: the tests check that every figure is
there, for both layers, with a consistent spread, that the comparison flags a
slowdown and not an equal run, and that a plugin the harness has never seen is
measured where it can be and skipped, with the reason, where it cannot.
"""

from __future__ import annotations

import json
import math
import sys
import types
from dataclasses import asdict

import pytest
import sqlalchemy as sa
from conftest import PG_TARGET, ROOT, bench_cli, sample_benchmark, scaled
from geoalchemy2 import Geometry
from plugin_factory import PluginSpec, healthy_revisions, write_plugin
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from matrix.bench.discovery import MappedTable, Storage
from matrix.bench.operations import BENCHMARKS
from matrix.cli import ExitCode, build_parser, main
from matrix.cli.bench import print_benchmark
from matrix.errors import HarnessError
from matrix.results import PluginInfo, Provenance, RunReport, Status, TargetResult
from matrix.results.benchmark import (
    BENCHMARK_FILE,
    DRIVER,
    ORM,
    BenchmarkDocument,
    BenchmarkResult,
    Comparison,
    Figure,
    TargetBenchmark,
    compare,
    load_document,
    spread,
)

GENERIC = ("insert_commit", "insert_batch", "read_pk", "query_many")


def document_of(result: BenchmarkResult, run_id: str = "run-1") -> BenchmarkDocument:
    return BenchmarkDocument(
        {"name": "sample"},
        "abc123",
        run_id,
        "2026-01-01T00:00:00",
        {PG_TARGET: TargetBenchmark("native", "15.4", "3.3.2", result)},
    )


# -- statistics and the model -----------------------------------------------------


def test_statistics_on_known_numbers():
    stats = spread([4.0, 2.0, 1.0])
    assert (stats.median, stats.min, stats.max) == (2.0, 1.0, 4.0)
    # sample standard deviation sqrt(7/3) over the mean 7/3
    assert math.isclose(stats.cv, math.sqrt(7 / 3) / (7 / 3))
    assert spread([5.0]).cv == 0.0
    with pytest.raises(ValueError):
        spread([])
    figure = Figure.from_seconds("op", ORM, "m", "rows/s", 4, [1.0, 2.0, 4.0])
    assert (figure.median, figure.min, figure.max) == (2.0, 1.0, 4.0)  # throughput, not time
    assert figure.cv == stats.cv and figure.rounds == 3


def test_orm_share_is_against_the_fastest_driver_method():
    operation = sample_benchmark().operations[0]
    assert operation.driver_limit == "COPY" and operation.limit.method == "COPY"
    assert math.isclose(operation.orm_to_driver, operation.orm.median / operation.limit.median)
    assert operation.why_not == "" and sample_benchmark().operations[2].why_not


def test_result_round_trips_through_json_and_compat_json():
    result = sample_benchmark()
    assert BenchmarkResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    target = TargetResult(PG_TARGET, "postgresql", "PG 15", True, benchmark=result)
    plugin = PluginInfo("sample", "1.0", Provenance("wheel"))
    report = RunReport(plugin, "run-1", "now", "m.toml", [target])
    # TargetResult serialises with asdict: the same JSON as the result's own to_dict.
    assert report.to_dict()["targets"][0]["benchmark"] == result.to_dict()
    read = RunReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert read.targets[0].benchmark == result
    assert TargetResult.from_dict(asdict(TargetResult("t", "mssql", "x", False))).benchmark is None


def test_document_round_trips_with_its_comparison(tmp_path):
    document = document_of(sample_benchmark())
    document.comparison = Comparison.between(
        document, document_of(sample_benchmark(2)), tmp_path / "base.json", 0.2
    )
    data = json.loads(json.dumps(document.to_dict()))
    assert data["targets"][PG_TARGET]["provider"] == "native"  # flat, as baselines were
    assert data["comparison"]["slower"] == 5  # every figure of the two measured operations
    assert BenchmarkDocument.from_dict(data) == document


def test_compare_flags_a_slowdown_and_not_an_equal_run():
    document = document_of(sample_benchmark())
    count = sum(len(o.figures) for o in sample_benchmark().operations)
    equal = compare(document, document, threshold=0.2)
    assert len(equal) == count
    assert not any(c.slower for c in equal) and {c.ratio for c in equal} == {1.0}
    faster_baseline = compare(document, scaled(document, 1.5), threshold=0.2)
    assert all(c.slower for c in faster_baseline)
    assert all(math.isclose(c.ratio, 1 / 1.5) for c in faster_baseline)
    assert not any(c.slower for c in compare(document, scaled(document, 1.1), threshold=0.2))
    other_target = document_of(sample_benchmark())
    other_target.targets = {"pg17": other_target.targets[PG_TARGET]}
    assert compare(document, other_target, threshold=0.2) == []  # nothing in common


def test_load_document_reads_what_it_wrote_and_refuses_the_rest(tmp_path):
    path = tmp_path / BENCHMARK_FILE
    path.write_text(json.dumps(document_of(sample_benchmark()).to_dict()))
    assert load_document(path) == document_of(sample_benchmark())
    with pytest.raises(HarnessError, match="no benchmark baseline"):
        load_document(tmp_path / "missing.json", "benchmark baseline")
    path.write_text(json.dumps({"targets": []}))
    with pytest.raises(HarnessError, match="is not a benchmark document"):
        load_document(path)
    path.write_text("{")
    with pytest.raises(HarnessError, match="is not valid JSON"):
        load_document(path)


# -- what runs in the check process ----------------------------------------------------


def test_discovery_picks_the_widest_fillable_tables_and_global_setting(monkeypatch):
    """A plugin's mapped classes, as Peek lays them out, without a server."""

    class Base(DeclarativeBase):
        metadata = sa.MetaData(schema="pl_fake")

    class Narrow(Base):
        __tablename__ = "Narrow"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Wide(Base):
        __tablename__ = "Wide"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(5))
        data: Mapped[dict | None] = mapped_column(sa.JSON)

    class Parent(Base):  # referenced by a foreign key: a truncate would cascade
        __tablename__ = "Parent"
        id: Mapped[int] = mapped_column(primary_key=True)
        a: Mapped[str | None]
        b: Mapped[str | None]
        c: Mapped[str | None]

    class Child(Base):
        __tablename__ = "Child"
        id: Mapped[int] = mapped_column(primary_key=True)
        parentId: Mapped[int] = mapped_column(sa.ForeignKey(Parent.id))

    class Place(Base):
        __tablename__ = "Place"
        id: Mapped[int] = mapped_column(primary_key=True)
        point = mapped_column(Geometry("POINT", srid=4326), nullable=False)

    def globalSetting(session, key=None, value=None):
        return {}

    module = types.ModuleType("benchfake")
    vars(module).update(
        {c.__name__: c for c in (Narrow, Wide, Parent, Child, Place)}, globalSetting=globalSetting
    )
    monkeypatch.setitem(sys.modules, "benchfake", module)
    storage = Storage.discover("benchfake", "pl_fake")
    assert storage.plain.table.name == "Wide" and storage.spatial.table.name == "Place"
    assert storage.global_setting is globalSetting
    row = storage.plain.values(1_000_000)
    assert set(row) == {"name", "data"}  # the database numbers the key
    assert len(row["name"]) <= 5 and row["data"] == {"n": 1_000_000}
    assert MappedTable(sa.inspect(Place)).values(7)["point"].startswith("SRID=4326;POINT(")


# -- the command -------------------------------------------------------------------------


def test_bench_takes_run_options_and_runs_one_target_at_a_time(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["bench", "--targets", PG_TARGET, "--rows", "10", "--warmup", "0"])
    assert (args.jobs, args.rows, args.warmup, args.threshold) == (1, 10, 0, 0.2)
    assert args.provider and args.check_timeout  # run's options
    for wrong in (["--rows", "0"], ["--rounds", "x"], ["--threshold", "1.5"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["bench", *wrong])
        assert exited.value.code == ExitCode.USAGE


def test_a_missing_baseline_is_refused_before_the_run(tmp_path, capsys):
    missing = tmp_path / "no.json"
    status = main(["bench", "--compare", str(missing), "--reports", str(tmp_path / "reports")])
    assert status == ExitCode.USAGE
    assert "no benchmark baseline" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_console_table_shows_share_statements_and_slowdowns(tmp_path, capsys):
    document = document_of(sample_benchmark())
    document.comparison = Comparison.between(
        document, document_of(sample_benchmark(2)), tmp_path / "base.json", 0.2
    )
    print_benchmark(document)
    out = capsys.readouterr().out
    assert "ORM/driver" in out and "25%" in out  # add_all at 1000 beside COPY at 4000
    assert "×0.50 slower" in out and "no globalSetting" in out


# -- live: the tutorial plugin and an unknown one, through the CLI --------------------------


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
        "document": load_document(reports / BENCHMARK_FILE),
    }


@pytest.mark.live
def test_every_operation_has_orm_and_driver_figures(tutorial):
    target = tutorial["document"].targets[PG_TARGET]
    measured = {o.operation: o for o in target.result.operations}
    assert list(measured) == [b.name for b in BENCHMARKS]
    for name, operation in measured.items():
        assert operation.figures, f"{name}: {operation.why_not}"
        layers = [f.layer for f in operation.figures]
        assert layers[0] == ORM and DRIVER in layers, name
        assert operation.orm.statements >= 1, name  # counted in the warm-up
        assert math.isclose(operation.orm_to_driver, operation.orm.median / operation.limit.median)
        for figure in operation.figures:
            assert figure.rounds == 3 and len(figure.seconds) == 3
            assert figure.min <= figure.median <= figure.max
            assert figure.cv >= 0 and figure.size > 0
            assert all(s > 0 for s in figure.seconds)
    batch = {f.method for f in measured["insert_batch"].figures}
    assert {"executemany", "COPY"} <= batch
    assert measured["insert_batch"].driver_limit in batch
    assert target.result.table == "pl_tutorial.StringIntTuple"
    assert target.result.spatial_table == "pl_tutorial.SpatialFeature"
    assert target.result.global_setting.endswith("Setting.globalSetting")
    assert target.server_version.startswith("15.") and target.provider == "external"
    assert 0 < target.result.timed_s < target.result.wall_s


@pytest.mark.live
def test_figures_land_in_compat_json_and_the_target_json(tutorial):
    reports = tutorial["reports"]
    compat = json.loads((reports / "compat.json").read_text())
    per_target = json.loads((reports / "targets" / f"{PG_TARGET}.json").read_text())
    from_compat = next(t for t in compat["targets"] if t["id"] == PG_TARGET)
    assert from_compat["status"] == Status.PASSED
    benchmark = BenchmarkResult.from_dict(from_compat["benchmark"])
    assert benchmark == BenchmarkResult.from_dict(per_target["target"]["benchmark"])
    assert benchmark == tutorial["document"].targets[PG_TARGET].result
    assert tutorial["document"].run_id == compat["run_id"]
    assert (reports / "index.html").read_text().count("<svg") == len(BENCHMARKS)
    assert "insert_commit" in tutorial["output"] and "ORM/driver" in tutorial["output"]


@pytest.mark.live
def test_saved_baseline_is_the_benchmark_document(tutorial):
    assert load_document(tutorial["baseline"]) == tutorial["document"]
    assert tutorial["document"].comparison is None


@pytest.mark.live
def test_unknown_plugin_is_measured_where_it_can_be_and_compared(pg_server_url, tmp_path, tutorial):
    """A plugin without settings or geometry: generic operations run, the rest say why.

    Its figures are compared with a baseline ten times faster than the
    tutorial's, so every figure the two share is flagged and the exit code is 1.
    """
    package = write_plugin(tmp_path / "src", PluginSpec("benchplain", healthy_revisions()))
    baseline = tmp_path / "fast.json"
    baseline.write_text(json.dumps(scaled(tutorial["document"], 10).to_dict()))
    done = bench_cli(pg_server_url, package, tmp_path / "reports", "--compare", str(baseline))
    assert done.returncode == ExitCode.INCOMPLETE, done.stdout + done.stderr
    document = load_document(tmp_path / "reports" / BENCHMARK_FILE)
    target = document.targets[PG_TARGET].result
    measured = {o.operation: o for o in target.operations}
    assert target.table == "pl_benchplain.Item"
    for name in GENERIC:
        assert {f.layer for f in measured[name].figures} == {ORM, DRIVER}
    assert "no globalSetting" in measured["setting_read"].skipped
    assert "no globalSetting" in measured["setting_write"].skipped
    assert "geometry" in measured["spatial_insert"].skipped
    assert "geometry" in measured["spatial_query"].skipped
    comparison = document.comparison
    shared = sum(len(measured[name].figures) for name in GENERIC)
    assert len(comparison.changes) == shared
    assert comparison.slower == shared and comparison.threshold == 0.2
    assert "slower" in done.stdout
