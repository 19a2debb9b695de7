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
