"""``html``: write reports/index.html again from a report folder."""

from __future__ import annotations

import argparse

from matrix.cli.exit_codes import ExitCode
from matrix.cli.options import add_command, add_reports, add_verbose


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "html",
        "write index.html again from compat.json",
        "Write the self-contained HTML report (index.html) from the reports folder's "
        "compat.json, after a merge or a gate; --screenshot also renders it to index.png.",
        "python -m matrix html --reports reports --screenshot",
    )
    add_reports(parser)
    parser.add_argument(
        "--screenshot", action="store_true", help="also render index.png in headless Chromium"
    )
    add_verbose(parser)
    parser.set_defaults(handler=html_command)


def html_command(args: argparse.Namespace) -> int:
    from matrix.report.html import write_html

    print(write_html(args.reports, screenshot=args.screenshot))
    return ExitCode.OK
