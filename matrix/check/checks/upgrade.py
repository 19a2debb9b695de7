"""The walk up: every revision from base, one at a time, and what it leaves."""

from __future__ import annotations

import sqlalchemy as sa

from matrix.check.checks.base import CheckOutput, check, describe_error
from matrix.check.migrator import Step, StepFailed
from matrix.check.snapshot import VERSION_TABLE, SchemaState, describe
from matrix.results import RevisionEvidence


class _UpObserver:
    """After each revision: the schema's new state, and what the revision changed."""

    def __init__(self, cell, out: CheckOutput) -> None:
        self.cell = cell
        self.out = out
        self.state = cell.base_state

    def before(self, revision: str) -> None:
        return None

    def after(self, step: Step) -> None:
        self.record(step, self.cell.state())

    def record(self, step: Step, state: SchemaState) -> None:
        """What ``step`` changed, from the state it left (read from the catalogue)."""
        change = self.state.changes_to(state)
        self.cell.up_changes[step.revision] = change
        self.out.evidence.append(
            RevisionEvidence(step.revision, "upgrade", round(step.seconds, 4), change.summary())
        )
        self.state = state


@check
def upgrade_stepwise(cell, out: CheckOutput) -> None:
    """Every revision upgrades from the one before it, one at a time, from base.

    One revision at a time, each committed before the next, proves each
    revision works on the schema its predecessor left, which is how a site
    upgrades release by release. The plugin's env.py runs once for the walk
    (its engine, its schema translation, its transaction), and the schema is
    read after every revision: what each one changed is the evidence the
    downgrade checks compare against.
    """
    cell.outside_before = cell.outside()
    cell.base_state = cell.state()
    observer = _UpObserver(cell, out)
    try:
        cell.migrator.upgrade(cell.url, "heads", observer)
    except StepFailed as failure:
        cell.up_failed_at = failure.revision
        down = cell.migrator.down_revision(failure.revision)
        out.failed_step("upgrade_failed", failure, f"upgrade {down} -> {failure.revision} failed")
        return
    cell.head_state = observer.state
    out.covered = f"{len(out.evidence)} revisions upgraded one at a time"


@check
def version_table_at_head(cell, out: CheckOutput) -> None:
    """``<plugin schema>.alembic_version`` holds the head revision.

    Peek keeps each plugin's version table in the plugin's own schema; one in
    ``public`` or ``dbo`` would collide with every other plugin's, and Peek's
    fresh-install test (``has_table(alembic_version, schema)``) would never
    see it, re-creating the schema on every start.
    """
    table = sa.table("alembic_version", sa.column("version_num"), schema=cell.schema)
    try:
        found = [row[0] for row in cell.connection().execute(sa.select(table.c.version_num))]
    except sa.exc.DBAPIError as error:
        out.find(
            "version_table",
            f"{cell.schema}.{VERSION_TABLE} cannot be read: the version table is not in the "
            "plugin schema (set version_table_schema in env.py)",
            revision=cell.head,
            detail=describe_error(error),
        )
        return
    if found != [cell.head]:
        out.find(
            "version_table",
            f"{cell.schema}.{VERSION_TABLE} holds {found}, expected [{cell.head!r}]",
            revision=cell.head,
        )


@check
def schema_isolation(cell, out: CheckOutput) -> None:
    """The migrations created nothing outside the plugin schema.

    Each Peek plugin owns one schema; objects elsewhere escape the plugin's
    upgrades and downgrades and can collide with other plugins. Objects that
    extensions or the server own (PostGIS's ``spatial_ref_sys``, SQL Server's
    internal tables) do not count.
    """
    after = cell.outside()
    added = sorted(after - cell.outside_before)
    removed = sorted(cell.outside_before - after)
    if added or removed:
        out.find(
            "outside_schema",
            f"objects changed outside {cell.schema}: "
            + ", ".join([f"+{a}" for a in added] + [f"-{r}" for r in removed]),
            revision=cell.head,
            detail=describe(cell.outside_before, after),
        )
