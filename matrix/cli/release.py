"""``build``, ``gate`` and ``publish``: the release, around the gate's verdict.

``gate`` exits 0 when the verdict passed, 1 when it refused (every reason
printed), 2 for bad input (no report, a report of another schema, no wheel,
an unknown ``--allow-missing`` id). ``publish`` runs the same gate and
uploads nothing unless it passed; its repository comes from twine's own
variables and ``MATRIX_INDEX_URL``, read here and nowhere else.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from matrix import gate, release, settings
from matrix.cli import ExitCode
from matrix.cli.options import add_allow_missing, add_dist, add_plugin, add_verbose, common
from matrix.plugin.sources import sha256_of


def register(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser("build", help="build the plugin's sdist and wheel for a release")
    add_plugin(build)
    add_dist(build)
    add_verbose(build)
    build.set_defaults(handler=build_command)

    check = sub.add_parser("gate", help="refuse a release the whole matrix has not proven")
    add_gate_options(check)
    check.set_defaults(handler=gate_command)

    upload = sub.add_parser("publish", help="run the gate, then upload the wheel with twine")
    add_gate_options(upload)
    upload.add_argument(
        "--dry-run", action="store_true", help="show what would be uploaded; upload nothing"
    )
    upload.set_defaults(handler=publish_command)


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """What ``gate`` and ``publish`` (which runs the gate first) both take."""
    common(parser)
    add_dist(parser)
    add_allow_missing(parser)


def build_command(args: argparse.Namespace) -> int:
    for path in release.build_release(Path(args.plugin), args.dist):
        print(f"built {path} (sha256 {sha256_of(path)})")
    print(
        f"twine check passed; the wheel holds every file its migrations need; a second "
        f"build gave the same wheel; digests in {args.dist / release.SUMS_FILE}",
        flush=True,
    )
    return ExitCode.OK


def gate_command(args: argparse.Namespace) -> int:
    return ExitCode.OK if run_gate(args).passed else ExitCode.INCOMPLETE


def publish_command(args: argparse.Namespace) -> int:
    verdict = run_gate(args)
    if not verdict.passed:
        print("Nothing was uploaded.", flush=True)
        return ExitCode.INCOMPLETE
    repository = release.repository_from_env(os.environ, _index_url())
    print(release.publish(verdict, repository, args.reports, args.dry_run), flush=True)
    return ExitCode.OK


def run_gate(args: argparse.Namespace) -> gate.Verdict:
    """Decide, print, and record a passing verdict into the reports."""
    verdict = gate.decide(args.reports, args.dist, args.matrix, frozenset(args.allow_missing))
    print(gate.render(verdict), flush=True)
    if verdict.passed:
        gate.record(verdict, args.reports)
    return verdict


def _index_url() -> str | None:
    """MATRIX_INDEX_URL when set; the settings table's default only describes the fallback."""
    return settings.optional("MATRIX_INDEX_URL")
