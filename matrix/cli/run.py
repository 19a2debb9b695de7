"""``run``, ``list`` and ``report``: the matrix itself.

Every input is validated here, before any server starts: the matrix file,
the ``--targets`` list, each ``MATRIX_*`` URL (naming the variable), the
policy file, the constraints file, the reports folder, the numbers. Bad
input is one paragraph and exit 2; a run then never fails halfway for a
reason it could have known at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import URL

from matrix import catalogue, masking, settings
from matrix.cli.console import make_progress, print_summary
from matrix.cli.exit_codes import ExitCode
from matrix.cli.options import (
    add_command,
    add_dist,
    add_matrix,
    add_plugin,
    add_reports,
    add_timeouts,
    add_verbose,
    common,
    whole_number,
)
from matrix.define.policy import Policy, find_policy, load_policy
from matrix.define.targets import DEFAULT_MATRIX_FILE, Matrix, Target, load_matrix
from matrix.engines import engine_named, engine_names, engine_of
from matrix.errors import HarnessError
from matrix.install import sources
from matrix.provide import databases
from matrix.report import ReportWriter, check_folder, merge_target_files
from matrix.results import Status
from matrix.results.benchmark import Settings

_TARGET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def register(sub: argparse._SubParsersAction) -> None:
    run = add_command(
        sub,
        "run",
        "run the plugin's migrations on the matrix and check them",
        "Run the plugin's Alembic migrations on every database of the matrix (or those "
        "--targets and --engine pick), check them, and write the reports (compat.json, "
        "compat.md, junit.xml, index.html) into --reports. The plugin gets a virtual "
        "environment of its own. Exit 0 when every target passed (or passed with findings "
        "the policy waives), 1 when any failed, errored or was not run, 2 for bad input.",
        "python -m matrix run --plugin plugin_under_test --targets pg15-postgis33",
        "python -m matrix run --plugin peek-plugin-chat==5.1.6 --with 'Twisted<26' "
        "--with-no-deps peek-platform==5.1.6 --reports reports/chat",
    )
    common(run)
    add_run_options(run)
    run.set_defaults(handler=run_command)

    listing = add_command(
        sub,
        "list",
        "list the targets, the checks and the findings each check reports",
        "List the matrix's targets (with the image a run would start), the checks in the "
        "order they run, and the kinds of finding each check can report: the kind a "
        "policy's [[waive]] entry names.",
        "python -m matrix list",
        "python -m matrix list --matrix my-targets.toml",
    )
    add_matrix(listing)
    add_verbose(listing)
    listing.set_defaults(handler=list_command)

    merge = add_command(
        sub,
        "report",
        "merge per-target results into compat.json, compat.md, junit.xml and index.html",
        "Merge the per-target results that separate runs or CI jobs wrote (targets/*.json, "
        "all about the same build) into one set of reports, as the release gate reads them.",
        "python -m matrix report reports/targets/*.json --reports reports",
    )
    merge.add_argument("files", nargs="+", type=Path, help="targets/*.json files")
    add_reports(merge)
    add_verbose(merge)
    merge.set_defaults(handler=report_command)


def add_run_options(run: argparse.ArgumentParser) -> None:
    add_plugin(run)
    run.add_argument("--targets", help="comma-separated target ids (default: all)")
    run.add_argument("--engine", choices=engine_names(), help="only targets of this engine")
    run.add_argument(
        "--provider",
        default=settings.value("MATRIX_PROVIDER"),
        choices=("auto", "docker", "native", "external"),
        help="what serves the databases (default: %(default)s: docker when an engine "
        "answers, else native)",
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=whole_number(1),
        default=os.cpu_count() or 2,
        help="targets whose checks run at once (every server starts at once)",
    )
    run.add_argument("--keep", action="store_true", help="leave containers running afterwards")
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
    add_dist(
        run,
        "build a project --plugin into DIR, as a release does (default: the cache's builds/, "
        "where the gate finds the wheel after the run)",
    )
    run.add_argument(
        "--with",
        dest="with_requirements",
        action="append",
        default=list(settings.words("MATRIX_PLUGIN_WITH")),
        metavar="REQ",
        help="a requirement the plugin needs but does not declare (repeatable; "
        "MATRIX_PLUGIN_WITH adds more)",
    )
    run.add_argument(
        "--with-no-deps",
        dest="without_dependencies",
        action="append",
        default=list(settings.words("MATRIX_PLUGIN_WITH_NO_DEPS")),
        metavar="REQ",
        help="like --with, installed without its dependencies (a platform package the "
        "migrations import one module of, such as peek-platform)",
    )
    run.add_argument(
        "--constraints",
        type=Path,
        default=Path(settings.value("MATRIX_CONSTRAINTS"))
        if settings.value("MATRIX_CONSTRAINTS")
        else None,
        help="a pip constraints file for the plugin's environment",
    )
    run.add_argument(
        "--policy",
        type=Path,
        help="the plugin's policy file (default: peek-matrix-policy.toml beside the plugin)",
    )
    run.add_argument(
        "--previous",
        default=settings.optional("MATRIX_PREVIOUS"),
        metavar="auto|REQ|PATH",
        help="the previous release to upgrade from and compare revisions with: auto (the "
        "highest earlier release on pip's index), or a requirement, wheel, sdist or folder",
    )
    run.add_argument(
        "--scale",
        type=whole_number(1),
        metavar="N",
        help="fill every table to N rows before each revision and measure its time, locks "
        "and rewrites (the migration_cost check; limits in the policy's [cost] table)",
    )
    add_timeouts(run)


def run_command(args: argparse.Namespace, benchmark: Settings | None = None) -> int:
    from matrix.report.html import write_html
    from matrix.run.runner import Interrupted, run_matrix

    options = run_options(args, benchmark)
    try:
        with make_progress(args.verbose) as progress:
            report = run_matrix(options, progress, ReportWriter(options.reports_dir))
    except (Interrupted, KeyboardInterrupt):
        with contextlib.suppress(HarnessError):  # interrupted before its report was begun
            write_html(args.reports)  # the page of the interrupted run, not the previous one's
        Console(stderr=True).print(
            f"interrupted; partial results are in {args.reports}", highlight=False
        )
        return ExitCode.INTERRUPTED
    write_html(args.reports, screenshot=getattr(args, "screenshot", False))
    print_summary(report, args.reports)
    return ExitCode.OK if report.status in (Status.PASSED, Status.WAIVED) else ExitCode.INCOMPLETE


def run_options(args: argparse.Namespace, benchmark: Settings | None = None):
    """Validate every input of ``run`` and turn it into :class:`RunOptions`."""
    from matrix.run.runner import RunOptions

    matrix = load_matrix(args.matrix)
    targets = select_targets(matrix, args.targets, args.engine)
    for engine in sorted({target.engine for target in targets}):
        databases.require_driver(engine)  # the harness's own: an extra of the core install
    check_folder(args.reports)
    with_requirements = tuple(_requirement(r, "--with") for r in args.with_requirements)
    without_dependencies = tuple(
        _requirement(r, "--with-no-deps") for r in args.without_dependencies
    )
    if args.constraints is not None and not args.constraints.is_file():
        raise HarnessError(
            f"The constraints file {args.constraints} does not exist.",
            "Pass --constraints the path of a pip constraints file.",
        )
    sources.validate(sources.classify(args.plugin))
    beside = Path(args.plugin) if Path(args.plugin).exists() else None
    policy_file = find_policy(args.policy, beside)
    policy = load_policy(policy_file, [t.id for t in matrix.targets])
    return RunOptions(
        **targets_options(args, matrix, targets, policy),
        plugin=args.plugin,
        dist_dir=args.dist,
        with_requirements=with_requirements,
        without_dependencies=without_dependencies,
        constraints=args.constraints.resolve() if args.constraints else None,
        checks=catalogue.REQUIRED
        + (RELEASE_CHECKS if args.previous else ())
        + (("migration_cost",) if args.scale else ()),
        scale=args.scale or 0,
        previous=_previous(args.previous),
        benchmark=benchmark,
        run_options=repeating(args, policy_file),
    )


def targets_options(
    args: argparse.Namespace, matrix: Matrix, targets: list[Target], policy: Policy
) -> dict[str, Any]:
    """What ``run`` and ``site`` both take: the targets, their servers, the limits, the policy."""
    from matrix.provide.images import BuildPlace

    return {
        "targets": targets,
        "matrix_file": matrix.path,
        "reports_dir": args.reports,
        "provider": args.provider,
        "jobs": args.jobs,
        "keep": args.keep,
        "docker_network": args.docker_network,
        "allow_build": args.allow_build,
        "cache_dir": settings.cache_dir(),
        "policy": policy,
        "external_urls": external_urls(targets),
        "pg_root": Path(settings.value("MATRIX_PG_ROOT")),
        "image_place": BuildPlace.from_environment(),
        "check_timeout_s": args.check_timeout,
        "run_timeout_s": args.run_timeout,
        "lock_timeout_s": args.lock_timeout,
    }


def repeating(args: argparse.Namespace, policy_file: Path | None) -> tuple[str, ...]:
    """The options that make ``python -m matrix run`` do this run again, targets aside.

    Resolved values, not the words typed: what came from a ``MATRIX_*``
    variable or was found beside the plugin is written out, so that a command
    the gate suggests runs the same plugin in the same environment under the
    same policy wherever it is pasted.
    """
    options = ["--plugin", str(args.plugin)]
    options += [word for r in args.with_requirements for word in ("--with", r)]
    options += [word for r in args.without_dependencies for word in ("--with-no-deps", r)]
    named = (
        ("--constraints", args.constraints),
        ("--policy", policy_file),
        ("--previous", args.previous),
        ("--scale", args.scale),
        ("--matrix", None if args.matrix == DEFAULT_MATRIX_FILE else args.matrix),
        ("--provider", None if args.provider == "auto" else args.provider),
        ("--dist", args.dist),
    )
    options += [word for option, value in named if value for word in (option, str(value))]
    return (*options, "--reports", str(args.reports))


RELEASE_CHECKS = ("released_revisions_unchanged", "upgrade_from_release")


def _previous(raw: str | None) -> str | None:
    """``auto``, or a plugin form checked as ``--plugin`` is."""
    if raw is None or raw == "auto":
        return raw
    sources.validate(sources.classify(raw, "--previous"), "--previous")
    return raw


def select_targets(matrix: Matrix, raw: str | None, engine: str | None) -> list[Target]:
    ids = None
    if raw is not None:
        ids = [item.strip() for item in raw.split(",")]
        bad = [item for item in ids if not _TARGET_ID.fullmatch(item)]
        if bad or not ids:
            raise HarnessError(
                f"--targets {raw!r} is not a comma-separated list of target ids.",
                "Write ids separated by commas, e.g. --targets pg13-postgis31,pg15-postgis33.",
            )
    targets = matrix.select(ids, engine)
    if not targets:
        raise HarnessError(
            "No target of the matrix matches the selection.",
            "Check --targets and --engine against `python -m matrix list`.",
        )
    return targets


def external_urls(targets: list[Target]) -> dict[str, URL]:
    """The server URL of each variable the targets name that is set, validated and masked.

    Keyed by the variable: a target with a variable of its own (Babelfish's
    ``MATRIX_BABELFISH_URL``) is never served by its engine's, nor the others by its.
    """
    urls: dict[str, URL] = {}
    for target in targets:
        variable = target.settings.url_env
        raw = os.environ.get(variable)
        if not raw or variable in urls:
            continue
        engine = engine_of(raw, source=f"{variable}")
        if engine.name != target.engine:
            raise HarnessError(
                f"{variable} points at a {engine.label} server, but target {target.id} is "
                f"{target.engine}.",
                f"Point {variable} at a {target.engine} server.",
            )
        try:
            url = engine_named(target.engine, target.flavour).url(raw)
            url.port  # noqa: B018 - parsing the port is the check
        except ValueError as error:
            raise HarnessError(
                f"{variable} is not a valid database URL ({error}).",
                f"Write it as {target.engine}://USER:PASSWORD@HOST:PORT/DATABASE, with special "
                "characters in the password %-encoded.",
            ) from None
        if not url.host:
            raise HarnessError(
                f"{variable} names no host.",
                f"Write it as {target.engine}://USER:PASSWORD@HOST:PORT/DATABASE.",
            )
        masking.register_url(url)
        urls[variable] = url
    return urls


def _requirement(text: str, option: str) -> str:
    try:
        return str(Requirement(text))
    except InvalidRequirement as error:
        raise HarnessError(
            f"{option} {text!r} is not a requirement ({error}).",
            "Write it as pip does, e.g. --with 'Twisted<26' or --with peek-platform==5.1.6.",
        ) from None


def list_command(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    console = Console(highlight=False, width=160)
    images, why = _run_images(matrix.targets)
    table = Table(title=str(matrix.path))
    # Folded, never cut; an image's name on one line (the reason it is absent may wrap).
    for column in ("id", "database", "engine", "version", "PostGIS"):
        table.add_column(column, overflow="fold")
    widest = max((len(t.image) for t in matrix.targets), default=0)
    table.add_column("image a run starts", overflow="fold", min_width=widest)
    table.add_column("providers", overflow="fold")
    table.add_column("required")
    for t in matrix.targets:
        table.add_row(
            t.id,
            t.label,
            t.engine,
            t.version,
            t.postgis or "-",
            images.get(t.id) or f"{t.image} ({why or _absent(t)})",
            ",".join(t.providers),
            "yes" if t.required else "no",
        )
    console.print(table)
    checks = Table(title="checks, in the order they run")
    for column in ("check", "theory", "needs", "required"):
        checks.add_column(column)
    for info in catalogue.CHECKS:
        checks.add_row(
            info.name, info.theory, ", ".join(info.needs), "yes" if info.required else "no"
        )
    console.print(checks)
    kinds = Table(title=escape("finding kinds, by check (what a policy's [[waive]] kind names)"))
    for column in ("check", "kind", "meaning"):
        kinds.add_column(column)
    for kind in catalogue.FINDING_KINDS:
        kinds.add_row(kind.check, kind.kind, kind.meaning)
    kinds.add_row(
        "any check", catalogue.NOT_RUN_KIND, "the check could not judge (the reason says why)"
    )
    console.print(kinds)
    return ExitCode.OK


def _absent(target: Target) -> str:
    if target.image_doc:
        return f"not present: no registry serves it; build it as {target.image_doc} describes"
    built = f", else build {target.recipe.tag}" if target.recipe else ""
    return f"not present: a run pulls it{built}"


def _run_images(targets: list[Target]) -> tuple[dict[str, str], str | None]:
    """The image a run would start for each target where one is present; else why none is known."""
    try:
        from matrix.provide.images import docker_client, run_image

        client = docker_client(timeout=5)
    except (ImportError, HarnessError) as error:
        cause = error.cause if isinstance(error, HarnessError) else str(error)
        return {}, f"no Docker engine to ask: {cause.rstrip('.')}"
    return {t.id: tag for t in targets if (tag := run_image(client, t))}, None


def report_command(args: argparse.Namespace) -> int:
    from matrix.report.html import write_html

    report = merge_target_files(args.files)
    ReportWriter(args.reports).write_summaries(report)
    write_html(args.reports)
    print_summary(report, args.reports)
    return ExitCode.OK if report.status in (Status.PASSED, Status.WAIVED) else ExitCode.INCOMPLETE
