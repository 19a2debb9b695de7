"""The site checks: one small function each, over the :class:`Rehearsal` of one target.

Like the plugin checks (:mod:`matrix.check.checks.base`), a check states its theory
in its docstring and reports through a :class:`~matrix.check.checks.base.CheckOutput`,
here one per plugin (``out.plugin(name)``): a finding is blamed on a
revision and lands on the plugin it is about; ``out.cannot_judge(name, why)``
makes that plugin's result ``not_run`` with the reason. A check that raises
is the harness's error on every plugin, never a pass.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from matrix import masking
from matrix.check import survival
from matrix.check.checks.base import CheckOutput, describe_error
from matrix.check.checks.cost import judge_cost
from matrix.check.checks.data import KINDS
from matrix.check.snapshot import describe, plugin_schema
from matrix.results import CheckResult, Status
from matrix.site.catalogue import SITE_BY_NAME, SITE_CHECKS
from matrix.site.rehearsal import UPGRADE, Rehearsal, unlabel


class SiteOutput:
    """What a site check reports, plugin by plugin."""

    def __init__(self, names: list[str]) -> None:
        self.outputs = {name: CheckOutput() for name in names}
        self.unjudged: dict[str, str] = {}

    def plugin(self, name: str) -> CheckOutput:
        return self.outputs[name]

    def cannot_judge(self, name: str, reason: str) -> None:
        self.unjudged[name] = masking.mask(reason)

    def results(self, check: str, seconds: float) -> dict[str, CheckResult]:
        found = {}
        for name, out in self.outputs.items():
            result = CheckResult(check, Status.PASSED, duration_s=round(seconds, 4))
            result.findings, result.warnings, result.evidence = (
                out.findings,
                out.warnings,
                out.evidence,
            )
            if name in self.unjudged and not any(f.blocking for f in out.findings):
                result.status, result.reason = Status.NOT_RUN, self.unjudged[name]
            else:
                result.settle_from_findings()
                if result.status == Status.PASSED:
                    result.reason = out.covered
            result.detail = "\n\n".join(
                f"[{f.kind}] {f.message}" + (f"\n{f.detail}" if f.detail else "")
                for f in out.findings
            )
            found[name] = result
        return found


SiteCheck = Callable[[Rehearsal, SiteOutput], None]
SITE_IMPLEMENTATIONS: dict[str, SiteCheck] = {}


def site_check(function: SiteCheck) -> SiteCheck:
    """Register a site check under its function's name, which the site catalogue must know."""
    if function.__name__ not in SITE_BY_NAME:
        raise LookupError(f"site check {function.__name__} is not in matrix.site.catalogue")
    SITE_IMPLEMENTATIONS[function.__name__] = function
    return function


