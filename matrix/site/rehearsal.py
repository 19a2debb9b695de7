"""The rehearsal's steps in the site's check process, on one target's database.

The previous release is already installed (:mod:`matrix.site.previous`, by its
own scripts, in load order). Here, in one process of the site's environment:

1. :meth:`Rehearsal.baseline`: each plugin's schema as the previous release
   left it (its "fresh" schema, which a rollback must give back);
2. :meth:`Rehearsal.fill`: rows into every table, by the data walk's
   generator (:mod:`matrix.check.synthetic`), each recorded in the plugin's ledger;
   with ``--scale N`` every table is then bulk-loaded to N rows;
3. :meth:`Rehearsal.upgrade`: each plugin in load order, as the logic service
   runs it: ``alembic upgrade head`` through the plugin's env.py, in one
   transaction, a failing plugin rolled back and the next one started (Peek's
   ``PluginLoaderABC.loadPlugin`` logs the failure and goes on). After each
   revision, inside that transaction, an :class:`UpgradeObserver` notes the
   locks the upgrade holds, what it changed in its own schema and whether it
   reached another plugin's; its time is kept out of the window;
4. :meth:`Rehearsal.fresh_site`: this release installed from nothing in a
   sibling database, in the same order, for ``site_matches_fresh``;
5. :meth:`Rehearsal.rollback`: each plugin downgraded in reverse load order
   to its previous head, with this release's scripts (``site_rollback``).

Ledger entries are labelled ``phase:plugin:revision`` so that one walk across
many plugins keeps its revisions apart (two plugins may share a revision id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import URL

from matrix.check import synthetic
from matrix.check.cell import Cell
from matrix.check.checks.cost import fill_to_scale
from matrix.check.migrator import BASE, Step, StepFailed
from matrix.check.snapshot import VERSION_TABLE, SchemaState, plugin_schema
from matrix.protocol import ReleaseAt
from matrix.results import LockHeld, RevisionEvidence

PREVIOUS, UPGRADE, ROLLBACK = "previous", "upgrade", "rollback"


# Taken by any read, the observer's own included; it blocks only DDL.
def label(phase: str, package: str, revision: str) -> str:
    return f"{phase}:{package}:{revision}"


def unlabel(text: str | None) -> tuple[str, str, str] | None:
    """``(phase, plugin, revision)`` of a ledger label; None for anything else."""
    parts = (text or "").split(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


@dataclass
class Reach:
    """Something one plugin's upgrade did to another plugin's schema or rows."""

    victim: str
    revision: str | None  # the revision to blame, when it can be told
    what: str
    cascade: bool = False  # the revision sent a CASCADE
    detail: str = ""


@dataclass
class Outcome:
    """How one plugin's upgrade went."""

    steps: list[Step]
    failed: StepFailed | None
    seconds: float  # wall time, the observer's own time left out
    version: tuple[str, ...] = ()  # the version table afterwards


