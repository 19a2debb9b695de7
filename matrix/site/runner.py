"""The site rehearsal, as a list of small steps: the site's environments, then each target.

:func:`run_site` reads in one screen: hold the reports folder, start every
target's server while the site's environment and the previous releases'
environments are built, and per target (in parallel, each with its own
database): install the previous release plugin by plugin in load order with
its own scripts (:mod:`matrix.site.previous`), then let the site's check
process fill, upgrade, compare and roll back (:mod:`matrix.site.process`).
The reports are written after each target, so a crash keeps what was
gathered. A site whose plugins cannot be installed together is a site-level
failure: every target fails with the conflict, nothing is started.
"""

from __future__ import annotations

import datetime
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import URL

import matrix
from matrix import masking
from matrix.child import Child, Stop, Watch
from matrix.define.targets import Target
from matrix.engines import engine_named
from matrix.errors import HarnessError, ProviderUnavailable
from matrix.install.sources import tree_commit
from matrix.protocol import (
    SITE_PROCESS,
    Fatal,
    Finished,
    PhaseDone,
    ReleaseAt,
    SiteDone,
    SiteMemberSpec,
    SiteSpec,
    Started,
    TargetSpec,
    Window,
)
from matrix.provide import databases
from matrix.results import CheckResult, Status
from matrix.run.frame import (
    Progress,
    Run,
    TargetsOptions,
    Writer,
    finished,
    run_frame,
    start_targets,
)
from matrix.run.target import fatal_of
from matrix.site.catalogue import SITE_CHECK_NAMES
from matrix.site.environment import SiteConflict, SiteEnvironment, SiteMember, prepare_site
from matrix.site.previous import alembic_upgrade
from matrix.site.results import PluginRow, SitePluginInfo, SiteReport, SiteTargetResult
from matrix.site.sitefile import Site


@dataclass(kw_only=True)
class SiteOptions(TargetsOptions):
    """Everything a site run needs, resolved and validated by the command line."""

    site: Site
    reports_dir: Path = Path("reports/site")
    jobs: int = 2
    scale: int = 0


class SiteWriter(Writer, Protocol):
    """How the site run hands its report on (:class:`matrix.site.reports.SiteReportWriter`)."""

    def write(self, report: SiteReport) -> None: ...


def run_site(options: SiteOptions, progress: Progress, writer: SiteWriter) -> SiteReport:
    report = SiteReport.__new__(SiteReport)  # replaced as soon as the run has its id

    def finish() -> None:
        for target in report.targets:
            if target.status == Status.NOT_RUN and not target.reason and not report.failure:
                target.fatal = {"status": "error", "reason": "interrupted"}
                target.settle()
        report.phases["total"] = round(time.perf_counter() - run.started, 3)
        writer.write(report)

    with run_frame(options, writer, progress, finish) as run:
        report = _report(options, run.run_id)
        report.targets = [_pending(t) for t in options.targets]
        done: queue.Queue[SiteTargetResult] = queue.Queue()
        for target in options.targets:
            progress.target(target.id, "waiting")
        start_targets(options.targets, options.jobs, lambda t: SiteTarget(t, run).run(), done)
        try:
            site = _prepare(options, run.work, progress, report)
            run.prepared.set_result(site)
        except SiteConflict as conflict:
            run.prepared.set_exception(conflict)
            report.failure = masking.mask(conflict.message)
            report.conflicts = [c.__dict__ for c in conflict.conflicts]
        except BaseException as error:
            run.prepared.set_exception(error)
            raise
        pending = {t.id for t in options.targets}
        for result in finished(done, pending, run.deadline, key=lambda r: r.id):
            report.targets = [result if t.id == result.id else t for t in report.targets]
            writer.write(report)
        for target in report.targets:
            if target.id in pending:
                target.fatal = {"status": "error", "reason": "the run outlived --run-timeout"}
                target.settle()
    return report


def _report(options: SiteOptions, run_id: str) -> SiteReport:
    site = options.site
    return SiteReport(
        site={"name": site.name, "path": str(site.path), "sha256": site.sha256},
        run_id=run_id,
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        git_commit=tree_commit(site.path.parent),
        matrix_file=str(options.matrix_file),
        scale=options.scale,
        harness={"peek-plugin-matrix": matrix.__version__},
        policy=options.policy.to_dict(),
    )


def _prepare(
    options: SiteOptions, work: Path, progress: Progress, report: SiteReport
) -> SiteEnvironment:
    """The site's environment and the previous releases', probed; the report learns them."""
    started = time.perf_counter()
    engines = sorted({t.engine for t in options.targets})
    site = prepare_site(
        options.site,
        cache=options.cache_dir,
        work=work,
        drivers=tuple(engine_named(e).driver_requirement for e in engines),
        engine=engines[0],
        log=lambda message: progress.log("site", message),
    )
    report.phases.update(prepare=round(time.perf_counter() - started, 3), **site.seconds)
    report.environment = site.environment.versions
    versions = site.environment.versions
    report.harness.update({k: versions[k] for k in ("SQLAlchemy", "alembic") if k in versions})
    report.plugins = [_info(member) for member in site.members]
    for member in site.members:
        since = (
            f"upgrades from {member.previous.plugin.version} ({len(member.previous.revisions)} "
            f"revisions)"
            if member.previous
            else f"installed fresh: {member.fresh}"
        )
        progress.log(
            "site",
            f"{member.name} {member.plugin.version}: {len(member.revisions)} revisions, schema "
            f"{member.schema}; {since}",
        )
    env = "reused" if site.environment.reused else "created"
    progress.log("site", f"the site's environment {env} in {site.environment.seconds:.1f} s")
    return site


