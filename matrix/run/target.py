"""One target of a run: a server, a database, the check process, a result.

A target never raises: whatever happens in it (a server that never comes
up, a check process that dies, a check that outlives its timeout) becomes
that target's result. :meth:`TargetRun.read` is the supervision of the check
process: it reads :mod:`matrix.protocol` events with the check's timeout
and the run's deadline, and turns what the process did or failed to say
into one result per requested check.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time

import sqlalchemy as sa
from sqlalchemy.engine import URL

from matrix import masking
from matrix.check import lint
from matrix.child import Child, Stop, Watch
from matrix.define.targets import Target
from matrix.engines import engine_named, engine_of, error_text
from matrix.errors import HarnessError, ProviderUnavailable
from matrix.install.prepare import PreparedPlugin
from matrix.protocol import (
    BENCH_PROCESS,
    CHECK_PROCESS,
    Benchmarked,
    Cause,
    CellSpec,
    Done,
    Fatal,
    PreviousRelease,
    Ready,
    Seeded,
    SeedSpec,
    Started,
    TargetSpec,
    WaiversUsed,
)
from matrix.provide import databases
from matrix.results import CheckResult, Status, TargetResult
from matrix.run.frame import Run


class TargetRun:
    """One target: a server, a database, a check process, a result."""

    def __init__(
        self,
        target: Target,
        run: Run[PreparedPlugin],
        slots: threading.BoundedSemaphore | None = None,
    ) -> None:
        self.target = target
        self.slots = slots  # the run's -j: taken for the checks, never for the server's start
        self.run_ = run
        self.options = run.options
        self.progress = run.progress
        self.result = pending(target)
        self.waivers_used: set[int] = set()
        self.stage = "choosing a provider"  # how far it got, for an interrupted run's report

    def run(self) -> tuple[TargetResult, set[int]]:
        started = time.perf_counter()
        try:
            self._run(started)
        except ProviderUnavailable as error:
            self._offline(masking.mask(str(error)))
        except HarnessError as error:
            self._error(masking.mask(str(error)))
        except Exception as error:  # noqa: BLE001 - one target's crash must not end the run
            self._error(masking.mask(f"{type(error).__name__}: {error}"))
        self.result.duration_s = round(time.perf_counter() - started, 3)
        self.result.settle()
        self.progress.target(self.target.id, "done", status=str(self.result.status))
        return self.result, self.waivers_used

    def abandoned(self, reason: str) -> tuple[TargetResult, set[int]]:
        """What this target gathered so far, as an error: its thread is no longer waited for."""
        result = copy.deepcopy(self.result)
        result.fatal = {"status": "error", "reason": masking.mask(reason)}
        done = {check.name for check in result.checks}
        missing = tuple(name for name in self.options.checks if name not in done)
        result.checks += not_run(missing, "the target was abandoned before this check")
        result.settle()
        self.progress.target(self.target.id, "done", status=str(result.status))
        return result, set(self.waivers_used)

    def _run(self, started: float) -> None:
        target, result = self.target, self.result
        provider, reason = self.run_.providers.choose(target)
        if provider is None:
            raise ProviderUnavailable(reason)
        result.provider = provider.name
        self.progress.target(target.id, "starting", provider=provider.name)
        self.stage = f"starting its server ({provider.name})"
        with provider.database(target, lambda m: self.progress.log(target.id, m)) as db:
            result.ready_seconds = round(db.ready_seconds, 3)
            self.progress.target(target.id, "ready")
            for note in db.notes:  # how the server came to be (image, network), its memory
                self.progress.log(target.id, note)
            result.phases["start"] = round(time.perf_counter() - started, 3)
            # The database is prepared (PostGIS) and the server identified while the
            # plugin may still be being prepared: neither needs the plugin.
            self.stage = "preparing its database"
            databases.prepare_database(
                db.url,
                postgis=bool(target.postgis),
                statement_timeout_s=self.options.check_timeout_s,
                lock_timeout_s=self.options.lock_timeout_s,
            )
            info = databases.server_info(db.url)
            result.server_version, result.postgis_version = (
                info.server_version,
                info.postgis_version,
            )
            engine = engine_named(target.engine, target.flavour)
            wrong = engine.wrong_server(target.version, target.postgis, info)
            if wrong:
                raise ProviderUnavailable(
                    f"The server given for {target.id} is another version: {wrong}.",
                    f"Serve {target.label} (its image, MATRIX_PG_ROOT, or "
                    f"{target.settings.url_env}), or leave it out with --targets.",
                )
            self.stage = "waiting for the plugin, its server ready"
            prepared = self._plugin()
            if prepared is None:
                return
            result.reached = True
            self.stage = "waiting for a slot for its checks (-j)"
            with self.slots or contextlib.nullcontext():
                self.progress.target(target.id, "running", provider=provider.name)
                checks_started = time.perf_counter()
                try:
                    release = self._seed(prepared, db.url)
                    self._checks(prepared, db.url, release)
                    lint.attach(self.result, self.options.reports_dir / "sql" / target.id, target)
                finally:
                    databases.drop_siblings(db.url)
                result.phases["checks"] = round(time.perf_counter() - checks_started, 3)
            cleanup_started = time.perf_counter()
            self.stage = "cleaning up, its checks done"
        result.phases["cleanup"] = round(time.perf_counter() - cleanup_started, 3)

    def _plugin(self) -> PreparedPlugin | None:
        """The prepared plugin; None (the target stays pending) when preparing failed."""
        try:
            prepared = self.run_.prepared.result()
        except BaseException:  # noqa: BLE001 - the main thread reports it
            return None
        failure = prepared.load_failure(self.target.engine)
        if failure:
            self.result.fatal = {"status": "failed", "reason": failure}
            self.result.checks = not_run(self.options.checks, "the plugin cannot be loaded")
            return None
        return prepared

    def _offline(self, reason: str) -> None:
        """No server: the target is not_run, and the checks that need none still run."""
        self.result.status, self.result.reason = Status.NOT_RUN, reason
        self.progress.log(self.target.id, f"not_run: {reason}")
        prepared = self._plugin()
        if prepared is None or self.result.checks:
            return
        try:
            with self.slots or contextlib.nullcontext():
                self._checks(prepared, None)
        except Exception as error:  # noqa: BLE001 - recorded, never raised: no deadlock
            self.result.checks = self.result.checks or not_run(
                self.options.checks, f"the check process failed: {error}"
            )

    def _error(self, reason: str) -> None:
        self.result.fatal = self.result.fatal or {"status": "error", "reason": reason}
        self.progress.log(self.target.id, f"error: {reason.splitlines()[0]}")
        if not self.result.checks:
            self.result.checks = not_run(self.options.checks, "the target errored before")

    def _where(self, sql_dir) -> TargetSpec:
        return TargetSpec(
            engine=self.target.engine,
            flavour=self.target.flavour,
            target=self.target.id,
            sql_dir=sql_dir,
            statement_timeout_s=self.options.check_timeout_s,
            lock_timeout_s=self.options.lock_timeout_s,
            policy=self.options.policy.to_dict(),
        )

    def _seed(self, prepared: PreparedPlugin, url: URL | None) -> PreviousRelease:
        """The previous release at its head, with rows, in ``<database>_release``.

        Its own check process (its plugin, its environment) runs its
        migrations and writes the rows; what it wrote comes back as a ledger
        file for ``upgrade_from_release``.
        """
        previous = prepared.previous
        if previous is None:
            return PreviousRelease(prepared.previous_reason)
        failure = previous.load_failure(self.target.engine)
        if failure:
            return PreviousRelease(f"the previous release {previous.plugin.version}: {failure}")
        known = PreviousRelease(
            alembic_dir=previous.plugin.alembic_dir,
            version=previous.plugin.version,
            head=",".join(previous.heads),
        )
        if url is None:
            return known
        engine = engine_of(url)
        name = f"{url.database}_release"
        template = url.database if engine.clones_databases else None
        release = databases.create_database(url, name, template=template)
        databases.prepare_database(
            release,
            postgis=False,
            statement_timeout_s=self.options.check_timeout_s,
            lock_timeout_s=self.options.lock_timeout_s,
        )
        ledger = self.run_.work / f"{self.target.id}-release-ledger.json"
        spec = SeedSpec(previous.plugin, self._where(ledger.parent), ledger)
        self.progress.log(self.target.id, f"bringing {name} to release {previous.plugin.version}")
        self.stage = f"bringing {name} to the previous release"
        rendered = release.render_as_string(hide_password=False)
        child = Child(
            previous.environment.python,
            ["--seed"],
            spec,
            rendered,
            previous.child_path,
            forks=previous.forks,
        )
        seeded: Seeded | None = None
        watch = Watch(child, deadline=time.monotonic() + self.options.check_timeout_s)
        try:
            for event in watch.events():
                if isinstance(event, Seeded):
                    seeded = event
        finally:
            child.kill()
        if watch.stopped:
            error = f"timed out after {self.options.check_timeout_s:g} s"
        elif seeded is None:
            error = f"its check process ended: {child.tail()[-300:]}"
        else:
            error = seeded.error or ""
        return PreviousRelease(
            alembic_dir=known.alembic_dir,
            version=known.version,
            head=known.head,
            database=name,
            ledger=ledger,
            seed_error=error,
        )

    def _checks(
        self, prepared: PreparedPlugin, url: URL | None, previous: PreviousRelease | None = None
    ) -> None:
        """Run the check process (with the benchmark after the checks, when asked)."""
        options = self.options
        previous = previous if previous is not None else self._seed(prepared, None)
        self.stage = "starting its check process"
        spec = CellSpec(
            plugin=prepared.plugin,
            on=self._where(options.reports_dir / "sql" / self.target.id),
            checks=tuple(options.checks),
            scale=options.scale,
            previous=previous,
            benchmark=options.benchmark,
        )
        rendered = url.render_as_string(hide_password=False) if url is not None else None
        module = BENCH_PROCESS if options.benchmark is not None else CHECK_PROCESS
        child = Child(
            prepared.environment.python,
            [],
            spec,
            rendered,
            prepared.child_path,
            module,
            forks=prepared.forks,
        )
        self.read(child, url)

    def read(self, child: Child, url: URL | None) -> None:
        """Read the check process, watching every check's time and the run's; then kill it.

        Every requested check ends with a result: the one it reported, an
        error for the one it was running when it died or ran out of time,
        ``not_run`` with the reason for those it never reached. A process
        that ends without its last word (the waivers it used) is an error.
        """
        target, options = self.target, self.options
        reported: dict[str, CheckResult] = {}
        stopped = ""
        finished = False
        watch = Watch(child, self.run_.deadline, step_timeout_s=options.check_timeout_s)
        try:
            for event in watch.events():
                if isinstance(event, Started):
                    self.stage = f"running {event.name}"
                    self.progress.check(target.id, event.name, "running")
                elif isinstance(event, Done):
                    reported[event.result.name] = event.result
                    self.progress.check(target.id, event.result.name, str(event.result.status))
                elif isinstance(event, Ready):
                    self.progress.log(target.id, f"schema {event.schema}")
                elif isinstance(event, WaiversUsed):  # its last word after the checks
                    self.waivers_used = set(event.indexes)
                    finished = True
                elif isinstance(event, Benchmarked):  # the measurement ends the "benchmark" step
                    self.result.benchmark = event.result
                elif isinstance(event, Fatal):
                    self.result.fatal = fatal_of(event.cause)
                    stopped = self.result.fatal["reason"].split(":")[0]
        finally:
            child.kill()
        running = watch.running
        if watch.stopped == Stop.STEP_TIMEOUT:
            stopped = self._stalled(running, url, options.check_timeout_s)
            reported[running] = CheckResult(running, Status.ERROR, reason=stopped)
            stopped = f"the check process was stopped when {running} timed out"
        elif watch.stopped == Stop.DEADLINE:
            stopped = f"the run's timeout of {options.run_timeout_s:g} s was reached"
            if running:
                reported[running] = CheckResult(running, Status.ERROR, reason=f"stopped: {stopped}")
        elif running and running not in reported and not stopped:
            reported[running] = CheckResult(
                running,
                Status.ERROR,
                reason=f"the check process ended (exit code {child.process.returncode}) "
                "while this check ran",
                detail=child.tail(),
            )
            stopped = f"the check process ended during {running}"
        missing = [name for name in options.checks if name not in reported]
        if not stopped and not self.result.fatal and (missing or not finished):
            # It died before a check or between two, or after them without saying
            # which waivers it used (they would be listed as stale): an error.
            when = f"before {missing[0]}" if missing else "after its checks"
            code = child.process.returncode
            stopped = f"the check process ended (exit code {code}) {when}"
            self.result.fatal = {"status": "error", "reason": f"{stopped}: {child.tail()[-500:]}"}
        if "benchmark" in reported:  # started, never finished: the measurement is missing
            crashed = reported["benchmark"]
            self.result.fatal = self.result.fatal or {
                "status": "error",
                "reason": f"the benchmark did not finish: {crashed.reason}",
            }
        self.result.checks = [
            reported.get(name) or CheckResult(name, Status.NOT_RUN, reason=stopped or "not run")
            for name in options.checks
        ]

    def _stalled(self, check: str, url: URL | None, timeout: float) -> str:
        """What the database was doing when ``check`` ran out of time.

        A server that cannot say (a login without the permission, a server
        without the view: Babelfish has no ``sys.dm_exec_requests``) is said
        to be unread, never to have run nothing.
        """
        try:
            running = _active_statements(url) if url is not None else []
        except sa.exc.DBAPIError as error:
            unread = f"; what the database was running could not be read: {error_text(error)}"
            return masking.mask(f"timed out after {timeout:g} s{unread}")
        what = "; ".join(
            f"session {r['session']} {r['state']} {r['seconds']:.0f} s"
            + (f" waiting {r['waiting']}" if r.get("waiting") else "")
            + f": {' '.join(str(r['statement']).split())[:300]}"
            for r in running
        )
        return masking.mask(
            f"timed out after {timeout:g} s"
            + (f"; the database was running: {what}" if what else "; no statement was running")
        )


def pending(target: Target) -> TargetResult:
    return TargetResult(target.id, target.engine, target.label, target.required)


def fatal_of(cause: Cause) -> dict[str, str]:
    """A target's fatal status from the check process's first cause.

    The plugin's own code failing is a verdict on the plugin (``failed``); an
    error with nothing of the plugin on the stack is the harness's (``error``).
    """
    where = f" at {cause.where}" if cause.where else ""
    if cause.kind == "harness":
        return {"status": "error", "reason": f"the harness failed{where}: {cause.error}"}
    return {"status": "failed", "reason": f"the plugin cannot be loaded{where}: {cause.error}"}


def not_run(names: tuple[str, ...], reason: str) -> list[CheckResult]:
    return [CheckResult(name, Status.NOT_RUN, reason=reason) for name in names]


def _active_statements(url: URL) -> list[dict]:
    engine = engine_of(url)
    found = []
    sa_engine = databases.connect_engine(url.set(database=engine.maintenance_database))
    try:
        with sa_engine.connect() as conn:
            for name in databases.family_of(conn, url):
                rows = conn.execute(sa.text(engine.active_statements_sql), {"database": name})
                found += [dict(row._mapping) for row in rows]
    finally:
        sa_engine.dispose()
    return found
