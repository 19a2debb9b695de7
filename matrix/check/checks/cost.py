"""Migration cost at scale: how long each revision takes, and what it locks, with data.

A utility's site upgrades tables holding millions of rows while field and
office users wait. With ``--scale N`` every table of the plugin schema is
filled to N synthetic rows (bulk loaded, from the generator ``data_survives``
uses) before each revision runs; while it runs, a second connection samples
the locks the migrating sessions hold on the plugin's relations; afterwards
the tables whose storage changed were rewritten. The SQL each revision sent
is kept so the parent can put squawk's static view beside the measured one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from matrix.check import synthetic
from matrix.check.checks.base import CannotJudge, CheckOutput, check, describe_error
from matrix.check.migrator import Step, StepFailed
from matrix.check.snapshot import SchemaState
from matrix.engines.sqlscript import script_of, with_numbered_parameters
from matrix.results import LockHeld, RevisionEvidence

SAMPLE_INTERVAL_S = 0.005


@dataclass
class _Held:
    mode: str
    first: float
    last: float


@dataclass
class LockSampler:
    """Samples, on a connection of its own, the locks other sessions hold (by relation id)."""

    cell: object
    url: sa.engine.URL
    exclude: tuple[int, ...] = ()
    held: dict[int, _Held] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._conn = self.cell.open(self.url)
        self._pid = self._conn.execute(sa.text(self.cell.engine.session_id_sql)).scalar_one()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        self.held = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> dict[int, _Held]:
        """The locks seen; a sampler that died raises, since its silence proves nothing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._failure is not None:
            raise RuntimeError(f"the lock sampler failed: {self._failure}") from self._failure
        return self.held

    @property
    def connection(self):
        """The sampler's own DBAPI connection (its queries are not the migration's)."""
        return self._conn.connection.dbapi_connection

    def close(self) -> None:
        engine = self._conn.engine
        self._conn.close()
        engine.dispose()

    def _sample(self) -> None:
        try:
            self._sample_until_stopped()
        except Exception as error:  # noqa: BLE001 - raised again by stop(), in the check
            self._failure = error

    def sample(self) -> list:
        """One sample of the locks other sessions hold: rows (relation id, mode)."""
        sessions = ",".join(str(pid) for pid in (self._pid, *self.exclude))
        return self._conn.execute(sa.text(self.cell.engine.locks_sql), {"sessions": sessions}).all()

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            keep_strongest(self.cell.engine, self.held, self.sample(), now)
            self._stop.wait(SAMPLE_INTERVAL_S)


def unreadable_locks(engine, error: BaseException) -> BaseException:
    """What a first lock sample that raised means: the check cannot judge, or the error itself.

    A login that may not read the server's locks (SQL Server: VIEW SERVER
    STATE) leaves no lock to measure, which is not a pass: the check says so,
    with the grant.
    """
    missing = engine.missing_permission(error)
    if missing is None:
        return error
    return CannotJudge(f"the locks other sessions hold cannot be read: {missing}")


def keep_strongest(engine, held: dict[int, _Held], rows, now: float) -> None:
    """Fold one sample of (relation id, mode) rows into the strongest lock seen per relation."""
    for relation, mode in rows:
        current = held.get(int(relation))
        if current is None:
            held[int(relation)] = _Held(mode, now, now)
            continue
        if engine.lock_strength(mode) > engine.lock_strength(current.mode):
            current.mode = mode
        current.last = now


def named_locks(
    held: dict[int, _Held],
    names: dict[int, str],
    exclusive: frozenset[str],
    counts: dict[str, int],
) -> list[LockHeld]:
    """The locks on the plugin's relations, named from catalogue reads taken between revisions.

    ``names`` maps the plugin schema's relation ids (before and after the
    revision) to names; a lock on any other relation is not the plugin's.
    """
    return [
        LockHeld(
            names[relation],
            lock.mode,
            round(lock.last - lock.first + SAMPLE_INTERVAL_S, 4),
            counts.get(names[relation]),
            lock.mode in exclusive,
        )
        for relation, lock in sorted(held.items(), key=lambda item: names.get(item[0], ""))
        if relation in names
    ]


