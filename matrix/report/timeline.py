"""Each target's revisions in order: what they did, what they cost, what squawk says.

The evidence of ``upgrade_stepwise`` (time, changes), ``downgrade_stepwise``
(time), ``data_survives`` (rows written) and ``migration_cost`` (time at
scale, locks, rewrites, squawk's rule hits) side by side, one row per
revision, so a developer sees where the time and the risk are. Stdlib only:
both compat.md and index.html are written from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matrix.results import LockHeld, TargetResult


@dataclass
class RevisionRow:
    revision: str
    up_s: float | None = None
    down_s: float | None = None
    changes: list[str] = field(default_factory=list)
    rows_written: str = ""
    scale_s: float | None = None
    rows: int | None = None
    # On tables with rows: the longest exclusive lock (else the longest lock),
    # and the longest lock of any mode when that is another one.
    lock: LockHeld | None = None
    longest: LockHeld | None = None
    exclusive: bool = False
    rewrites: list[str] = field(default_factory=list)
    lint: list[str] = field(default_factory=list)


def timeline(target: TargetResult) -> list[RevisionRow]:
    """The target's revisions in walk order, with what each check saw of them."""
    rows: dict[str, RevisionRow] = {}
    by_name = {check.name: check for check in target.checks}

    def row(revision: str) -> RevisionRow:
        return rows.setdefault(revision, RevisionRow(revision))

    for evidence in getattr(by_name.get("upgrade_stepwise"), "evidence", []):
        row(evidence.revision).up_s = evidence.seconds
        row(evidence.revision).changes = evidence.changes
    for evidence in getattr(by_name.get("downgrade_stepwise"), "evidence", []):
        row(evidence.revision).down_s = evidence.seconds
    for evidence in getattr(by_name.get("data_survives"), "evidence", []):
        row(evidence.revision).rows_written = "; ".join(evidence.changes)
    for evidence in getattr(by_name.get("migration_cost"), "evidence", []):
        current = row(evidence.revision)
        current.scale_s, current.rows = evidence.seconds, evidence.rows
        current.rewrites, current.lint = evidence.rewrites, evidence.lint
        loaded = [lock for lock in evidence.locks if lock.rows]
        exclusive = [lock for lock in loaded if lock.exclusive]
        if loaded:
            current.lock = max(exclusive or loaded, key=lambda lock: lock.seconds)
            current.exclusive = bool(exclusive)
            longest = max(loaded, key=lambda lock: lock.seconds)
            current.longest = longest if longest is not current.lock else None
    return list(rows.values())


def has_cost(target: TargetResult) -> bool:
    return any(check.name == "migration_cost" and check.evidence for check in target.checks)


def describe(lock: LockHeld) -> str:
    rows = f" ({lock.rows:,} rows)" if lock.rows is not None else ""
    return f"{lock.mode} on {lock.relation}{rows}, {lock.seconds:.3f} s"


NOT_SAMPLED = "not sampled"  # the revision did not run at scale: nothing was measured
NO_LOCK = "no lock"  # it ran at scale, sampled, and held no lock on a table with rows


def lock_cell(item: RevisionRow) -> str:
    """What the lock column says of a revision, the two kinds of nothing told apart."""
    if item.scale_s is None:
        return NOT_SAMPLED
    return describe(item.lock) if item.lock else NO_LOCK


def markdown(target: TargetResult) -> list[str]:
    """The migration_cost table of one target, as Markdown lines."""
    lines = [
        f"#### {target.id}: cost per revision",
        "",
        "| revision | seconds at scale | rows already in the schema before it (all tables) "
        "| longest lock on a table with rows (bold: blocks reads and writes) | tables rewritten "
        "| squawk rules hit |",
        "|---|---|---|---|---|---|",
    ]
    for item in timeline(target):
        lock = lock_cell(item)
        lock = f"**{lock}**" if item.exclusive else lock
        if item.longest:
            lock += f"; longest: {describe(item.longest)}"
        lint = ", ".join(sorted({hit.split(":")[0] for hit in item.lint})) or "none"
        seconds = NOT_SAMPLED if item.scale_s is None else f"{item.scale_s:.3f}"
        rows = "" if item.rows is None else f"{item.rows:,}"
        rewrites = "" if item.scale_s is None else ", ".join(item.rewrites) or "none"
        lines.append(f"| {item.revision} | {seconds} | {rows} | {lock} | {rewrites} | {lint} |")
    lines += [
        "",
        f"`{NO_LOCK}`: measured at scale, no lock held on a table with rows; `{NOT_SAMPLED}`: "
        "the revision did not run at scale (an earlier one failed), so nothing was measured.",
    ]
    return [*lines, ""]
