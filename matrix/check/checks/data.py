"""Rows through the whole history: written at every revision, all there at head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from matrix.check import survival, synthetic
from matrix.check.checks.base import CannotJudge, CheckOutput, check
from matrix.check.migrator import Step, StepFailed
from matrix.check.snapshot import SchemaState
from matrix.results import RevisionEvidence


class DataObserver:
    """After each revision: follow the tables, then fill what it created or changed."""

    def __init__(
        self,
        cell,
        conn: sa.Connection,
        ledger: synthetic.Ledger,
        state: SchemaState | None = None,
    ) -> None:
        self.cell = cell
        self.conn = conn
        self.ledger = ledger
        self.state = state or SchemaState(frozenset())
        self.evidence: list[RevisionEvidence] = []

    def before(self, revision: str) -> None:
        return None

    def after(self, step: Step) -> None:
        cell, conn = self.cell, self.conn
        self.ledger.observe(conn, cell.engine, cell.schema, step.revision)
        state = cell.state(conn)
        change = self.state.changes_to(state)
        touched = change.tables() & state.tables()
        for table, column in _dropped_columns(change):
            self.ledger.dropped_columns.setdefault((table, column), step.revision)
        self.state = state
        written = len(self.ledger.rows)
        if touched:
            metadata = synthetic.reflect(conn, cell.engine, cell.schema, sorted(touched))
            tables = [t for t in metadata.tables.values() if t.name in touched]
            synthetic.fill(conn, cell.engine, tables, step.revision, self.ledger)
            self.ledger.settle(conn, cell.engine, cell.schema)
        self.evidence.append(
            RevisionEvidence(
                step.revision,
                "upgrade",
                round(step.seconds, 4),
                [f"+{len(self.ledger.rows) - written} rows in {', '.join(sorted(touched))}"]
                if touched
                else [],
            )
        )


@dataclass
class RowsWalk:
    """An upgrade to head with rows written after each revision, and what became of them."""

    evidence: list[RevisionEvidence]
    failure: StepFailed | None = None  # the revision that failed; nothing was verified then
    steps: list[Step] = field(default_factory=list)
    losses: list[survival.Loss] = field(default_factory=list)
    after: Any = None  # what ``after(conn)`` read at head


def upgrade_with_rows(
    cell,
    url: URL,
    ledger: synthetic.Ledger,
    start: Callable[[sa.Connection], SchemaState] | None = None,
    after: Callable[[sa.Connection], Any] = lambda conn: None,
) -> RowsWalk:
    """Upgrade ``url``'s database to head, filling each revision's tables; then verify the rows.

    The one walk behind ``data_survives``, ``upgrade_from_release`` and the
    seed of the previous release. ``start`` reads the schema the database
    starts from (a seeded release's; empty when None), ``after`` reads more
    at head, both on the walk's own session.
    """
    with cell.session(url) as conn:
        observer = DataObserver(cell, conn, ledger, state=start(conn) if start else None)
        try:
            steps = cell.migrator.upgrade(url, "heads", observer)
        except StepFailed as failure:
            return RowsWalk(observer.evidence, failure)
        losses = survival.verify(conn, cell.engine, cell.schema, ledger)
        return RowsWalk(observer.evidence, None, steps, losses, after(conn))


def _dropped_columns(change) -> set[tuple[str, str]]:
    """(table, column) pairs whose every fact the change removed and none it added."""

    def columns(facts) -> set[tuple[str, str]]:
        found = set()
        for fact in facts:
            path = fact.split(" = ", 1)[0].split(".")
            if len(path) > 3 and path[0] == "tables" and path[2] == "columns":
                found.add((path[1], path[3]))
        return found

    return columns(change.removed) - columns(change.added)


@check
def data_survives(cell, out: CheckOutput) -> None:
    """Rows written at every revision are all still there, unchanged, at head.

    On a database of its own, from base, each revision is applied and then
    rows go into every table it created or changed, generated from the
    reflected column types (foreign keys taken from parent rows). One counter
    numbers every value of the walk, so a row written later can never pass
    for a lost one. At head every row must be found again, by its key or its
    values, with its values equal in the column's own semantics.

    Rows lost because their table was dropped at R are reported as such (the
    table, R, and how many rows written at which revisions): that is data
    loss on upgrade, a failure unless the plugin's policy acknowledges it. A
    revision that cannot run once its tables hold rows fails here too, and so
    does one that leaves a key sequence behind the keys its table holds (rows
    copied back into a re-created table): the next row a site writes fails.
    """
    ledger = synthetic.Ledger()
    walk = upgrade_with_rows(
        cell,
        cell.siblings["data"],
        ledger,
        after=lambda conn: survival.lagging_sequences(conn, cell.engine, cell.schema, ledger),
    )
    judge_rows(cell, out, walk, ledger)


def judge_rows(cell, out: CheckOutput, walk: RowsWalk, ledger: synthetic.Ledger) -> None:
    """``data_survives``'s verdict on its walk: what ``walk.after`` found lagging is
    {table: (revision, what)}, the key sequences left behind the keys their table holds."""
    out.evidence = walk.evidence
    failure = walk.failure
    if failure is not None:
        if failure.revision == cell.up_failed_at:
            raise CannotJudge(
                f"the upgrade stops at {failure.revision} with or without data "
                "(see upgrade_stepwise)",
                because="upgrade_stepwise",
            )
        out.failed_step(
            "fails_with_data",
            failure,
            f"upgrade of {failure.revision} fails once the tables hold rows",
        )
        return
    losses, lagging = walk.losses, walk.after
    report_losses(out, losses)
    for table, (revision, what) in sorted(lagging.items()):
        out.find(
            "sequence_behind",
            f"{table}: new rows written after the upgrade will collide with the rows it kept: "
            f"{what}",
            revision=revision,
        )
    losses = [loss for loss in losses if loss.kind != "column"]
    lost_tables = {loss.table for loss in losses}
    uncovered = {t: why for t, why in ledger.uncovered.items() if t not in lost_tables}
    for table, why in sorted(uncovered.items()):
        out.warn(f"no rows could be written into {table} ({why})")
    if losses or lagging:
        return
    if uncovered:
        raise CannotJudge(
            f"rows could not be written into {len(uncovered)} tables "
            f"({', '.join(sorted(uncovered))}), so their data's survival is unproven; "
            f"the other tables kept all {len(ledger.rows)} rows"
        )
    if not ledger.rows:
        raise CannotJudge("no table of the plugin schema took a row at any revision")
    tables = len({row.table for row in ledger.rows})
    out.covered = f"{len(ledger.rows)} rows in {tables} tables survived to head"


KINDS = {
    "table": "table_dropped",
    "rows": "rows_lost",
    "values": "values_changed",
    "column": "column_dropped",
}


def report_losses(out: CheckOutput, losses: list[survival.Loss]) -> None:
    """Each loss as a finding; a dropped column is a note (its revision meant to drop it)."""
    for loss in losses:
        out.find(
            KINDS[loss.kind],
            loss.describe(),
            revision=loss.revision,
            blocking=loss.kind != "column",
        )