def run_site_checks(
    rehearsal: Rehearsal,
    on_start: Callable[[str], None],
    on_done: Callable[[str, dict[str, CheckResult]], None],
) -> None:
    """Every site check in catalogue order; one that raises is an error on every plugin."""
    names = [m.name for m in rehearsal.members]
    for info in SITE_CHECKS:
        on_start(info.name)
        out = SiteOutput(names)
        started = time.perf_counter()
        try:
            SITE_IMPLEMENTATIONS[info.name](rehearsal, out)
            results = out.results(info.name, time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - the harness's error, on every plugin
            reason = masking.mask(f"the check itself failed: {describe_error(error)}")
            detail = masking.mask(traceback.format_exc())
            results = {
                name: CheckResult(info.name, Status.ERROR, reason=reason, detail=detail)
                for name in names
            }
        on_done(info.name, results)


def _fresh(rehearsal: Rehearsal, out: SiteOutput) -> list:
    """The plugins with a previous release; those installed fresh cannot be judged, and why."""
    judged = []
    for member in rehearsal.members:
        if member.previous is None:
            out.cannot_judge(
                member.name,
                f"installed fresh at this release ({member.fresh}): no upgrade to judge",
            )
        else:
            judged.append(member)
    return judged


@site_check
def site_upgrade(rehearsal: Rehearsal, out: SiteOutput) -> None:
    """Every plugin, upgraded in load order in its own transaction, reaches its head.

    The logic service migrates the storage plugins one after another, each
    with ``alembic upgrade head`` through its own env.py, in one transaction
    (``AlembicEnvBase``). A plugin whose upgrade raises is logged and left
    out, its transaction rolled back, and the loader goes on with the next
    (``PluginLoaderABC.loadPlugin``). A failure names the revision that
    raised and what the site was left with: the plugins already upgraded,
    where the failing one stands, and the ones upgraded after it.
    """
    members = rehearsal.members
    for index, member in enumerate(members):
        if member.previous is None:
            out.cannot_judge(
                member.name,
                f"installed fresh at this release ({member.fresh}): no upgrade to judge",
            )
            continue
        outcome = member.outcome
        plugin = out.plugin(member.name)
        since = f"{member.previous.version} at {member.previous.head}"
        if outcome.failed is not None:
            failure = outcome.failed
            before = [m.name for m in members[:index] if m.reached_head]
            after = [m.name for m in members[index + 1 :] if m.reached_head]
            plugin.find(
                "upgrade_failed",
                f"upgrading {member.name} from {since} fails at {failure.revision}: "
                f"{describe_error(failure.error)}. Already upgraded: "
                f"{', '.join(before) or 'none'}; {member.name} stays at "
                f"{', '.join(outcome.version) or 'no revision'} (its transaction rolled back); "
                f"upgraded after it, as Peek's loader goes on: {', '.join(after) or 'none'}",
                revision=failure.revision,
                detail=member.cell.source_of(failure.revision, "upgrade"),
            )
        elif outcome.version != (member.head,):
            plugin.find(
                "version_table",
                f"after its upgrade {member.schema}.alembic_version holds "
                f"{list(outcome.version)}, not [{member.head!r}]",
                revision=member.head,
            )
        else:
            plugin.covered = (
                f"{since} -> {member.head}: {len(outcome.steps)} revisions in one transaction, "
                f"{outcome.seconds:.3f} s"
            )


@site_check
def site_isolation(rehearsal: Rehearsal, out: SiteOutput) -> None:
    """No plugin's upgrade changes another plugin's schema or rows.

    Each plugin owns its schema, but one database holds them all: a
    ``TRUNCATE ... CASCADE`` empties every table with a foreign key to the
    truncated one, in any schema, and a ``DROP ... CASCADE`` drops what
    depends on it. Before and after each plugin's upgrade every other
    plugin's schema is fingerprinted (its facts, its tables' identities, row
    counts and a hash of their rows); any difference is a finding on the
    plugin whose upgrade made it, blamed on the revision after which the
    observer first saw it (inside the upgrade's transaction), else on the one
    revision whose statements name that schema or send a CASCADE. A CASCADE
    that reaches another plugin is its own kind, ``cascade``.
    """
    others = len(rehearsal.members) - 1
    for member in rehearsal.members:
        plugin = out.plugin(member.name)
        if member.outcome is None:
            out.cannot_judge(member.name, "its upgrade did not run")
            continue
        for reach in member.reaches:
            victim = rehearsal.by_name(reach.victim)
            how = " through a CASCADE" if reach.cascade else ""
            plugin.find(
                "cascade" if reach.cascade else "other_plugin",
                f"the upgrade of {member.name} changed {reach.victim}'s schema "
                f"{victim.schema}{how}: {reach.what}",
                revision=reach.revision,
                detail=reach.detail,
            )
        if not member.reaches:
            plugin.covered = f"the other {others} plugins' schemas and rows are as they were"


@site_check
def site_matches_fresh(rehearsal: Rehearsal, out: SiteOutput) -> None:
    """After the upgrade, each plugin's schema equals a fresh install of this release in the site.

    A site that upgraded and a site installed new with this release must
    hold the same schema, or the next release's migrations meet two
    different databases. The fresh site is this release installed from
    nothing in a sibling database, plugin by plugin in load order (cross-
    plugin foreign keys need that order), each as Peek installs it
    (``alembic upgrade head``, ``enableCreateAll=False``).
    """
    for member in rehearsal.members:
        plugin = out.plugin(member.name)
        if member.previous is not None and not member.reached_head:
            out.cannot_judge(member.name, "it did not reach its head (see site_upgrade)")
        elif member.fresh_error:
            plugin.find(
                "fresh_install_failed",
                f"a fresh site cannot install {member.name} {member.fresh_error}",
                revision=member.head,
            )
        elif member.upgraded_state != member.fresh_state:
            since = member.previous.version if member.previous else "a fresh install"
            plugin.find(
                "schema_differs",
                f"{member.schema} upgraded from {since} differs from a fresh install of this "
                "release (- fresh install, + upgraded)",
                revision=member.head,
                detail=describe(member.fresh_state.facts, member.upgraded_state.facts),
            )
        else:
            plugin.covered = "the same schema as a fresh install of this release"


def _losses(
    rehearsal: Rehearsal, member, plugin: CheckOutput, rolled_back: bool = False
) -> list[survival.Loss]:
    """Rows of ``member``'s ledger that are gone or changed, each a finding, blamed.

    After a rollback, a row the upgrade changed and the way back did not
    restore is still blamed on the upgrade's revision, and said so.
    """
    conn, engine = rehearsal.conn, rehearsal.engine
    losses = survival.verify(conn, engine, member.schema, member.ledger)
    for loss in losses:
        phase, culprit, revision = unlabel(loss.revision) or ("", "", loss.revision)
        by = f" by {culprit}'s {phase} at {revision}" if culprit else ""
        if rolled_back and phase == UPGRADE:
            by += " and not restored by the rollback"
        rows = f"{len(loss.rows)} row(s) written at the previous release"
        verb = {"values": "changed", "column": "lost a value"}.get(loss.kind, "lost")
        plugin.find(
            KINDS[loss.kind],
            f"{member.schema}.{loss.table}: {rows} {verb}{by} ({loss.why})",
            revision=revision or None,
            detail=f"by {culprit}" if culprit and culprit != member.name else "",
            blocking=loss.kind != "column",
        )
    return losses


@site_check
def site_rows_kept(rehearsal: Rehearsal, out: SiteOutput) -> None:
    """The rows written at the previous release are all still there, unchanged.

    Rows went into every table at the previous release (the data walk's
    generator, each row identifiable); after the whole site's upgrade each
    must be found again, by its key or its values, equal in its column's
    semantics. A loss is blamed on the revision that changed the table (the
    ledger follows every table's identity and rows, revision by revision,
    inside each upgrade's transaction) and on the plugin that ran it, which
    may be another plugin: the same kinds as ``data_survives``. Rows gone
    are then forgotten; changed rows keep their previous values, which the
    rollback must give back.
    """
    for member in _fresh(rehearsal, out):
        plugin = out.plugin(member.name)
        losses = _losses(rehearsal, member, plugin)
        # The rollback is judged on the rows still there, against the values
        # they had at the previous release (a changed row must come back).
        gone = {id(r) for loss in losses if loss.kind in ("table", "rows") for r in loss.rows}
        member.ledger.forget(gone)
        for loss in losses:
            if loss.kind == "column":
                member.ledger.forget_column(loss.table, loss.column)
        if not member.reached_head:
            out.cannot_judge(member.name, "it did not reach its head (see site_upgrade)")
            continue
        for table, why in sorted(member.ledger.uncovered.items()):
            plugin.warn(f"no rows could be written into {table} ({why})")
        if not member.ledger.rows and not losses:
            out.cannot_judge(
                member.name, "no table of its schema took a row at the previous release"
            )
        elif member.ledger.uncovered and not losses:
            out.cannot_judge(
                member.name,
                f"rows could not be written into {', '.join(sorted(member.ledger.uncovered))}; "
                f"the other tables kept all {len(member.ledger.rows)} rows",
            )
        else:
            tables = len({row.table for row in member.ledger.rows})
            plugin.covered = f"{len(member.ledger.rows)} rows in {tables} tables kept"


@site_check
def site_window(rehearsal: Rehearsal, out: SiteOutput) -> None:
    """Each plugin's upgrade time and exclusive locks on filled tables stay within the policy.

    This is the site's maintenance window at ``--scale``: the logic service
    does not start before every plugin is migrated. Per plugin: each
    revision's time and the locks its upgrade holds, counted from the
    revision that took one to the end of the plugin's transaction (Peek
    commits once per plugin), on tables filled to ``--scale`` rows; the
    harness's own observation is left out of every figure. The policy's
    ``[cost]`` limits apply per revision and per lock; without them nothing
    fails and the window is reported.
    """
    for member in rehearsal.members:
        plugin = out.plugin(member.name)
        if member.outcome is None:
            out.cannot_judge(member.name, "its upgrade did not run")
            continue
        plugin.evidence = member.timeline
        judge_cost(member.cell, plugin, rehearsal.scale)
        locked = [
            lock
            for evidence in member.timeline
            for lock in evidence.locks
            if lock.exclusive and lock.rows
        ]
        longest = max(locked, key=lambda lock: lock.seconds, default=None)
        plugin.covered = (
            f"{member.outcome.seconds:.3f} s for {len(member.outcome.steps)} revisions"
            + (
                f"; longest exclusive lock {longest.relation} ({longest.rows} rows) "
                f"{longest.seconds:.3f} s"
                if longest
                else ""
            )
        )


@site_check
def site_rollback(rehearsal: Rehearsal, out: SiteOutput) -> None:
    """Downgraded in reverse load order to the previous head, every plugin has the previous
    release's fresh schema and its rows.

    The way back from a release: each plugin's own downgrades, of this
    release's scripts, from its head to the previous release's, the last
    plugin first. Each must run; the schema must then equal the one the
    previous release's own scripts installed, with each step's residue blamed
    on its revision as ``downgrade_leaves_no_trace`` does; every row still
    there after the upgrade must be back as the previous release wrote it
    (one the upgrade changed and the way back does not restore is blamed on
    the upgrade's revision). A downgrade declared
    irreversible ends the way back there (a note; what lies below is not
    judged); no-op downgrades (``pass``) are named.
    """
    rehearsal.rollback()
    for member in _fresh(rehearsal, out):
        plugin = out.plugin(member.name)
        if member.outcome.failed is not None:
            out.cannot_judge(
                member.name, "its upgrade failed and its transaction rolled back: nothing to undo"
            )
            continue
        steps, failure = rehearsal.rolled_back[member.name]
        upgraded = [step.revision for step in member.outcome.steps]
        no_ops = [r for r in upgraded if member.cell.downgrade_kind(r) == "no-op"]
        if no_ops:
            plugin.find(
                "no_op_downgrade",
                f"{len(no_ops)} revisions have a no-op downgrade (pass): {', '.join(no_ops)}",
                blocking=False,
            )
        if failure is not None:
            kind = member.cell.downgrade_kind(failure.revision)
            if kind == "irreversible":
                plugin.find(
                    "irreversible",
                    f"irreversible at {failure.revision}: its downgrade() declares it; "
                    f"{len(steps)} revisions above it rolled back",
                    revision=failure.revision,
                    blocking=False,
                )
                out.cannot_judge(
                    member.name,
                    f"the way back stops at {failure.revision}, declared irreversible",
                )
            else:
                plugin.find(
                    "downgrade_failed",
                    f"rolling {member.name} back fails at {failure.revision}: "
                    f"{describe_error(failure.error)}",
                    revision=failure.revision,
                    detail=member.cell.source_of(failure.revision, "downgrade"),
                )
            _losses(rehearsal, member, plugin, rolled_back=True)
            continue
        for revision, expected, actual in member.residues:
            how = " (its downgrade() is a no-op: pass)" if revision in no_ops else ""
            plugin.find(
                "residue",
                f"rolling back {revision} leaves {member.schema} different from before its "
                f"upgrade{how}: {len(expected) + len(actual)} facts",
                revision=revision,
                detail=describe(expected, actual),
            )
        state = plugin_schema(rehearsal.conn, rehearsal.engine, member.schema)
        if not member.residues and state != member.previous_state:
            plugin.find(
                "schema_differs",
                f"rolled back to {member.previous.head}, {member.schema} differs from the "
                f"previous release's install (- previous release, + rolled back)",
                revision=upgraded[-1] if upgraded else member.head,
                detail=describe(member.previous_state.facts, state.facts),
            )
        losses = _losses(rehearsal, member, plugin, rolled_back=True)
        if not losses and not member.residues and state == member.previous_state:
            plugin.covered = (
                f"{len(steps)} revisions rolled back to {member.previous.head}: the previous "
                f"release's schema, {len(member.ledger.rows)} rows kept"
            )
