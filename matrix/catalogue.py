"""The check catalogue: names, theories, order and prerequisites, and the findings of each.

Stdlib only, so that reports, the release gate and the command line can list
the checks without importing SQLAlchemy or Alembic. The implementations live
in :mod:`matrix.checks` and register under these names; a test holds the two
together.

``required`` checks must pass (or be waived) for a target to pass. Optional
checks only run when their input exists (an earlier release, ``--scale``);
when they run, a failure still fails the target.

:data:`FINDING_KINDS` says which kinds of finding each check can report, one
line per (check, kind), so that a new kind is one line here; a test reads
the checks' code and fails when a check can report a kind not listed for it
(or one is listed that it cannot report). ``python -m matrix list`` prints
it, and a policy's ``kind`` is one of these or ``not_run``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckInfo:
    name: str
    theory: str
    needs: tuple[str, ...] = ()
    live: bool = True
    required: bool = True


CHECKS: tuple[CheckInfo, ...] = (
    CheckInfo(
        "single_head",
        "The migration history has exactly one head.",
        live=False,
    ),
    CheckInfo(
        "upgrade_stepwise",
        "Every revision upgrades from the one before it, one at a time, from base.",
        needs=("single_head",),
    ),
    CheckInfo(
        "version_table_at_head",
        "<plugin schema>.alembic_version holds the head revision.",
        needs=("upgrade_stepwise",),
    ),
    CheckInfo(
        "model_matches_ddl",
        "The plugin's models match the migrated plugin schema, types included.",
        needs=("upgrade_stepwise",),
    ),
    CheckInfo(
        "fresh_install_matches_upgrade",
        "Peek's fresh install (create_all + stamp head) gives the schema the migrations give.",
        needs=("upgrade_stepwise",),
    ),
    CheckInfo(
        "schema_isolation",
        "The migrations create nothing outside the plugin schema.",
        needs=("upgrade_stepwise",),
    ),
    CheckInfo(
        "downgrade_stepwise",
        "Every revision above the first declared-irreversible one downgrades, one at a time.",
        needs=("upgrade_stepwise",),
    ),
    CheckInfo(
        "downgrade_leaves_no_trace",
        "Each revision's own downgrade restores the schema its upgrade started from.",
        needs=("upgrade_stepwise",),
    ),
    CheckInfo(
        "reupgrade",
        "After the downgrades, upgrade head in one go succeeds and gives the same schema.",
        needs=("upgrade_stepwise",),
    ),
    CheckInfo(
        "data_survives",
        "Rows written at every revision are all still there, unchanged, at head.",
        needs=("single_head",),
    ),
    CheckInfo(
        "offline_sql",
        "The offline scripts render without a database and apply to give the same schema.",
        needs=("single_head",),
        live=False,
    ),
    CheckInfo(
        "constraints_named",
        "Every constraint a revision drops was created under the name it is dropped by.",
        needs=("single_head",),
        live=False,
    ),
    CheckInfo(
        "released_revisions_unchanged",
        "Every revision of the previous release ships unchanged in this one.",
        live=False,
        required=False,
    ),
    CheckInfo(
        "upgrade_from_release",
        "A database at the previous release, with data, upgrades to this one intact.",
        needs=("upgrade_stepwise",),
        required=False,
    ),
    CheckInfo(
        "migration_cost",
        "At --scale rows per table, each revision's time and locks stay within the policy.",
        needs=("upgrade_stepwise",),
        required=False,
    ),
)

BY_NAME: dict[str, CheckInfo] = {check.name: check for check in CHECKS}
REQUIRED: tuple[str, ...] = tuple(c.name for c in CHECKS if c.required)


@dataclass(frozen=True)
class FindingKind:
    """A kind of finding one check can report, and what it means, in a line."""

    check: str
    kind: str
    meaning: str


FINDING_KINDS: tuple[FindingKind, ...] = (
    FindingKind("single_head", "heads", "the history has no head or several"),
    FindingKind("upgrade_stepwise", "upgrade_failed", "a revision's upgrade raised"),
    FindingKind(
        "version_table_at_head", "version_table", "alembic_version is missing or not at head"
    ),
    FindingKind("model_matches_ddl", "drift", "the models and the migrated schema differ"),
    FindingKind(
        "fresh_install_matches_upgrade",
        "fresh_install_differs",
        "create_all + stamp head gives another schema than the migrations",
    ),
    FindingKind(
        "fresh_install_matches_upgrade",
        "create_all_failed",
        "create_all fails on an empty database",
    ),
    FindingKind(
        "fresh_install_matches_upgrade", "stamp", "stamp head leaves another version in the table"
    ),
    FindingKind(
        "schema_isolation", "outside_schema", "the migrations touch objects outside the schema"
    ),
    FindingKind("downgrade_stepwise", "downgrade_failed", "a revision's downgrade raised"),
    FindingKind(
        "downgrade_stepwise", "irreversible", "a revision declares its downgrade impossible"
    ),
    FindingKind(
        "downgrade_stepwise", "no_op_downgrade", "downgrades that do nothing (pass), a note"
    ),
    FindingKind(
        "downgrade_leaves_no_trace", "residue", "a downgrade leaves a table, index, ... behind"
    ),
    FindingKind("reupgrade", "reupgrade_failed", "upgrade head in one go fails after downgrades"),
    FindingKind("reupgrade", "reupgrade_differs", "upgrade head in one go gives another schema"),
    FindingKind("data_survives", "table_dropped", "a table with rows was dropped"),
    FindingKind("data_survives", "rows_lost", "rows were deleted"),
    FindingKind("data_survives", "values_changed", "values in kept rows changed"),
    FindingKind("data_survives", "column_dropped", "a column with values was dropped, a note"),
    FindingKind("data_survives", "fails_with_data", "an upgrade fails once tables hold rows"),
    FindingKind(
        "data_survives", "sequence_behind", "a sequence is behind the rows kept, new rows collide"
    ),
    FindingKind(
        "constraints_named",
        "unpromised_name",
        "a revision drops a constraint by a name only one engine gives it",
    ),
    FindingKind("offline_sql", "unsplittable", "a rendered script cannot be split in statements"),
    FindingKind("offline_sql", "unparsable", "a rendered statement does not parse"),
    FindingKind("offline_sql", "script_failed", "a rendered script fails on a database"),
    FindingKind("offline_sql", "script_differs", "a rendered script builds another schema"),
    FindingKind("released_revisions_unchanged", "removed", "a released revision is gone"),
    FindingKind("released_revisions_unchanged", "edited", "a released revision's upgrade changed"),
    FindingKind(
        "released_revisions_unchanged", "reparented", "a released revision has another parent"
    ),
    FindingKind(
        "upgrade_from_release", "upgrade_failed", "a release's database with rows fails to upgrade"
    ),
    FindingKind(
        "upgrade_from_release", "schema_differs", "upgrading a release gives another schema"
    ),
    FindingKind("upgrade_from_release", "table_dropped", "a table with rows was dropped"),
    FindingKind("upgrade_from_release", "rows_lost", "rows were deleted"),
    FindingKind("upgrade_from_release", "values_changed", "values in kept rows changed"),
    FindingKind("upgrade_from_release", "column_dropped", "a column with values was dropped"),
    FindingKind("migration_cost", "fails_at_scale", "an upgrade fails at --scale rows"),
    FindingKind(
        "migration_cost", "exclusive_lock", "a revision holds a lock that blocks reads and writes"
    ),
    FindingKind("migration_cost", "lock_time", "a lock is held longer than the policy allows"),
    FindingKind(
        "migration_cost", "slow_revision", "a revision takes longer than the policy allows"
    ),
)
# The kind a policy entry uses to acknowledge a check that could not judge.
NOT_RUN_KIND = "not_run"
KINDS: frozenset[str] = frozenset(k.kind for k in FINDING_KINDS) | {NOT_RUN_KIND}


def kinds_of(check: str) -> list[FindingKind]:
    """The kinds of finding ``check`` can report, in the table's order."""
    return [k for k in FINDING_KINDS if k.check == check]
