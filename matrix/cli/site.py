"""``site`` and ``site-gate``: a whole Peek release rehearsed in one database, and its gate.

Every input is validated before any server starts (the site file, the
matrix file, ``--targets``, the URLs, the policy, the reports folder). The
exit status is the run's: 0 when every target's site passed, 1 when any
failed, errored or was not run (a conflict between two plugins' pins is a
failure of the site), 2 for bad input.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from matrix import settings
from matrix.cli.console import make_progress
from matrix.cli.exit_codes import ExitCode
from matrix.cli.options import (
    add_allow_missing,
    add_command,
    add_matrix,
    add_timeouts,
    add_verbose,
    whole_number,
)
from matrix.cli.run import select_targets, targets_options
from matrix.define.policy import load_policy
from matrix.define.targets import load_matrix
from matrix.engines import engine_names
from matrix.install.sources import tree_commit
from matrix.report import check_folder, read_report
from matrix.results import Status

DEFAULT_SITE_FILE = Path("site.toml")
DEFAULT_REPORTS = Path("reports/site")


def register(sub: argparse._SubParsersAction) -> None:
    site = add_command(
        sub,
        "site",
        "rehearse a whole release in one database: upgrade, check, roll back",
        "Rehearse a Peek release as a site deploys it: every plugin of the site file resolved "
        "into one environment, the previous release installed in load order by its own "
        "scripts and filled with rows, then upgraded plugin by plugin, one transaction each, "
        "as the logic service does; six site checks follow (upgrade, isolation, matches a "
        "fresh install, rows kept, maintenance window, rollback). Reports go to reports/site/.",
        "python -m matrix site --site site.toml --targets pg15-postgis33",
        "python -m matrix site --site site.toml --scale 10000 --provider docker",
    )
    site.add_argument(
        "--site", type=Path, default=DEFAULT_SITE_FILE, help="the site file (default: %(default)s)"
    )
    add_matrix(site)
    site.add_argument(
        "--reports", type=Path, default=DEFAULT_REPORTS, help="report folder (default: %(default)s)"
    )
    add_verbose(site)
    site.add_argument("--targets", help="comma-separated target ids (default: all)")
    site.add_argument("--engine", choices=engine_names(), help="only targets of this engine")
    site.add_argument(
        "--provider",
        default=settings.value("MATRIX_PROVIDER"),
        choices=("auto", "docker", "native", "external"),
        help="what serves the databases (default: %(default)s)",
    )
    site.add_argument(
        "-j", "--jobs", type=whole_number(1), default=os.cpu_count() or 2, help="targets at once"
    )
    site.add_argument("--keep", action="store_true", help="leave containers running afterwards")
    site.add_argument("--docker-network", choices=("host", "bridge"))
    site.add_argument("--no-build-images", dest="allow_build", action="store_false")
    site.add_argument(
        "--scale",
        type=whole_number(1),
        metavar="N",
        help="fill every table to N rows at the previous release: the window at this volume",
    )
    site.add_argument("--policy", type=Path, help="a policy file ([cost] limits for site_window)")
    add_timeouts(site)
    site.set_defaults(handler=site_command)

    gate = add_command(
        sub,
        "site-gate",
        "refuse a platform release the site has not proven",
        "Decide whether the release the site file describes may ship: the site report must be "
        "about this very site file (sha256) and commit, and every required target must have "
        "passed its site checks. Exit 0 passed, 1 refused (every reason listed), 2 bad input.",
        "python -m matrix site-gate --site site.toml --reports reports/site",
    )
    gate.add_argument("--site", type=Path, default=DEFAULT_SITE_FILE, help="the site file")
    add_matrix(gate)
    gate.add_argument("--reports", type=Path, default=DEFAULT_REPORTS, help="the site's reports")
    add_allow_missing(gate)
    add_verbose(gate)
    gate.set_defaults(handler=gate_command)


def site_command(args: argparse.Namespace) -> int:
    from matrix.run.frame import Interrupted
    from matrix.site.reports import SiteReportWriter
    from matrix.site.runner import SiteOptions, run_site
    from matrix.site.sitefile import load_site

    site = load_site(args.site)
    matrix = load_matrix(args.matrix)
    targets = select_targets(matrix, args.targets, args.engine)
    check_folder(args.reports)
    options = SiteOptions(
        **targets_options(args, matrix, targets, load_policy(args.policy)),
        site=site,
        scale=args.scale or 0,
    )
    try:
        with make_progress(args.verbose) as progress:
            report = run_site(options, progress, SiteReportWriter(options.reports_dir))
    except Interrupted:
        Console(stderr=True).print(f"interrupted; partial results are in {args.reports}")
        return ExitCode.INTERRUPTED
    console = Console(highlight=False, width=max(Console().width, 120))
    if report.failure:
        console.print(f"site-level failure: {report.failure}")
    for target in report.targets:
        window = f", window {target.window_s:.2f} s" if target.window_s is not None else ""
        console.print(
            f"{target.id}: {target.status}{window}  {' '.join(target.reason.split())[:300]}"
        )
    console.print(f"reports: {args.reports}/compat.json, compat.md, junit.xml, index.html")
    return ExitCode.OK if report.status in (Status.PASSED, Status.WAIVED) else ExitCode.INCOMPLETE


def gate_command(args: argparse.Namespace) -> int:
    from matrix.site import gate
    from matrix.site import reports as site_reports
    from matrix.site.sitefile import load_site

    path = args.reports / "compat.json"
    report = site_reports.load(path)
    stated = read_report(path, "site report").get("status")
    verdict = gate.evaluate(
        report,
        stated,
        load_matrix(args.matrix),
        load_site(args.site),
        tree_commit(Path(args.site).parent),
        frozenset(args.allow_missing),
    )
    print(gate.render(verdict), flush=True)
    return ExitCode.OK if verdict.passed else ExitCode.INCOMPLETE
