"""``images build|list``: the offline PostgreSQL/PostGIS images."""

from __future__ import annotations

import argparse

from matrix.cli.exit_codes import ExitCode
from matrix.cli.options import add_command, add_matrix, add_verbose
from matrix.cli.run import select_targets
from matrix.define.targets import load_matrix


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "images",
        "build or list the offline PostgreSQL/PostGIS images",
        "The offline images (peek-matrix/postgis:<version>) are built from Debian packages "
        "with debootstrap and docker import, for a Docker engine that cannot pull from a "
        "registry; a run uses the matrix's image when present, else the offline one.",
        "python -m matrix images list",
        "python -m matrix images build --targets pg15-postgis33",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{build,list}")
    build = add_command(
        actions,
        "build",
        "build the missing offline images (about a minute each, needs root)",
        "Build the offline image of every target (or --targets) that has a recipe in the "
        "matrix file; images already present are kept unless --force.",
        "python -m matrix images build",
        "python -m matrix images build --targets pg17-postgis35 --force",
    )
    build.add_argument("--force", action="store_true", help="rebuild images already present")
    listing = add_command(
        actions,
        "list",
        "show which offline images are present, and their size",
        "Show each target's offline image and whether the local engine has it; exit 1 "
        "when one is missing.",
        "python -m matrix images list",
    )
    for action in (build, listing):
        action.add_argument("--targets", help="comma-separated target ids (default: all)")
        add_matrix(action)
        add_verbose(action)
        action.set_defaults(handler=images_command)


def images_command(args: argparse.Namespace) -> int:
    from matrix.provide.images import BuildPlace, build_images, image_status

    targets = select_targets(load_matrix(args.matrix), args.targets, None)
    if args.action == "list":
        statuses = image_status(targets)
        for status in statuses:
            size = f"{status.size / 1e6:.0f} MB" if status.present else "missing"
            print(f"{status.target_id:16} {status.tag:30} {size}")
        return ExitCode.OK if all(status.present for status in statuses) else ExitCode.INCOMPLETE
    for built in build_images(
        targets, print, force=args.force, place=BuildPlace.from_environment()
    ):
        print(f"built {built.tag} in {built.seconds:.0f} s ({built.size / 1e6:.0f} MB)")
    return ExitCode.OK
