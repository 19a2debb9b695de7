"""``images build|list``: the offline PostgreSQL/PostGIS images."""

from __future__ import annotations

import argparse

from matrix import settings
from matrix.cli import ExitCode
from matrix.cli.options import add_matrix, add_verbose
from matrix.cli.run import select_targets
from matrix.definition import load_matrix


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("images", help="build or list the offline PostGIS images")
    parser.add_argument("action", choices=("build", "list"))
    parser.add_argument("--targets", help="comma-separated target ids (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild images already present")
    add_matrix(parser)
    add_verbose(parser)
    parser.set_defaults(handler=images_command)


def images_command(args: argparse.Namespace) -> int:
    from matrix.images import build_images, image_status

    targets = select_targets(load_matrix(args.matrix), args.targets, None)
    if args.action == "list":
        statuses = image_status(targets)
        for status in statuses:
            size = f"{status.size / 1e6:.0f} MB" if status.present else "missing"
            print(f"{status.target_id:16} {status.tag:30} {size}")
        return ExitCode.OK if all(status.present for status in statuses) else ExitCode.INCOMPLETE
    for built in build_images(targets, print, force=args.force, place=settings.image_place()):
        print(f"built {built.tag} in {built.seconds:.0f} s ({built.size / 1e6:.0f} MB)")
    return ExitCode.OK
