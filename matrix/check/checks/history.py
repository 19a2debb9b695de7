"""Checks on the migration history itself, before any database."""

from __future__ import annotations

from matrix.check.checks.base import CheckOutput, check


@check
def single_head(cell, out: CheckOutput) -> None:
    """The migration history has exactly one head.

    Peek's server upgrades each plugin to ``head``; with two heads that
    upgrade is ambiguous and fails at start-up.
    """
    heads = sorted(cell.migrator.script.get_heads())
    if len(heads) != 1:
        out.find(
            "heads",
            f"{len(heads)} heads: {', '.join(heads)}. Merge them with `alembic merge heads` "
            "or fix a down_revision.",
            revision=",".join(heads),
        )
    else:
        out.covered = f"{len(cell.revisions)} revisions, head {heads[0]}"
