"""The walk down: each revision's own downgrade, and what it leaves behind."""

from __future__ import annotations

from matrix.check.cell import Residue
from matrix.check.checks.base import CannotJudge, CheckOutput, check, describe_error
from matrix.check.migrator import BASE, Step, StepFailed
from matrix.check.snapshot import SchemaState, describe
from matrix.results import RevisionEvidence


class _DownObserver:
    """After each downgrade: the schema against what it was before that revision's upgrade.

    The expected state walks down with the database: head's state with each
    revision's recorded change undone in turn. Whatever differs is a residue;
    only the part of it that is new after a step is that revision's own, so a
    leftover is blamed once, on the revision whose downgrade left it, not on
    every revision below it.
    """

    def __init__(self, cell, out: CheckOutput) -> None:
        self.cell = cell
        self.out = out
        self.expected: SchemaState = cell.head_state
        self.residue: frozenset[str] = frozenset()

    def before(self, revision: str) -> None:
        return None

    def after(self, step: Step) -> None:
        self.record(step, self.cell.state())

    def record(self, step: Step, actual: SchemaState) -> None:
        """Judge the state ``step`` left (read from the catalogue) against the expected one."""
        change = self.cell.up_changes.get(step.revision)
        if change is not None:
            self.expected = self.expected.revert(change)
        residue = frozenset(actual.facts ^ self.expected.facts)
        new = residue - self.residue
        if new:
            self.cell.residues.append(
                Residue(
                    step.revision,
                    frozenset(new & self.expected.facts),
                    frozenset(new & actual.facts),
                )
            )
        self.residue = residue
        summary = self.expected.changes_to(actual).summary() if new else []
        self.out.evidence.append(
            RevisionEvidence(step.revision, "downgrade", round(step.seconds, 4), summary)
        )


@check
def downgrade_stepwise(cell, out: CheckOutput) -> None:
    """Every revision downgrades to the one before it, one at a time, from head.

    A downgrade that cannot run strands a site that must roll back a release.
    Three kinds are told apart, by reading each ``downgrade()`` and by running
    it: a *broken* downgrade raises although it has code to run (a failure,
    blamed on that revision); a *declared-irreversible* one only raises (``raise
    NotImplementedError``), which ends the walk there with an ``irreversible
    at R`` note, the revisions above it still covered, as pytest-alembic's
    ``minimum_downgrade_revision`` does; a *no-op* (``pass``) runs and is judged
    by what it leaves (``downgrade_leaves_no_trace``).
    """
    observer = _DownObserver(cell, out)
    try:
        steps = cell.migrator.downgrade(cell.url, BASE, observer)
        cell.down_reached, cell.down_steps = BASE, len(steps)
    except StepFailed as failure:
        judge_stop(cell, out, failure)
        return
    no_ops = [r for r in cell.revisions if cell.downgrade_kind(r) == "no-op"]
    if no_ops:
        out.find(
            "no_op_downgrade",
            f"{len(no_ops)} revisions have a no-op downgrade (pass): {', '.join(no_ops)}",
            blocking=False,
        )
    out.covered = f"{len(out.evidence)} revisions downgraded one at a time to base"


def judge_stop(cell, out: CheckOutput, failure: StepFailed) -> None:
    """A walk down that stopped: at a declared-irreversible downgrade (a note), or a broken one."""
    cell.down_reached, cell.down_steps = failure.revision, len(failure.done)
    kind = cell.downgrade_kind(failure.revision)
    # NotImplementedError declares it only where the source cannot say: raised
    # from inside code (a library's), it is a broken downgrade like any other.
    if kind == "irreversible" or (
        kind == "unknown" and isinstance(failure.error, NotImplementedError)
    ):
        out.find(
            "irreversible",
            f"irreversible at {failure.revision}: its downgrade() declares it "
            f"({describe_error(failure.error)}); the {len(failure.done)} revisions above it "
            "downgrade",
            revision=failure.revision,
            blocking=False,
        )
        out.covered = (
            f"{len(failure.done)} revisions down to {failure.revision}, "
            "which declares its downgrade irreversible"
        )
        return
    down = cell.migrator.down_revision(failure.revision)
    out.failed_step("downgrade_failed", failure, f"downgrade {failure.revision} -> {down} failed")


@check
def downgrade_leaves_no_trace(cell, out: CheckOutput) -> None:
    """Each revision's own downgrade restores the schema its upgrade started from.

    The schema after downgrading revision R must equal the schema before R's
    upgrade (tables, columns, types, nullability, defaults, indexes,
    constraints, sequences, types): a leftover index or column makes the next
    upgrade fail or drift. Only what a step newly leaves is blamed on it; a
    no-op downgrade (``pass``) whose upgrade changed the schema is named as
    such. When a downgrade raises (declared irreversible, or broken), the
    revisions above it are covered.
    """
    _walked_down(cell)
    for residue in cell.residues:
        kind = cell.downgrade_kind(residue.revision)
        how = " (its downgrade() is a no-op: pass)" if kind == "no-op" else ""
        out.find(
            "residue",
            f"the downgrade of {residue.revision} leaves the schema different from before its "
            f"upgrade{how}: {len(residue.expected) + len(residue.actual)} facts",
            revision=residue.revision,
            detail=describe(residue.expected, residue.actual),
        )
    if not cell.residues:
        out.covered = (
            f"the {cell.down_steps} revisions above {cell.down_reached} restore their schema"
            if cell.down_reached != BASE
            else "every revision's downgrade restores its schema"
        )


def _walked_down(cell) -> None:
    """Refuse to judge when the walk down never ran or never took a step."""
    if cell.down_reached is None:
        raise CannotJudge("the walk down did not run")
    if cell.down_steps == 0:
        raise CannotJudge(
            f"no downgrade step ran: the first, of {cell.down_reached}, does not "
            "(see downgrade_stepwise)",
            because="downgrade_stepwise",
        )


@check
def reupgrade(cell, out: CheckOutput) -> None:
    """After the downgrades, ``upgrade head`` in one go succeeds and gives the same schema.

    This is what Peek's server does at start-up after a rollback: one run of
    env.py, one transaction, from where the downgrades ended (base, or the
    revision whose downgrade raised, declared irreversible or broken). The
    schema must equal the one the step-by-step upgrade built.
    """
    _walked_down(cell)
    start = cell.down_reached
    try:
        cell.migrator.upgrade_in_one_go(cell.url)
    except StepFailed as failure:
        out.failed_step(
            "reupgrade_failed",
            failure,
            f"upgrade {start} -> head in one go failed after the downgrades, at {failure.revision}",
        )
        return
    state = cell.state()
    if state != cell.head_state:
        out.find(
            "reupgrade_differs",
            "upgrade head in one go gives another schema than the step-by-step upgrade "
            "(- step by step, + in one go)",
            revision=cell.head,
            detail=describe(cell.head_state.facts, state.facts),
        )
    else:
        out.covered = f"{start} -> head in one transaction, same schema"