def _info(member: SiteMember) -> SitePluginInfo:
    plugin, previous = member.plugin, member.previous
    return SitePluginInfo(
        name=member.name,
        spec=member.entry.release.spec,
        version=plugin.version,
        schema=member.schema,
        head=member.head,
        revisions=len(member.revisions),
        source=plugin.source,
        wheel_sha256=plugin.wheel_sha256,
        distribution=plugin.distribution,
        previous={
            "spec": member.entry.previous.spec,
            "version": previous.plugin.version,
            "head": previous.head,
            "revisions": len(previous.revisions),
            "wheel_sha256": previous.plugin.wheel_sha256,
            "environment": {
                k: previous.environment[k]
                for k in ("SQLAlchemy", "alembic")
                if k in previous.environment
            },
        }
        if previous
        else None,
        fresh=member.fresh,
    )


def _pending(target: Target) -> SiteTargetResult:
    return SiteTargetResult(target.id, target.engine, target.label, target.required)


class SiteTarget:
    """One target: a server, one database for the whole site, the site's check process."""

    def __init__(self, target: Target, run: Run[SiteEnvironment]) -> None:
        self.target = target
        self.run_ = run
        self.options = run.options
        self.progress = run.progress
        self.work = run.work
        self.result = _pending(target)

    def run(self) -> SiteTargetResult:
        started = time.perf_counter()
        try:
            self._run(started)
        except ProviderUnavailable as error:
            self.result.reason = masking.mask(str(error))
            self.progress.log(self.target.id, f"not_run: {self.result.reason}")
        except SiteConflict as conflict:
            self.result.fatal = {"status": "failed", "reason": masking.mask(conflict.message)}
        except HarnessError as error:
            self._error(str(error))
        except Exception as error:  # noqa: BLE001 - one target's crash must not end the run
            self._error(f"{type(error).__name__}: {error}")
        self.result.duration_s = round(time.perf_counter() - started, 3)
        self.result.settle()
        self.progress.target(self.target.id, "done", status=str(self.result.status))
        return self.result

    def _error(self, reason: str) -> None:
        reason = masking.mask(reason)
        self.result.fatal = self.result.fatal or {"status": "error", "reason": reason}
        self.progress.log(self.target.id, f"error: {reason.splitlines()[0]}")

    def _run(self, started: float) -> None:
        target, result = self.target, self.result
        prepared = self.run_.prepared
        if prepared.done() and prepared.exception() is not None:
            prepared.result()  # the site failed as a whole: start no server for it
        provider, reason = self.run_.providers.choose(target)
        if provider is None:
            raise ProviderUnavailable(reason)
        result.provider = provider.name
        self.progress.target(target.id, "starting", provider=provider.name)
        with provider.database(target, lambda m: self.progress.log(target.id, m)) as db:
            result.phases["start"] = round(time.perf_counter() - started, 3)
            site = prepared.result()  # raises the conflict, or the preparing's error
            engine = engine_named(target.engine, target.flavour)
            url = engine.url(db.url)
            self._database(url)
            info = databases.server_info(url)
            result.server_version, result.postgis_version = (
                info.server_version,
                info.postgis_version,
            )
            wrong = engine.wrong_server(target.version, target.postgis, info)
            if wrong:
                raise ProviderUnavailable(
                    f"The server given for {target.id} is another version: {wrong}.",
                    f"Serve {target.label}, or leave it out with --targets.",
                )
            result.reached = True
            self.progress.target(target.id, "running", provider=provider.name)
            fresh = f"{url.database}_fresh"
            try:
                self._database(
                    databases.create_database(
                        url, fresh, template=url.database if engine.clones_databases else None
                    )
                )
                clock = time.perf_counter()
                members = self._install_previous(site, url)
                result.phases["install"] = round(time.perf_counter() - clock, 3)
                self._rehearse(site, url, members, fresh)
            finally:
                databases.drop_siblings(url)

    def _database(self, url: URL) -> None:
        databases.prepare_database(
            url,
            postgis=bool(self.target.postgis),
            statement_timeout_s=self.options.check_timeout_s,
            lock_timeout_s=self.options.lock_timeout_s,
        )

    def _install_previous(self, site: SiteEnvironment, url: URL) -> list[SiteMemberSpec]:
        """Each plugin at the release the site runs today, in load order, by its own scripts.

        A plugin installed fresh (the site file says why), or whose previous
        release fails to install here, gets this release's scripts instead,
        and the report says so.
        """
        members = []
        harness = site.path[0]
        roots = [p for p in site.path if p != harness]
        for member in site.members:
            fresh = member.fresh
            previous = member.previous
            ini = self.work / f"{self.target.id}-{member.name}.ini"
            if previous is not None:
                installed = alembic_upgrade(
                    previous.python,
                    previous.import_roots,
                    previous.plugin.alembic_dir,
                    url,
                    ini,
                    self.options.check_timeout_s,
                )
                how = (
                    f"installed in {installed.seconds:.1f} s"
                    if installed.error is None
                    else f"failed: {installed.error}"
                )
                self.progress.log(self.target.id, f"{member.name} {previous.plugin.version} {how}")
                if installed.error is not None:
                    at = f" at {installed.revision}" if installed.revision else ""
                    fresh = (
                        f"its previous release {previous.plugin.version} fails to install "
                        f"here{at}: {installed.error}"
                    )
                    previous = None
            if previous is None:
                installed = alembic_upgrade(
                    site.environment.python,
                    roots,
                    member.plugin.alembic_dir,
                    url,
                    ini,
                    self.options.check_timeout_s,
                )
                if installed.error is not None:
                    raise HarnessError(
                        f"{member.name} cannot be installed fresh at this release either"
                        f"{' at ' + installed.revision if installed.revision else ''}: "
                        f"{installed.error}",
                        "Run python -m matrix run --plugin on it to see which check fails.",
                    )
            members.append(
                SiteMemberSpec(
                    plugin=member.plugin,
                    schema=member.schema,
                    head=member.head,
                    previous=ReleaseAt(previous.plugin.version, previous.head)
                    if previous
                    else None,
                    fresh=fresh,
                )
            )
        return members

    def _rehearse(
        self, site: SiteEnvironment, url: URL, members: list[SiteMemberSpec], fresh: str
    ) -> None:
        """The site's check process: phases and checks as they come, each within its time."""
        options, target = self.options, self.target
        spec = SiteSpec(
            on=TargetSpec(
                engine=target.engine,
                flavour=target.flavour,
                target=target.id,
                sql_dir=options.reports_dir / "sql" / target.id,
                statement_timeout_s=options.check_timeout_s,
                lock_timeout_s=options.lock_timeout_s,
                policy=options.policy.to_dict(),
            ),
            members=tuple(members),
            fresh_database=fresh,
            scale=options.scale,
        )
        rendered = url.render_as_string(hide_password=False)
        child = Child(site.environment.python, [], spec, rendered, site.path, SITE_PROCESS)
        self.read(child, members)

    def read(self, child: Child, members: list[SiteMemberSpec]) -> None:
        """Read the site's check process within each step's time and the run's; then kill it."""
        options, target, result = self.options, self.target, self.result
        checks: dict[str, dict[str, CheckResult]] = {}
        window = Window(None, {})
        stopped = ""
        ended = False
        watch = Watch(child, self.run_.deadline, step_timeout_s=options.check_timeout_s)
        try:
            for event in watch.events():
                if isinstance(event, Started):
                    self.progress.check(target.id, event.name, "running")
                elif isinstance(event, PhaseDone):
                    result.phases[event.name] = event.seconds
                elif isinstance(event, Window):
                    window = event
                elif isinstance(event, SiteDone):
                    checks[event.check] = event.plugins
                    worst = _worst([c.status for c in event.plugins.values()])
                    self.progress.check(target.id, event.check, str(worst))
                elif isinstance(event, Fatal):
                    result.fatal = fatal_of(event.cause)
                    stopped = result.fatal["reason"]
                elif isinstance(event, Finished):
                    ended = True
        finally:
            child.kill()
        if watch.stopped == Stop.STEP_TIMEOUT:
            stopped = f"{watch.running} timed out after {options.check_timeout_s:g} s"
        elif watch.stopped == Stop.DEADLINE:
            stopped = f"the run's timeout of {options.run_timeout_s:g} s was reached"
        if not ended and not stopped:
            stopped = f"the site's check process ended (exit code {child.process.returncode})"
            result.fatal = {"status": "error", "reason": f"{stopped}: {child.tail()[-500:]}"}
        elif stopped and not result.fatal:
            result.fatal = {"status": "error", "reason": masking.mask(stopped)}
        result.window_s = window.total
        for member in members:
            name = member.plugin.package
            timing = window.plugins.get(name)
            result.plugins.append(
                PluginRow(
                    name=name,
                    fresh=member.fresh,
                    checks=[
                        checks.get(check, {}).get(name)
                        or CheckResult(check, Status.NOT_RUN, reason=stopped or "not run")
                        for check in SITE_CHECK_NAMES
                    ],
                    timeline=list(timing.timeline) if timing else [],
                    window_s=timing.seconds if timing else None,
                )
            )


def _worst(statuses: list[Status]) -> Status:
    for status in (Status.ERROR, Status.FAILED, Status.NOT_RUN, Status.WAIVED):
        if status in statuses:
            return status
    return Status.PASSED
