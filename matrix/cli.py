"""``python -m matrix``: run the matrix, list targets, build images, merge reports.

Exit status: 0 when everything asked for passed, 1 when any target failed,
errored or did not run (an incomplete matrix is not a green one), 2 for bad
input or environment, which is reported as one paragraph naming the cause and
the fix (``-v`` adds the traceback).
"""

from __future__ import annotations

import argparse
import os
import traceback
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from matrix import bench, gate, html_report, images, masking
from matrix.definition import DEFAULT_MATRIX_FILE, ENGINES, load_matrix
from matrix.errors import HarnessError
from matrix.results import RunReport, Status

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PLUGIN_DEFAULT = Path("plugin_under_test")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except HarnessError as error:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(masking.mask(str(error)))}", highlight=False
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m matrix", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the plugin's migrations on the matrix")
    _common(run)
    run.add_argument(
        "--plugin",
        type=Path,
        default=PLUGIN_DEFAULT,
        help="plugin project folder (built into a wheel), package folder "
        "(used in place) or .whl file (default: %(default)s)",
    )
    run.add_argument("--targets", help="comma-separated target ids (default: all)")
    run.add_argument("--engine", choices=ENGINES, help="only targets of this engine")
    run.add_argument(
        "--provider",
        default="auto",
        choices=("auto", "docker", "native", "external"),
        help="what serves the databases (default: %(default)s: docker when "
        "an engine answers, else native)",
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=os.cpu_count() or 2,
        help="targets run in parallel (default: %(default)s)",
    )
    run.add_argument(
        "--keep", action="store_true", help="leave containers running afterwards, for debugging"
    )
    run.add_argument(
        "--docker-network",
        choices=("host", "bridge"),
        help="override the matrix file's network for containers",
    )
    run.add_argument(
        "--no-build-images",
        dest="allow_build",
        action="store_false",
        help="never build an offline image when one is missing",
    )
    run.add_argument("--dist", type=Path, help="where a project's wheel is built")
    run.set_defaults(handler=_run)

    listing = sub.add_parser("list", help="list the matrix targets")
    _common(listing)
    listing.set_defaults(handler=_list)

    report = sub.add_parser("report", help="merge per-target reports into compat.*")
    report.add_argument("files", nargs="+", type=Path, help="targets/*.json files")
    report.add_argument("--reports", type=Path, default=Path("reports"))
    report.add_argument("-v", "--verbose", action="store_true")
    report.set_defaults(handler=_report)

    # subcommands of other modules: each module's add_commands(sub)
    bench.add_commands(sub)
    html_report.add_commands(sub)
    gate.add_commands(sub)
    images.add_commands(sub)

    cell = sub.add_parser("cell", help=argparse.SUPPRESS)
    cell.set_defaults(handler=lambda args: _cell())
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--matrix",
        type=Path,
        default=DEFAULT_MATRIX_FILE,
        help="matrix definition file (default: the bundled one)",
    )
    parser.add_argument(
        "--reports", type=Path, default=Path("reports"), help="report folder (default: %(default)s)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks and every event"
    )


def _run(args: argparse.Namespace) -> int:
    from matrix.progress import make_progress
    from matrix.runner import Interrupted, RunOptions, run_matrix

    matrix = load_matrix(args.matrix)
    ids = [i.strip() for i in args.targets.split(",") if i.strip()] if args.targets else None
    targets = matrix.select(ids, args.engine)
    if not targets:
        raise HarnessError(
            "No target of the matrix matches the selection.",
            "Check --targets and --engine against `python -m matrix list`.",
        )
    options = RunOptions(
        plugin_path=args.plugin,
        targets=targets,
        matrix_file=matrix.path,
        reports_dir=args.reports,
        provider=args.provider,
        jobs=args.jobs,
        keep=args.keep,
        docker_network=args.docker_network,
        allow_build=args.allow_build,
        dist_dir=args.dist,
        benchmark=getattr(args, "benchmark", None),  # set by `bench`
    )
    try:
        with make_progress(args.verbose) as progress:
            report = run_matrix(options, progress)
    except Interrupted:
        Console(stderr=True).print(
            f"interrupted; partial results are in {args.reports}", highlight=False
        )
        return EXIT_INTERRUPTED
    html_report.write_html(args.reports)
    print_summary(report, args.reports)
    return EXIT_OK if report.status == Status.PASSED else EXIT_INCOMPLETE


def print_summary(report: RunReport, reports_dir: Path) -> None:
    table = Table(title=f"{report.plugin.name} {report.plugin.version}: {report.status}")
    for column in ("target", "provider", "server", "PostGIS", "status", "checks", "seconds", "why"):
        table.add_column(column, overflow="fold")
    for target in report.targets:
        passed = sum(c.status == Status.PASSED for c in target.checks)
        failing = [c.name for c in target.checks if c.status in (Status.FAILED, Status.ERROR)]
        why = target.reason or (", ".join(failing) if failing else "")
        table.add_row(
            target.id,
            target.provider or "-",
            target.server_version or "-",
            target.postgis_version or "-",
            str(target.status),
            f"{passed}/{len(target.checks)}",
            f"{target.duration_s:.1f}",
            masking.mask(why.splitlines()[0][:160]) if why else "",
        )
    console = Console(highlight=False, width=max(Console().width, 120))
    console.print(table)
    console.print(f"reports: {reports_dir}/compat.json, compat.md, junit.xml, index.html")


def _list(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    table = Table(title=str(matrix.path))
    for column in ("id", "engine", "version", "PostGIS", "image", "providers", "required"):
        table.add_column(column)
    for t in matrix.targets:
        table.add_row(
            t.id,
            t.engine,
            t.version,
            t.postgis or "-",
            t.image,
            ",".join(t.providers),
            "yes" if t.required else "no",
        )
    Console(highlight=False, width=160).print(table)
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from matrix.reports import ReportWriter, merge_target_files

    report = merge_target_files(args.files)
    ReportWriter(args.reports).write_summaries(report)
    html_report.write_html(args.reports)
    print_summary(report, args.reports)
    return EXIT_OK if report.status == Status.PASSED else EXIT_INCOMPLETE


def _cell() -> int:
    from matrix.cell import main as cell_main

    return cell_main()