class CostObserver:
    """Before each revision: fill to scale, note storage; after it: locks, rewrites, time."""

    def __init__(self, cell, conn: sa.Connection, sampler: LockSampler, scale: int) -> None:
        self.cell = cell
        self.conn = conn
        self.sampler = sampler
        self.scale = scale
        self.ledger = synthetic.Ledger()
        self.state = SchemaState(frozenset())
        self.evidence: list[RevisionEvidence] = []
        self.unfilled: dict[str, str] = {}
        self._rows = 0
        self._names: dict[int, str] = {}
        setting_sql = cell.engine.exclusive_setting_sql
        setting = conn.execute(sa.text(setting_sql)).scalar() if setting_sql else None
        self._exclusive = cell.engine.exclusive_modes(setting)
        self.assumption = cell.engine.lock_assumption(setting)
        self._storage: dict[str, object] = {}
        self._counts: dict[str, int] = {}
        self._sent: dict[str, int] = {}  # statement -> times sent, in first-sent order
        self._capture = False

    def before(self, revision: str) -> None:
        cell, conn = self.cell, self.conn
        tables = self.state.tables()
        if tables:
            metadata = synthetic.reflect(conn, cell.engine, cell.schema, sorted(tables))
            for table in sa.sql.util.sort_tables(metadata.tables.values()):
                if table.name in tables:
                    self._top_up(table)
        self._counts = self._row_counts()
        self._rows = sum(self._counts.values())
        self._storage = self._storages()
        self._names = self._relations()
        self._sent = {}
        self._capture = True
        self.sampler.start()

    def after(self, step: Step) -> None:
        held = self.sampler.stop()
        self._capture = False
        storage = self._storages()
        rewritten = sorted(
            name
            for name, before in self._storage.items()
            if before is not None and name in storage and storage[name] != before
        )
        names = {**self._relations(), **self._names}  # dropped ones keep their old names
        locks = named_locks(held, names, self._exclusive, self._counts)
        state = self.cell.state(self.conn)
        change = self.state.changes_to(state)
        self.state = state
        self.evidence.append(
            RevisionEvidence(
                step.revision,
                "upgrade",
                round(step.seconds, 4),
                change.summary(),
                rows=self._rows,
                locks=locks,
                rewrites=rewritten,
            )
        )
        sql_dir = self.cell.sql_dir / "cost"
        sql_dir.mkdir(parents=True, exist_ok=True)
        index = len(self.evidence)
        (sql_dir / f"{index:04d}_{step.revision}.sql").write_text(
            script_of(self._sent), encoding="utf-8"
        )

    def record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        """SQLAlchemy's before_cursor_execute: keep what the migrating sessions send."""
        if self._capture and conn.connection.dbapi_connection not in self._own():
            text = with_numbered_parameters(statement) if parameters else statement
            self._sent[text] = self._sent.get(text, 0) + 1

    def _own(self) -> list:
        return [self.conn.connection.dbapi_connection, self.sampler.connection]

    def _top_up(self, table: sa.Table) -> None:
        why = fill_to_scale(self.conn, self.cell.engine, table, self.scale, self.ledger)
        if why:
            self.unfilled[table.name] = why

    def _row_counts(self) -> dict[str, int]:
        tables = sorted(self.state.tables())
        if not tables:
            return {}
        return synthetic.row_counts(self.conn, self.cell.engine, self.cell.schema, tables)

    def _relations(self) -> dict[int, str]:
        """The plugin schema's relation ids and names, read while no revision runs."""
        rows = self.conn.execute(
            sa.text(self.cell.engine.relations_sql), {"schema": self.cell.schema}
        )
        return {int(row.id): row.name for row in rows}

    def _storages(self) -> dict[str, object]:
        sql = self.cell.engine.storage_sql
        if sql is None:
            return {}
        rows = self.conn.execute(sa.text(sql), {"schema": self.cell.schema})
        return {row.name: row.storage for row in rows}


