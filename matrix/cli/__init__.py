"""``python -m matrix``: the command line, the one place argparse lives.

Each command module registers its subcommands and turns parsed options into
typed arguments for the domain functions (``run_matrix(RunOptions)``,
``gate.decide(...)``, ``bench.run(...)``); nothing below this package knows
about argparse or the environment variables (:mod:`matrix.settings`).

Exit status (:class:`ExitCode`): 0 when everything asked for passed, 1 when
any target failed, errored or did not run (an incomplete matrix is not a
green one), 2 for bad input or environment, reported as one paragraph naming
the cause and the fix (``-v`` adds the traceback), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import traceback

from rich.console import Console
from rich.markup import escape

from matrix import masking
from matrix.cli.exit_codes import ExitCode
from matrix.errors import HarnessError

__all__ = ["ExitCode", "build_parser", "main"]

DESCRIPTION = """\
Prove a Peek storage plugin's Alembic migrations on every database it must run
on (PostgreSQL + PostGIS, SQL Server), say per database and per check what
passed and which revision is to blame, and publish the wheel only once every
required database has passed for that very wheel.

Exit status: 0 passed, 1 a target failed, errored or was not run (or the gate
refused), 2 bad input (one paragraph with the cause and the fix), 130
interrupted. Each command's --help has its options and examples."""

EXAMPLES = """\
the loop, on your own plugin:
  python -m matrix run --plugin ./my-plugin         # run it; reports in reports/
  less reports/compat.md                            # read why a target failed
  $EDITOR my-plugin/peek-matrix-policy.toml         # acknowledge a finding, run again
  python -m matrix gate                             # may this wheel be released?
  python -m matrix publish --dry-run                # what would be uploaded, where"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return ExitCode.USAGE
    try:
        return int(args.handler(args))
    except HarnessError as error:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(masking.mask(str(error)))}", highlight=False
        )
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    from matrix.cli import bench, html, images, release, run, site

    parser = argparse.ArgumentParser(
        prog="python -m matrix",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    for module in (run, bench, html, images, release, site):
        module.register(sub)
    return parser
