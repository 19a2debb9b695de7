"""The check catalogue: names, theories, order and prerequisites.

Stdlib only, so that reports, the release gate and the command line can list
the checks without importing SQLAlchemy or Alembic. The implementations live
in :mod:`matrix.checks` and register under these names; a test holds the two
together.

``required`` checks must pass (or be waived) for a target to pass. Optional
checks only run when their input exists (an earlier release, ``--scale``);
when they run, a failure still fails the target.
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
    """One kind of finding: the checks that report it, and what to do about one.

    ``advice`` is the one line every report prints beside a finding of this
    kind; a finding a plugin's maintainers accept instead is acknowledged by
    a policy entry, which the reports write out ready to paste.
    """

    name: str
    checks: tuple[str, ...]
    advice: str
    blocking: bool = True  # False: only ever a note, never a failure
    step: str = "upgrade"  # whose code caused it: the blamed revision's upgrade or downgrade


NOT_RUN = "not_run"  # the kind a policy entry uses to acknowledge a check that cannot judge

FINDING_KINDS: tuple[FindingKind, ...] = (
    FindingKind(
        "heads",
        ("single_head",),
        "Merge the heads (alembic merge heads) or fix the down_revision that forks the history.",
    ),
    FindingKind(
        "upgrade_failed",
        ("upgrade_stepwise", "upgrade_from_release"),
        "Make the revision's upgrade() run on the schema the revision before it leaves; a "
        "released revision stays as it is, so repair in a new revision.",
    ),
    FindingKind(
        "version_table",
        ("version_table_at_head",),
        "Pass version_table_schema=<the plugin schema> to context.configure() in env.py.",
    ),
    FindingKind(
        "drift",
        ("model_matches_ddl",),
        "Make the model and the migrations agree: add a revision that brings the schema to "
        "the model, or change the model to what the migrations build.",
    ),
    FindingKind(
        "fresh_install_differs",
        ("fresh_install_matches_upgrade",),
        "Make create_all() and the migrations build the same schema, or let Peek run the "
        "migrations on fresh sites (enableCreateAll=False).",
    ),
    FindingKind(
        "create_all_failed",
        ("fresh_install_matches_upgrade",),
        "Make metadata.create_all() work on an empty database, or let Peek run the migrations "
        "on fresh sites (enableCreateAll=False).",
    ),
    FindingKind(
        "stamp",
        ("fresh_install_matches_upgrade",),
        "Keep the version table in the plugin schema, so that alembic stamp head records the "
        "head where the upgrades look for it.",
    ),
    FindingKind(
        "outside_schema",
        ("schema_isolation",),
        "Give every table, index, sequence and type the plugin schema (the MetaData's schema, "
        "or schema= on each op).",
    ),
    FindingKind(
        "downgrade_failed",
        ("downgrade_stepwise",),
        "Make the revision's downgrade() undo its upgrade() (name what it drops), or declare "
        "it irreversible (raise NotImplementedError) and acknowledge that.",
        step="downgrade",
    ),
    FindingKind(
        "irreversible",
        ("downgrade_stepwise",),
        "Nothing, unless sites must roll back past this revision: then write its downgrade().",
        blocking=False,
        step="downgrade",
    ),
    FindingKind(
        "no_op_downgrade",
        ("downgrade_stepwise",),
        "Write downgrade()s that undo their upgrade(), or declare them irreversible "
        "(raise NotImplementedError).",
        blocking=False,
    ),
    FindingKind(
        "residue",
        ("downgrade_leaves_no_trace",),
        "Make the downgrade() undo exactly what the upgrade() did: the difference it leaves is "
        "shown (- before the upgrade, + after the downgrade).",
        step="downgrade",
    ),
    FindingKind(
        "reupgrade_failed",
        ("reupgrade",),
        "Make the downgrades leave the schema the upgrades started from (see "
        "downgrade_leaves_no_trace), so that upgrade head runs again after a rollback.",
    ),
    FindingKind(
        "reupgrade_differs",
        ("reupgrade",),
        "Make the downgrades leave the schema the upgrades started from (see "
        "downgrade_leaves_no_trace), so that upgrade head builds the same schema again.",
    ),
    FindingKind(
        "table_dropped",
        ("data_survives", "upgrade_from_release"),
        "Copy the table's rows to where they now belong before dropping it; acknowledge it "
        "if that data is obsolete or rebuilt.",
    ),
    FindingKind(
        "rows_lost",
        ("data_survives", "upgrade_from_release"),
        "Keep the rows (migrate them instead of deleting or truncating them, or copy them into "
        "a re-created table); acknowledge it if that data is rebuilt.",
    ),
    FindingKind(
        "values_changed",
        ("data_survives", "upgrade_from_release"),
        "Convert the values without changing them (check the casts, defaults and UPDATEs of "
        "the revision); acknowledge it if the change is intended.",
    ),
    FindingKind(
        "fails_with_data",
        ("data_survives",),
        "Make the revision work on tables with rows: give a new NOT NULL column a "
        "server_default, or fill it before setting NOT NULL.",
    ),
    FindingKind(
        "column_dropped",
        ("data_survives", "upgrade_from_release"),
        "Nothing, if the column was meant to go: its values are gone on upgrade.",
        blocking=False,
    ),
    FindingKind(
        "sequence_behind",
        ("data_survives",),
        "After copying rows into a re-created table, move its sequence past the highest key "
        "(setval, or DBCC CHECKIDENT on SQL Server).",
    ),
    FindingKind(
        "script_failed",
        ("offline_sql",),
        "Make the offline script apply: render it (alembic upgrade head --sql), apply it "
        "to an empty database (psql -f) and fix the revision of the failing statement.",
    ),
    FindingKind(
        "script_differs",
        ("offline_sql",),
        "Make env.py's offline branch configure Alembic as its online one does (the same "
        "schema, version table and options), so both build one schema.",
    ),
    FindingKind(
        "schema_from_platform",
        ("offline_sql",),
        "Nothing for Peek, which creates the plugin schema before migrating; a database "
        "administrator applying the script by hand creates the schema first.",
        blocking=False,
    ),
    FindingKind(
        "unparsable",
        ("offline_sql",),
        "Check the statement: it is SQL the target's dialect cannot parse (often another "
        "database's syntax in op.execute()).",
    ),
    FindingKind(
        "unsplittable",
        ("offline_sql",),
        "Check the script's quoting: a string, dollar quote or comment is not closed.",
    ),
    FindingKind(
        "removed",
        ("released_revisions_unchanged",),
        "Ship every revision of the previous release: restore the removed revision file.",
    ),
    FindingKind(
        "edited",
        ("released_revisions_unchanged",),
        "Restore the released upgrade() as it was and put the change in a new revision.",
    ),
    FindingKind(
        "reparented",
        ("released_revisions_unchanged",),
        "Restore its down_revision: sites ran it after the old parent.",
    ),
    FindingKind(
        "schema_differs",
        ("upgrade_from_release",),
        "Make the upgrade from the previous release build the schema a fresh upgrade builds "
        "(a revision that depends on what a fresh database lacks, or the reverse).",
    ),
    FindingKind(
        "fails_at_scale",
        ("migration_cost",),
        "Make the revision work on full tables (statement and lock timeouts, memory, "
        "constraints checked on existing rows).",
    ),
    FindingKind(
        "exclusive_lock",
        ("migration_cost",),
        "Shorten the exclusive lock (create indexes concurrently, add columns without a "
        "rewrite, split the revision), or raise max_access_exclusive_seconds in [cost].",
    ),
    FindingKind(
        "lock_time",
        ("migration_cost",),
        "Shorten the lock (smaller batches, fewer rewrites), or raise max_lock_seconds in [cost].",
    ),
    FindingKind(
        "slow_revision",
        ("migration_cost",),
        "Make the revision faster on full tables (batch its data migration), or raise "
        "max_revision_seconds in [cost].",
    ),
    FindingKind(
        NOT_RUN,
        tuple(check.name for check in CHECKS),
        "Remove what kept the check from judging (its reason says what), or acknowledge that "
        "it cannot judge this plugin.",
    ),
)

KINDS_BY_NAME: dict[str, FindingKind] = {kind.name: kind for kind in FINDING_KINDS}