def fill_to_scale(conn: sa.Connection, engine, table: sa.Table, scale: int, ledger) -> str:
    """Bulk-load ``table`` up to ``scale`` rows; why it could not be, or "" when it was.

    The bulk load goes through the driver itself (COPY), so a row the table
    refuses (a unique foreign key, one row per parent) raises the driver's own
    error, not SQLAlchemy's: the table is then left as it is, and why is said.
    """
    present = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    missing = scale - present
    if missing <= 0:
        return ""
    refused = (synthetic.Unfillable, sa.exc.DBAPIError, sa.exc.StatementError)
    try:
        columns, rows = synthetic.bulk_rows(conn, engine, table, missing, ledger)
        engine.bulk_load(conn, table, columns, rows)
    except (*refused, conn.dialect.loaded_dbapi.Error) as error:
        return synthetic.first_line(error)
    return ""


@check
def migration_cost(cell, out: CheckOutput) -> None:
    """At ``--scale`` rows per table, each revision's time and locks stay within the policy.

    For each revision: its duration; the strongest lock it took on each
    relation of the plugin schema and for how long (sampled every few
    milliseconds from another session); whether it rewrote a table (its
    storage changed); and whether it held ACCESS EXCLUSIVE on a table with
    rows. The limits live in the policy file's ``[cost]`` table; over a limit
    is a failure, under it is information; with no policy nothing fails.
    """
    scale = cell.scale
    if scale <= 0:
        raise CannotJudge("no --scale was given")
    url = cell.siblings["scale"]
    conn = cell.open(url)
    observer_pid = conn.execute(sa.text(cell.engine.session_id_sql)).scalar_one()
    sampler = LockSampler(cell, url, exclude=(observer_pid,))
    observer = CostObserver(cell, conn, sampler, scale)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", observer.record)
    try:
        try:
            sampler.sample()
        except sa.exc.DBAPIError as error:
            raise unreadable_locks(cell.engine, error) from None
        cell.migrator.upgrade(url, "heads", observer)
    except StepFailed as failure:
        out.find(
            "fails_at_scale",
            f"upgrade of {failure.revision} fails with {scale} rows per table: "
            f"{describe_error(failure.error)}",
            revision=failure.revision,
        )
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", observer.record)
        sampler.close()
        engine = conn.engine
        conn.close()
        engine.dispose()
    out.evidence = observer.evidence
    for table, why in sorted(observer.unfilled.items()):
        out.warn(f"{table} could not be filled to {scale} rows: {why}")
    judge_cost(cell, out, scale, observer.assumption)


def judge_cost(cell, out: CheckOutput, scale: int, assumption: str = "") -> None:
    """Each revision's evidence against the policy's ``[cost]`` limits (none: only reported);
    ``assumption`` says what the lock modes assumed."""
    limits = cell.policy.cost
    for evidence in out.evidence:
        blocked = [lock for lock in evidence.locks if lock.exclusive and lock.rows]
        for lock in blocked:
            over = lock.seconds > limits.get("max_access_exclusive_seconds", float("inf"))
            rewrite = " and rewrote it" if lock.relation in evidence.rewrites else ""
            out.find(
                "exclusive_lock",
                f"{evidence.revision} held {lock.mode} on {lock.relation} ({lock.rows} rows) for "
                f"{lock.seconds:.3f} s{rewrite}"
                + (
                    f", over the policy's {limits['max_access_exclusive_seconds']:g} s"
                    if over
                    else ""
                ),
                revision=evidence.revision,
                detail=assumption,
                blocking=over,
            )
        for lock in evidence.locks:
            if lock.seconds > limits.get("max_lock_seconds", float("inf")) and lock.rows:
                out.find(
                    "lock_time",
                    f"{evidence.revision} held {lock.mode} on {lock.relation} for "
                    f"{lock.seconds:.3f} s, over the policy's {limits['max_lock_seconds']:g} s",
                    revision=evidence.revision,
                )
        if evidence.seconds > limits.get("max_revision_seconds", float("inf")):
            out.find(
                "slow_revision",
                f"{evidence.revision} took {evidence.seconds:.3f} s at {scale} rows per table, "
                f"over the policy's {limits['max_revision_seconds']:g} s",
                revision=evidence.revision,
            )
    slowest = max(out.evidence, key=lambda e: e.seconds, default=None)
    out.covered = (
        f"{len(out.evidence)} revisions at {scale} rows per table"
        + (f"; slowest {slowest.revision} ({slowest.seconds:.3f} s)" if slowest else "")
        + ("" if limits else "; no [cost] limits in the policy, so nothing fails")
        + (f"; {assumption}" if assumption else "")
    )
