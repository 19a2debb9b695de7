"""How repeatable are the benchmark's figures? Run it several times, compare the medians.

A figure's own cv says how steady the rounds of one run were; this says how
far apart whole runs land, which is what a baseline comparison has to
tolerate: choose ``bench --threshold`` above the cv between runs.

    python -m scripts.benchmark_variance --runs 3 -- --targets pg15-postgis33 --provider native

Everything after ``--`` goes to ``python -m matrix bench``; each run writes its
reports to a folder of its own under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from matrix.results.benchmark import (
    BENCHMARK_FILE,
    BenchmarkDocument,
    figures,
    load_document,
    spread,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="benchmark runs (default: 3)")
    parser.add_argument("--work", type=Path, help="folder for the runs' reports (default: temp)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("reports/benchmark-variance.json"),
        help="where the summary is written (default: %(default)s)",
    )
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then bench options")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="matrix-variance-"))
    extra = [a for a in args.bench_args if a != "--"]
    documents = [run_once(work / f"run-{n}", extra) for n in range(1, args.runs + 1)]
    rows = between_runs(documents)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"runs": args.runs, "figures": rows}, indent=2) + "\n")
    show(rows)
    return 0


def run_once(reports: Path, extra: list[str]) -> BenchmarkDocument:
    """One ``python -m matrix bench``; its ``benchmark.json``."""
    command = [sys.executable, "-m", "matrix", "bench", "--reports", str(reports), *extra]
    done = subprocess.run(command, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited with {done.returncode}")
    return load_document(reports / BENCHMARK_FILE)


def between_runs(documents: list[BenchmarkDocument]) -> list[dict]:
    """For every figure all runs have: the runs' medians, their cv, and the rounds' cv."""
    runs = [figures(d) for d in documents]
    rows = []
    for key in runs[0]:
        found = [r[key] for r in runs if key in r]
        if len(found) < len(runs):
            continue
        medians = [f.median for f in found]
        target, operation, layer, method = key
        rows.append(
            {
                "target": target,
                "operation": operation,
                "layer": layer,
                "method": method,
                "unit": found[0].unit,
                "medians": medians,
                "median": spread(medians).median,
                "cv_between_runs": spread(medians).cv,
                "cv_within_runs": [f.cv for f in found],
            }
        )
    return rows


def show(rows: list[dict]) -> None:
    table = Table(title="benchmark figures over several runs")
    for column in ("target", "operation", "figure", "unit", "medians", "cv between", "cv within"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["target"],
            row["operation"],
            f"{row['layer']}: {row['method']}",
            row["unit"],
            " / ".join(f"{m:,.0f}" for m in row["medians"]),
            f"{row['cv_between_runs']:.1%}",
            " / ".join(f"{c:.0%}" for c in row["cv_within_runs"]),
        )
    Console(highlight=False, width=180).print(table)


if __name__ == "__main__":
    raise SystemExit(main())
