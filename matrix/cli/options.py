"""Options more than one command takes, each defined once."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from pathlib import Path

from matrix import settings
from matrix.define.targets import DEFAULT_MATRIX_FILE

HELP_WIDTH = 78


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


def positive_float(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not more than 0")
    return value


def add_timeouts(parser: argparse.ArgumentParser) -> None:
    """--check-timeout, --run-timeout and --lock-timeout, which ``run`` and ``site`` take."""
    from matrix.run.frame import (
        DEFAULT_CHECK_TIMEOUT_S,
        DEFAULT_LOCK_TIMEOUT_S,
        DEFAULT_RUN_TIMEOUT_S,
    )

    parser.add_argument(
        "--check-timeout",
        type=positive_float,
        default=DEFAULT_CHECK_TIMEOUT_S,
        help="seconds one check may take (default: %(default)s)",
    )
    parser.add_argument(
        "--run-timeout",
        type=positive_float,
        default=DEFAULT_RUN_TIMEOUT_S,
        help="seconds the whole run may take (default: %(default)s)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=positive_float,
        default=DEFAULT_LOCK_TIMEOUT_S,
        help="seconds a migration may wait for a lock (default: %(default)s)",
    )


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


def add_dist(parser: argparse.ArgumentParser, help: str, default: Path | None = None) -> None:
    parser.add_argument("--dist", type=Path, default=default, metavar="DIR", help=help)


def add_plugin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        default=settings.value("MATRIX_PLUGIN"),
        help="a requirement (peek-plugin-inbox==5.1.6), an sdist, a wheel, a project folder "
        "(built into a wheel) or a package folder (used in place); default: %(default)s",
    )


class _Words(argparse.Action):
    """A repeatable option whose every value may hold several words, comma or space separated.

    The same words a ``MATRIX_*`` variable takes (:func:`settings.words`).
    """

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        found = list(getattr(namespace, self.dest) or [])
        found += values.replace(",", " ").split()
        setattr(namespace, self.dest, found)


def add_allow_missing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-missing",
        action=_Words,
        metavar="ID[,ID...]",
        default=list(settings.words("MATRIX_ALLOW_MISSING")),
        help="waive required targets that are absent or that no server reached (comma "
        "separated, repeatable; MATRIX_ALLOW_MISSING adds more)",
    )


def add_command(
    sub: argparse._SubParsersAction, name: str, summary: str, description: str, *examples: str
) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary, a description and examples, as ``--help`` shows."""
    lines = "\n".join(f"  {example}" for example in examples)
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, HELP_WIDTH),
        epilog=f"examples:\n{lines}" if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def common(parser: argparse.ArgumentParser) -> None:
    """--matrix, --reports and -v, which most commands take."""
    add_matrix(parser)
    add_reports(parser)
    add_verbose(parser)
