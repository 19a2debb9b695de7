"""``bench``: the matrix with the session throughput benchmark on, and its reports.

All of ``run``'s options apply; the benchmark adds its sizes, a baseline to
save or to compare with, and the screenshot. Targets run one at a time by
default, since cells side by side would measure each other. After the run,
``reports/benchmark.json`` holds the figures by target (and the comparison),
the console shows them, and ``index.html`` is written again with the
comparison in it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from matrix.cli.exit_codes import ExitCode
from matrix.cli.options import add_command, common, whole_number
from matrix.cli.run import add_run_options, run_command
from matrix.report import load_report, write_atomic
from matrix.results import benchmark_document
from matrix.results.benchmark import (
    BENCHMARK_FILE,
    ORM,
    BenchmarkDocument,
    Change,
    Comparison,
    Settings,
    load_document,
)

SIZES = (
    ("rows", 1, "rows per batched insert and in the tables read"),
    ("ops", 1, "single operations per round (commits, key reads, settings)"),
    ("queries", 1, "filtered queries per round"),
    ("rounds", 1, "measured rounds per figure"),
    ("warmup", 0, "discarded rounds before them"),
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "bench",
        "run the matrix and benchmark session throughput on every live target",
        "Run the matrix (all of `run`'s options apply) with the session throughput "
        "benchmark on: the plugin's ORM sessions beside the raw driver, on each target "
        "that passed; write reports/benchmark.json and reports/index.html.",
        "python -m matrix bench --targets pg15-postgis33 --save-baseline base.json",
        "python -m matrix bench --targets pg15-postgis33 --compare base.json --threshold 0.3",
    )
    common(parser)
    add_run_options(parser)
    sizes = parser.add_argument_group("benchmark sizes")
    defaults = Settings()
    for name, minimum, text in SIZES:
        sizes.add_argument(
            f"--{name}",
            type=whole_number(minimum),
            default=getattr(defaults, name),
            help=f"{text} (default: %(default)s)",
        )
    baseline = parser.add_argument_group("baseline")
    baseline.add_argument(
        "--save-baseline", type=Path, metavar="FILE", help="save this run's figures as a baseline"
    )
    baseline.add_argument(
        "--compare", type=Path, metavar="FILE", help="flag figures slower than this baseline"
    )
    baseline.add_argument(
        "--threshold",
        type=_fraction,
        default=0.2,
        help="flag a figure whose throughput fell by more than this fraction "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--screenshot", action="store_true", help="also render reports/index.png in Chromium"
    )
    # One target at a time: cells running side by side would measure each other.
    parser.set_defaults(jobs=1, handler=bench_command)


def _fraction(text: str) -> float:
    """An argparse type: a fraction strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def bench_command(args: argparse.Namespace) -> int:
    """Run the matrix as ``run`` does, benchmark on; then the benchmark's reports.

    The baseline is read first, so that a wrong path fails before any server
    starts. Exit status: ``run``'s, and 1 when a figure got slower than the
    baseline.
    """
    from matrix.report.html import write_html

    baseline = load_document(args.compare, "benchmark baseline") if args.compare else None
    settings = Settings(args.rows, args.ops, args.queries, args.rounds, args.warmup)
    # ``run`` writes the page before benchmark.json exists; only the final page is shot.
    status = run_command(
        argparse.Namespace(**{**vars(args), "screenshot": False}), benchmark=settings
    )
    if status not in (ExitCode.OK, ExitCode.INCOMPLETE):
        return status
    document = benchmark_document(load_report(args.reports / "compat.json"))
    if args.save_baseline:
        _write(args.save_baseline, document)
    if baseline is not None:
        document.comparison = Comparison.between(document, baseline, args.compare, args.threshold)
    _write(args.reports / BENCHMARK_FILE, document)
    print_benchmark(document)
    page = write_html(args.reports, screenshot=args.screenshot)
    Console(highlight=False).print(f"benchmark: {args.reports / BENCHMARK_FILE}, {page}")
    slower = document.comparison.slower if document.comparison else 0
    return ExitCode.INCOMPLETE if status or slower else ExitCode.OK


def _write(path: Path, document: BenchmarkDocument) -> None:
    write_atomic(path, json.dumps(document.to_dict(), indent=2) + "\n")


def print_benchmark(document: BenchmarkDocument) -> None:
    """One line per target and operation: ORM, best driver, their ratio, the baseline."""
    changes = {
        (c.target, c.operation): c
        for c in (document.comparison.changes if document.comparison else [])
        if c.layer == ORM
    }
    table = Table(title="session throughput (median of the rounds, cv in brackets)")
    for column in (
        "target",
        "operation",
        "unit",
        "ORM",
        "driver",
        "ORM/driver",
        "stmts/op",
        "vs baseline",
    ):
        table.add_column(column, overflow="fold")
    for target, measured in document.targets.items():
        for operation in measured.result.operations:
            if not operation.figures:
                why = f"[yellow]{escape(operation.why_not)}[/]"
                table.add_row(target, operation.operation, "", why, "", "", "", "")
                continue
            orm, limit = operation.orm, operation.limit
            table.add_row(
                target,
                operation.operation,
                operation.unit,
                f"{orm.median:,.0f} ({orm.cv:.1%})",
                f"{limit.median:,.0f} ({limit.cv:.1%}) {limit.method}",
                f"{operation.orm_to_driver:.0%}",
                "-" if orm.statements is None else f"{orm.statements:g}",
                _change_text(changes.get((target, operation.operation))),
            )
    Console(highlight=False, width=max(Console().width, 140)).print(table)


def _change_text(change: Change | None) -> str:
    if change is None:
        return ""
    text = f"×{change.ratio:.2f}"
    return f"[bold red]{text} slower[/]" if change.slower else text
