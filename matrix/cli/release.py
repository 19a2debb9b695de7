"""``build``, ``gate`` and ``publish``: the release, around the gate's verdict.

``gate`` exits 0 when the verdict passed, 1 when it refused (every reason
printed), 2 for bad input (no report, a report of another schema, no wheel,
an unknown ``--allow-missing`` id). ``publish`` first asks where it would
upload (no ``TWINE_REPOSITORY_URL`` is bad input, dry run or not), then runs
the same gate and uploads nothing unless it passed. A dry run writes nothing:
the reports stay as the matrix left them. The repository comes from twine's
own variables and ``MATRIX_INDEX_URL``, read here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

from matrix import gate, settings
from matrix.cli.exit_codes import ExitCode
from matrix.cli.options import (
    add_allow_missing,
    add_command,
    add_dist,
    add_plugin,
    add_verbose,
    common,
)
from matrix.errors import HarnessError
from matrix.install.sources import sha256_of
from matrix.publish import upload


def register(sub: argparse._SubParsersAction) -> None:
    build = add_command(
        sub,
        "build",
        "build the plugin's sdist and wheel for a release",
        "Build the plugin project into an sdist and a wheel, reproducibly (SOURCE_DATE_EPOCH: "
        "the project's last commit time), check them with twine, check that the wheel holds "
        "every file its migrations need, and record their sha256 and commit in the folder.",
        "python -m matrix build --plugin plugin_under_test --dist dist",
    )
    add_plugin(build)
    add_dist(
        build, "where the sdist and wheel go (emptied first; default: %(default)s)", Path("dist")
    )
    add_verbose(build)
    build.set_defaults(handler=build_command)

    check = add_command(
        sub,
        "gate",
        "refuse a release the whole matrix has not proven",
        "Decide whether the plugin compat.json is about may be released: every required "
        "target passed (or passed with findings its policy waives) for that very wheel "
        "(sha256) and, where compat.json records one, that commit. Exit 0 passed, 1 "
        "refused (every reason listed, with the command that fixes it), 2 bad input.",
        "python -m matrix gate --reports reports",
        "python -m matrix gate --reports reports --dist dist --allow-missing mssql2019,mssql2022",
    )
    add_gate_options(check)
    check.set_defaults(handler=gate_command)

    publish = add_command(
        sub,
        "publish",
        "run the gate, then upload the proven wheel with twine",
        "Run the gate and, only if it passes, upload the wheel it proved with twine to "
        "TWINE_REPOSITORY_URL (as TWINE_USERNAME, TWINE_PASSWORD), then check that the "
        "index serves the same sha256 and write reports/release-notes.md. A wheel the index "
        "already serves with the same bytes is skipped. What the index serves is read from "
        "TWINE_REPOSITORY_URL + simple/ (pypiserver, GitLab), or MATRIX_INDEX_URL where the "
        "simple index lives elsewhere. --dry-run says what would be uploaded where, and writes "
        "and uploads nothing; an index it cannot read is said, not fatal.",
        "TWINE_REPOSITORY_URL=http://127.0.0.1:8080/ python -m matrix publish --dry-run",
        "nox -s publish -- --reports reports",
    )
    add_gate_options(publish)
    publish.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be uploaded and where; write and upload nothing",
    )
    publish.set_defaults(handler=publish_command)


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """What ``gate`` and ``publish`` (which runs the gate first) both take."""
    common(parser)
    add_dist(
        parser,
        "the folder of the wheel to release: it must hold one wheel, the one compat.json "
        "proves (default: the wheel compat.json names, wherever it is)",
    )
    add_allow_missing(parser)


def build_command(args: argparse.Namespace) -> int:
    require_twine("build")
    for path in upload.build_release(Path(args.plugin), args.dist):
        print(f"built {path} (sha256 {sha256_of(path)})")
    print(
        f"twine check passed; the wheel holds every file its migrations need; a second "
        f"build gave the same sdist and wheel; digests in {args.dist / upload.SUMS_FILE}",
        flush=True,
    )
    return ExitCode.OK


def gate_command(args: argparse.Namespace) -> int:
    verdict = run_gate(args)
    if verdict.passed:
        gate.record(verdict, args.reports)
    return ExitCode.OK if verdict.passed else ExitCode.INCOMPLETE


def publish_command(args: argparse.Namespace) -> int:
    require_twine("publish")
    repository = upload.repository_from_env(os.environ, _index_url())
    if repository is None:
        raise HarnessError(
            "TWINE_REPOSITORY_URL is not set, so there is nowhere to publish"
            + (" and a dry run cannot say where it would." if args.dry_run else "."),
            "Set TWINE_REPOSITORY_URL (the index's upload URL), TWINE_USERNAME and "
            "TWINE_PASSWORD in the environment (in GitLab: the project's package registry "
            "and CI_JOB_TOKEN).",
        )
    verdict = run_gate(args)
    if not verdict.passed:
        print("Nothing was uploaded.", flush=True)
        return ExitCode.INCOMPLETE
    if args.dry_run:
        print(upload.dry_run_upload(verdict.build, repository), flush=True)
        return ExitCode.OK
    gate.record(verdict, args.reports)
    print(upload.publish(verdict, repository, args.reports), flush=True)
    return ExitCode.OK


def run_gate(args: argparse.Namespace) -> gate.Verdict:
    """Decide and print the verdict."""
    verdict = gate.decide(args.reports, args.dist, args.matrix, frozenset(args.allow_missing))
    print(gate.render(verdict), flush=True)
    return verdict


def require_twine(command: str) -> None:
    """twine, from the release extra, is installed; else which extra installs it (exit 2)."""
    if importlib.util.find_spec("twine") is None:
        raise HarnessError(
            f"`{command}` runs twine, which is not installed.",
            "Install the release extra: pip install 'peek-plugin-matrix[release]'.",
        )


def _index_url() -> str | None:
    """MATRIX_INDEX_URL when set; the settings table's default only describes the fallback."""
    return settings.optional("MATRIX_INDEX_URL")
