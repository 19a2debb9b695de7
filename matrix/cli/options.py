"""Options more than one command takes, each defined once."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from matrix import settings
from matrix.definition import DEFAULT_MATRIX_FILE


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks and every event"
    )


def add_reports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reports", type=Path, default=Path("reports"), help="report folder (default: %(default)s)"
    )


def add_matrix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--matrix",
        type=Path,
        default=DEFAULT_MATRIX_FILE,
        help="matrix definition file (default: the bundled one)",
    )


def add_dist(parser: argparse.ArgumentParser, default: Path | None = Path("dist")) -> None:
    parser.add_argument("--dist", type=Path, default=default, help="folder of built distributions")


def add_plugin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        default=settings.value("MATRIX_PLUGIN"),
        help="a requirement (peek-plugin-inbox==5.1.6), an sdist, a wheel, a project folder "
        "(built into a wheel) or a package folder (used in place); default: %(default)s",
    )


def add_allow_missing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-missing",
        action="append",
        metavar="ID",
        default=list(settings.words("MATRIX_ALLOW_MISSING")),
        help="waive a required target that is absent or no server reached (repeatable; "
        "also read from MATRIX_ALLOW_MISSING, space or comma separated)",
    )


def common(parser: argparse.ArgumentParser) -> None:
    """--matrix, --reports and -v, which most commands take."""
    add_matrix(parser)
    add_reports(parser)
    add_verbose(parser)
