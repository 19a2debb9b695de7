"""The check catalogue: names, theories, order and prerequisites, and the findings of each.

Stdlib only, so that reports, the release gate and the command line can list
the checks without importing SQLAlchemy or Alembic. The implementations live
in :mod:`matrix.check.checks` and register under these names; a test holds the two
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
    FindingKind(
        "offline_sql",
        "schema_from_platform",
        "the script leaves creating the plugin schema to Peek, a note",
    ),
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


@dataclass(frozen=True)
class KindAdvice:
    """What to do about a finding of one kind: the one line every report prints beside it.

    ``note_only`` kinds never fail a check; ``step`` says whose code caused a
    finding of the kind, the blamed revision's upgrade or its downgrade, which
    the reports show beneath it. A finding a plugin's maintainers accept
    instead is acknowledged by a policy entry, which the reports write out.
    """

    advice: str
    note_only: bool = False
    step: str = "upgrade"


ADVICE: dict[str, KindAdvice] = {
    "heads": KindAdvice(
        "Merge the heads (alembic merge heads) or fix the down_revision that forks the history.",
    ),
    "upgrade_failed": KindAdvice(
        "Make the revision's upgrade() run on the schema the revision before it leaves; a "
        "released revision stays as it is, so repair in a new revision.",
    ),
    "version_table": KindAdvice(
        "Pass version_table_schema=<the plugin schema> to context.configure() in env.py.",
    ),
    "drift": KindAdvice(
        "Make the model and the migrations agree: add a revision that brings the schema to the "
        "model, or change the model to what the migrations build.",
    ),
    "fresh_install_differs": KindAdvice(
        "Make create_all() and the migrations build the same schema, or let Peek run the "
        "migrations on fresh sites (enableCreateAll=False).",
    ),
    "create_all_failed": KindAdvice(
        "Make metadata.create_all() work on an empty database, or let Peek run the migrations on "
        "fresh sites (enableCreateAll=False).",
    ),
    "stamp": KindAdvice(
        "Keep the version table in the plugin schema, so that alembic stamp head records the head "
        "where the upgrades look for it.",
    ),
    "outside_schema": KindAdvice(
        "Give every table, index, sequence and type the plugin schema (the MetaData's schema, or "
        "schema= on each op).",
    ),
    "downgrade_failed": KindAdvice(
        "Make the revision's downgrade() undo its upgrade() (name what it drops), or declare it "
        "irreversible (raise NotImplementedError) and acknowledge that.",
        step="downgrade",
    ),
    "irreversible": KindAdvice(
        "Nothing, unless sites must roll back past this revision: then write its downgrade().",
        note_only=True,
        step="downgrade",
    ),
    "no_op_downgrade": KindAdvice(
        "Write downgrade()s that undo their upgrade(), or declare them irreversible (raise "
        "NotImplementedError).",
        note_only=True,
    ),
    "residue": KindAdvice(
        "Make the downgrade() undo exactly what the upgrade() did: the difference it leaves is "
        "shown (- before the upgrade, + after the downgrade).",
        step="downgrade",
    ),
    "reupgrade_failed": KindAdvice(
        "Make the downgrades leave the schema the upgrades started from (see "
        "downgrade_leaves_no_trace), so that upgrade head runs again after a rollback.",
    ),
    "reupgrade_differs": KindAdvice(
        "Make the downgrades leave the schema the upgrades started from (see "
        "downgrade_leaves_no_trace), so that upgrade head builds the same schema again.",
    ),
    "table_dropped": KindAdvice(
        "Copy the table's rows to where they now belong before dropping it; acknowledge it if "
        "that data is obsolete or rebuilt.",
    ),
    "rows_lost": KindAdvice(
        "Keep the rows (migrate them instead of deleting or truncating them, or copy them into a "
        "re-created table); acknowledge it if that data is rebuilt.",
    ),
    "values_changed": KindAdvice(
        "Convert the values without changing them (check the casts, defaults and UPDATEs of the "
        "revision); acknowledge it if the change is intended.",
    ),
    "fails_with_data": KindAdvice(
        "Make the revision work on tables with rows: give a new NOT NULL column a server_default, "
        "or fill it before setting NOT NULL.",
    ),
    "column_dropped": KindAdvice(
        "Nothing, if the column was meant to go: its values are gone on upgrade.",
        note_only=True,
    ),
    "sequence_behind": KindAdvice(
        "After copying rows into a re-created table, move its sequence past the highest key "
        "(setval, or DBCC CHECKIDENT on SQL Server).",
    ),
    "script_failed": KindAdvice(
        "Make the offline script apply: render it (alembic upgrade head --sql), apply it to an "
        "empty database (psql -f) and fix the revision of the failing statement.",
    ),
    "script_differs": KindAdvice(
        "Make env.py's offline branch configure Alembic as its online one does (the same schema, "
        "version table and options), so both build one schema.",
    ),
    "schema_from_platform": KindAdvice(
        "Nothing for Peek, which creates the plugin schema before migrating; a database "
        "administrator applying the script by hand creates the schema first.",
        note_only=True,
    ),
    "unparsable": KindAdvice(
        "Check the statement: it is SQL the target's dialect cannot parse (often another "
        "database's syntax in op.execute()).",
    ),
    "unsplittable": KindAdvice(
        "Check the script's quoting: a string, dollar quote or comment is not closed.",
    ),
    "removed": KindAdvice(
        "Ship every revision of the previous release: restore the removed revision file.",
    ),
    "edited": KindAdvice(
        "Restore the released upgrade() as it was and put the change in a new revision.",
    ),
    "reparented": KindAdvice(
        "Restore its down_revision: sites ran it after the old parent.",
    ),
    "schema_differs": KindAdvice(
        "Make the upgrade from the previous release build the schema a fresh upgrade builds (a "
        "revision that depends on what a fresh database lacks, or the reverse).",
    ),
    "fails_at_scale": KindAdvice(
        "Make the revision work on full tables (statement and lock timeouts, memory, constraints "
        "checked on existing rows).",
    ),
    "exclusive_lock": KindAdvice(
        "Shorten the exclusive lock (create indexes concurrently, add columns without a rewrite, "
        "split the revision), or raise max_access_exclusive_seconds in [cost].",
    ),
    "lock_time": KindAdvice(
        "Shorten the lock (smaller batches, fewer rewrites), or raise max_lock_seconds in [cost].",
    ),
    "slow_revision": KindAdvice(
        "Make the revision faster on full tables (batch its data migration), or raise "
        "max_revision_seconds in [cost].",
    ),
    NOT_RUN_KIND: KindAdvice(
        "Remove what kept the check from judging (its reason says what), or acknowledge that it "
        "cannot judge this plugin.",
    ),
    "unpromised_name": KindAdvice(
        "Drop the constraint by the name its revision gave it: name it where it is created "
        "(name=, or a naming convention on the MetaData), in a new revision for released ones.",
    ),
}