@dataclass
class Member:
    """One plugin in the site's check process: its cell, its ledger, what happened to it."""

    cell: Cell
    head: str
    previous: ReleaseAt | None  # None: installed fresh
    fresh: str | None
    ledger: synthetic.Ledger = field(default_factory=synthetic.Ledger)
    previous_state: SchemaState | None = None
    version_before: tuple[str, ...] = ()
    outcome: Outcome | None = None
    timeline: list[RevisionEvidence] = field(default_factory=list)
    reaches: list[Reach] = field(default_factory=list)  # what its upgrade did to others
    statements: dict[str, list[str]] = field(default_factory=dict)  # revision -> SQL it sent
    unfilled: dict[str, str] = field(default_factory=dict)  # table -> why not filled to scale
    rows_before: dict[str, int] = field(default_factory=dict)  # rows per table before upgrading
    fresh_state: SchemaState | None = None  # this release installed from nothing
    fresh_error: str | None = None
    upgraded_state: SchemaState | None = None  # when the whole site's upgrade is done
    states_before: dict[str, SchemaState] = field(default_factory=dict)  # revision -> before it
    # What a rollback step left different from before that revision's upgrade:
    # (revision, facts expected, facts found), only what is new at that step.
    residues: list[tuple[str, frozenset[str], frozenset[str]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.cell.plugin.package

    @property
    def schema(self) -> str:
        return self.cell.schema

    @property
    def reached_head(self) -> bool:
        return self.outcome is not None and self.outcome.version == (self.head,)


@dataclass
class SiteFacts:
    """Every plugin schema's facts and table fingerprints at one moment."""

    facts: dict[str, SchemaState]
    tables: dict[str, dict[str, tuple[int, str]]]  # schema -> table -> (rows, hash)
    identities: dict[str, dict[str, int]]  # schema -> table -> identity


class Rehearsal:
    """One target's database, and the site's plugins in load order."""

    def __init__(self, members: list[Member], url: URL, scale: int, sql_dir) -> None:
        self.members = members
        self.url = url
        self.scale = scale
        self.sql_dir = sql_dir
        self.engine = members[0].cell.engine
        self.conn = members[0].cell.open(url)
        self.pid = self.conn.execute(sa.text(self.engine.session_id_sql)).scalar_one()
        setting_sql = self.engine.exclusive_setting_sql
        setting = self.conn.execute(sa.text(setting_sql)).scalar() if setting_sql else None
        self.exclusive = self.engine.exclusive_modes(setting)  # modes that block readers too
        self.window_s: float | None = None
        self.rolled_back: dict[str, tuple[list[Step], StepFailed | None]] = {}

    def close(self) -> None:
        engine = self.conn.engine
        self.conn.close()
        engine.dispose()
        for member in self.members:
            member.cell.close()

    def by_name(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    # -- 1. the previous release, as installed ---------------------------------------

    def baseline(self) -> None:
        """Each plugin's schema as installed, and its env.py run once (changing nothing).

        The logic service has every plugin loaded before it migrates one, so
        the plugin's modules are imported here, out of the window.
        """
        for member in self.members:
            member.previous_state = plugin_schema(self.conn, self.engine, member.schema)
            member.version_before = self.version(member)
            member.cell.migrator.current(self.url)

    def version(self, member: Member, conn: sa.Connection | None = None) -> tuple[str, ...]:
        """The revisions in the plugin's version table (empty when it has none)."""
        table = sa.table(VERSION_TABLE, sa.column("version_num"), schema=member.schema)
        try:
            return tuple(
                sorted((conn or self.conn).execute(sa.select(table.c.version_num)).scalars())
            )
        except sa.exc.DBAPIError:
            return ()

    # -- 2. rows ------------------------------------------------------------------------

    def fill(self) -> None:
        """Rows in every table, recorded; then, at scale, every table bulk-loaded to N rows."""
        for member in self.members:
            at = label(
                PREVIOUS, member.name, member.version_before[0] if member.version_before else BASE
            )
            member.ledger.observe(self.conn, self.engine, member.schema, at)
            metadata = synthetic.reflect(self.conn, self.engine, member.schema)
            tables = [
                t
                for t in metadata.tables.values()
                if t.schema == member.schema and t.name != VERSION_TABLE
            ]
            synthetic.fill(self.conn, self.engine, tables, at, member.ledger)
            if self.scale:
                for table in sa.sql.util.sort_tables(tables):
                    why = fill_to_scale(self.conn, self.engine, table, self.scale, member.ledger)
                    if why:
                        member.unfilled[table.name] = why
            member.ledger.settle(self.conn, self.engine, member.schema)

    # -- 3. the upgrade ----------------------------------------------------------------

    def site_facts(self) -> SiteFacts:
        facts, tables, identities = {}, {}, {}
        for member in self.members:
            facts[member.schema] = plugin_schema(self.conn, self.engine, member.schema)
            found = {
                row.name: int(row.identity)
                for row in self.conn.execute(
                    sa.text(self.engine.table_identity_sql), {"schema": member.schema}
                )
            }
            identities[member.schema] = found
            names = sorted(found)
            rows = (
                self.conn.execute(sa.text(self.engine.fingerprint_sql(member.schema, names))).all()
                if names
                else []
            )
            tables[member.schema] = {names[r.n]: (int(r.c), str(r.h)) for r in rows}
        return SiteFacts(facts, tables, identities)

    def upgrade(self) -> None:
        """Every plugin in load order, each in its own transaction; a failure does not stop it."""
        before = self.site_facts()
        for member in self.members:
            member.rows_before = {
                table: count for table, (count, _) in before.tables[member.schema].items()
            }
            observer = UpgradeObserver(self, member)
            sa.event.listen(sa.engine.Engine, "before_cursor_execute", observer.record)
            clock = time.perf_counter()
            failed = None
            try:
                steps = member.cell.migrator.upgrade_in_one_go(self.url, observer=observer)
            except StepFailed as failure:
                failed, steps = failure, failure.done
            finally:
                sa.event.remove(sa.engine.Engine, "before_cursor_execute", observer.record)
            seconds = time.perf_counter() - clock - observer.spent
            member.outcome = Outcome(steps, failed, round(seconds, 4), self.version(member))
            member.timeline = observer.evidence
            member.statements = observer.sent
            after = self.site_facts()
            member.reaches = self._reaches(member, before, after, observer)
            last = steps[-1].revision if steps else member.head
            for reach in member.reaches:  # the plugins it reached: their ledgers learn it
                victim = self.by_name(reach.victim)
                victim.ledger.observe(
                    self.conn,
                    self.engine,
                    victim.schema,
                    label(UPGRADE, member.name, reach.revision or last),
                )
            before = after
        # The logic service migrates one plugin after another: the window is their sum.
        self.window_s = round(sum(m.outcome.seconds for m in self.members), 4)
        for member in self.members:
            member.upgraded_state = before.facts[member.schema]

    def _reaches(
        self, member: Member, before: SiteFacts, after: SiteFacts, observer: UpgradeObserver
    ) -> list[Reach]:
        """What the member's upgrade changed in every other plugin's schema, blamed."""
        found = []
        for other in self.members:
            if other is member:
                continue
            schema = other.schema
            changes = []
            change = before.facts[schema].changes_to(after.facts[schema])
            if change:
                changes += change.summary()
            old, new = before.tables.get(schema, {}), after.tables.get(schema, {})
            for table in sorted(set(old) | set(new)):
                if table not in new:
                    changes.append(f"{table} dropped")
                elif table not in old:
                    continue  # a table created there is in the schema's facts
                elif before.identities[schema].get(table) != after.identities[schema].get(table):
                    changes.append(
                        f"{table} created again ({old[table][0]} rows before, "
                        f"{new[table][0]} after)"
                    )
                elif old[table][0] != new[table][0]:
                    changes.append(f"{table}: {old[table][0]} rows before, {new[table][0]} after")
                elif old[table] != new[table]:
                    changes.append(f"{table}: rows rewritten")
            if not changes:
                continue
            revision = observer.first_reached.get(schema) or observer.naming(schema)
            cascade = bool(revision) and any(
                "CASCADE" in statement.upper() for statement in observer.sent.get(revision, [])
            )
            found.append(
                Reach(
                    other.name,
                    revision,
                    "; ".join(changes),
                    cascade,
                    "\n".join(observer.sent.get(revision, [])) if revision else "",
                )
            )
        return found

    # -- 4. a fresh site ------------------------------------------------------------------

    def fresh_site(self, url: URL) -> None:
        """This release from nothing, in load order, in ``url``: what a new site gets."""
        conn = self.members[0].cell.open(url)
        try:
            for member in self.members:
                try:
                    member.cell.migrator.upgrade_in_one_go(url)
                except StepFailed as failure:
                    member.fresh_error = f"at {failure.revision}: {failure.error}"
            for member in self.members:
                member.fresh_state = plugin_schema(conn, self.engine, member.schema)
        finally:
            engine = conn.engine
            conn.close()
            engine.dispose()

    # -- 5. the rollback ----------------------------------------------------------------

    def rollback(self) -> None:
        """Each upgraded plugin, in reverse load order, down to its previous head."""
        for member in reversed(self.members):
            if member.previous is None or member.outcome is None or member.outcome.failed:
                continue  # installed fresh, or its failed upgrade was rolled back by itself
            observer = RollbackObserver(self, member)
            try:
                steps = member.cell.migrator.downgrade(self.url, member.previous.head, observer)
                self.rolled_back[member.name] = (steps, None)
            except StepFailed as failure:
                self.rolled_back[member.name] = (failure.done, failure)


class UpgradeObserver:
    """Inside one plugin's upgrade transaction, after each revision: locks, changes, reach.

    Reads go through the migration's own connection (they see its uncommitted
    work) except the lock query, which asks ``pg_locks`` from the harness's
    session. A lock, once taken, is held until the plugin's transaction
    commits, so its time is counted from the revision that took it to the
    end; the observer's own time is left out of every figure.
    """

    def __init__(self, rehearsal: Rehearsal, member: Member) -> None:
        self.rehearsal = rehearsal
        self.member = member
        self.spent = 0.0
        self.evidence: list[RevisionEvidence] = []
        self.sent: dict[str, list[str]] = {}
        self.first_reached: dict[str, str] = {}  # other schema -> revision that first changed it
        self._current: str | None = None
        self._locks: dict[str, tuple[str, int]] = {}  # relation -> (mode, evidence index)
        self._state = member.previous_state or SchemaState(frozenset())
        self._others: dict[str, tuple] | None = None  # taken before the first revision
        self._observing = False

    def record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        """SQLAlchemy's before_cursor_execute: what the migration sends, per revision."""
        if self._observing or self._current is None:
            return
        if conn.connection.dbapi_connection is self.rehearsal.conn.connection.dbapi_connection:
            return
        self.sent.setdefault(self._current, []).append(statement.strip())

    def before(self, revision: str) -> None:
        self._current = revision
        if self._others is None:  # a plugin with nothing to upgrade costs no snapshot
            clock = time.perf_counter()
            self._others = self._other_counts(self.rehearsal.conn)
            self.spent += time.perf_counter() - clock

    def after(self, step: Step) -> None:
        clock = time.perf_counter()
        self._observing = True
        try:
            self._observe(step)
        finally:
            self._observing = False
            self.spent += time.perf_counter() - clock

    def _observe(self, step: Step) -> None:
        rehearsal, member = self.rehearsal, self.member
        migration = member.cell.migrator.context.connection
        held = self._held(migration)
        for relation, mode in held.items():
            known = self._locks.get(relation)
            strength = rehearsal.engine.lock_strength
            if known is None or strength(mode) > strength(known[0]):
                self._locks[relation] = (mode, len(self.evidence))
        member.ledger.observe(
            migration, rehearsal.engine, member.schema, label(UPGRADE, member.name, step.revision)
        )
        state = plugin_schema(migration, rehearsal.engine, member.schema)
        member.states_before[step.revision] = self._state
        change = self._state.changes_to(state).summary()
        self._state = state
        counts = self._other_counts(migration)
        for schema, now in counts.items():
            if now != self._others.get(schema) and schema not in self.first_reached:
                self.first_reached[schema] = step.revision
        self._others = counts
        self.evidence.append(
            RevisionEvidence(step.revision, "upgrade", round(step.seconds, 4), change)
        )
        self._settle_locks()

    def _held(self, migration: sa.Connection) -> dict[str, str]:
        """Relation -> strongest mode the migration holds now, on every plugin's schema.

        The lock rows carry relation ids only; they are named from the catalogue
        on the migration's own session, which sees its uncommitted DDL without
        waiting on it (another session's catalogue read would, on SQL Server).
        The weakest mode (a plain read's) is left out.
        """
        engine = self.rehearsal.engine
        names = {
            int(row.id): f"{other.schema}.{row.name}"
            for other in self.rehearsal.members
            for row in migration.execute(sa.text(engine.relations_sql), {"schema": other.schema})
        }
        held: dict[str, str] = {}
        rows = self.rehearsal.conn.execute(
            sa.text(engine.locks_sql), {"sessions": str(self.rehearsal.pid)}
        )
        for relation, mode in rows:
            name = names.get(int(relation))
            if name is None or mode == engine.lock_order[0]:
                continue
            if engine.lock_strength(mode) > engine.lock_strength(held.get(name, "")):
                held[name] = mode
        return held

    def _other_counts(self, conn: sa.Connection) -> dict[str, tuple]:
        """Per other schema: its facts and its tables' identities and row counts."""
        rehearsal = self.rehearsal
        found = {}
        for other in rehearsal.members:
            if other is self.member:
                continue
            identities = tuple(
                sorted(
                    (row.name, int(row.identity))
                    for row in conn.execute(
                        sa.text(rehearsal.engine.table_identity_sql), {"schema": other.schema}
                    )
                )
            )
            names = [name for name, _ in identities]
            counts = (
                synthetic.row_counts(conn, rehearsal.engine, other.schema, names) if names else {}
            )
            facts = plugin_schema(conn, rehearsal.engine, other.schema).facts
            found[other.schema] = (identities, tuple(sorted(counts.items())), facts)
        return found

    def _settle_locks(self) -> None:
        """Each lock's time: from the revision that took it to the last one so far."""
        rows = self.member.rows_before
        for evidence in self.evidence:
            evidence.locks = []
        for relation, (mode, index) in sorted(self._locks.items()):
            seconds = sum(e.seconds for e in self.evidence[index:])
            schema, _, table = relation.partition(".")
            count = rows.get(table) if schema == self.member.schema else None
            self.evidence[index].locks.append(
                LockHeld(relation, mode, round(seconds, 4), count, mode in self.rehearsal.exclusive)
            )

    def naming(self, schema: str) -> str | None:
        """The one revision whose statements name ``schema`` or send a CASCADE, if one does."""
        quoted = (f'"{schema}"', f"{schema}.")
        hits = [
            revision
            for revision, statements in self.sent.items()
            if any(any(q in s for q in quoted) or "CASCADE" in s.upper() for s in statements)
        ]
        return hits[0] if len(hits) == 1 else None


class RollbackObserver:
    """After each downgrade step (committed): what it left, and what it did to the rows.

    The schema after undoing revision R must be the one R's upgrade started
    from; only what is newly different at a step is that step's residue, as
    ``downgrade_leaves_no_trace`` blames it. Every plugin's ledger observes
    the step, so a row a downgrade loses is blamed on it.
    """

    def __init__(self, rehearsal: Rehearsal, member: Member) -> None:
        self.rehearsal = rehearsal
        self.member = member
        self.residue: frozenset[str] = frozenset()

    def before(self, revision: str) -> None:
        return None

    def after(self, step: Step) -> None:
        rehearsal, member = self.rehearsal, self.member
        expected = member.states_before.get(step.revision)
        if expected is not None:
            actual = plugin_schema(rehearsal.conn, rehearsal.engine, member.schema)
            residue = frozenset(actual.facts ^ expected.facts)
            new = residue - self.residue
            if new:
                member.residues.append(
                    (step.revision, frozenset(new & expected.facts), frozenset(new & actual.facts))
                )
            self.residue = residue
        for other in rehearsal.members:
            other.ledger.observe(
                rehearsal.conn,
                rehearsal.engine,
                other.schema,
                label(ROLLBACK, self.member.name, step.revision),
            )
