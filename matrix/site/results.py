"""Typed results of a site rehearsal: plugins as rows, targets as columns.

The pieces are the harness's own (:class:`~matrix.results.Status`,
:class:`~matrix.results.CheckResult`, :class:`~matrix.results.Finding`,
:class:`~matrix.results.RevisionEvidence`); what is new is the shape: per
target, one row per plugin holding its site checks. Statuses follow from the
checks by one rule (:func:`plugin_status`, :func:`site_target_status`), which
the runner and the site gate share. Stdlib only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from matrix.results import CheckResult, RevisionEvidence, Status
from matrix.results.benchmark import known_fields
from matrix.site.catalogue import SITE_BY_NAME, SITE_CHECK_NAMES

SITE_REPORT_SCHEMA_VERSION = 1
KIND = "site"
WORST_FIRST = (Status.ERROR, Status.FAILED, Status.NOT_RUN, Status.WAIVED)


@dataclass
class PluginRow:
    """One plugin of the site on one target: its site checks and its upgrade's timeline."""

    name: str
    status: Status = Status.NOT_RUN
    reason: str = ""
    fresh: str | None = None  # installed fresh at this release, and why
    checks: list[CheckResult] = field(default_factory=list)
    timeline: list[RevisionEvidence] = field(default_factory=list)  # its upgrade, revision by rev
    window_s: float | None = None  # its upgrade's time, the harness's observation left out

    def settle(self) -> None:
        self.status, reason = plugin_status(self.checks, self.fresh)
        if self.status != Status.PASSED or not self.reason:
            self.reason = reason

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PluginRow:
        values = known_fields(cls, data)
        values["status"] = Status(values["status"])
        values["checks"] = [CheckResult.from_dict(c) for c in data.get("checks", [])]
        values["timeline"] = [RevisionEvidence.from_dict(e) for e in data.get("timeline", [])]
        return cls(**values)


def plugin_status(checks: list[CheckResult], fresh: str | None) -> tuple[Status, str]:
    """A plugin's status from its site checks.

    Every site check must be there; an error or a failure wins; a check that
    could not judge leaves the plugin ``not_run``, except an upgrade-only
    check of a plugin installed fresh (it has no upgrade to judge).
    """
    by_name = {c.name: c for c in checks}
    missing = [n for n in SITE_CHECK_NAMES if n not in by_name]
    if missing:
        return Status.ERROR, f"site checks missing from the result: {', '.join(missing)}"
    for status in (Status.ERROR, Status.FAILED):
        hit = [c for c in checks if c.status == status]
        if hit:
            return status, f"{hit[0].name}: {hit[0].reason or status}"
    unjudged = [
        c
        for c in checks
        if c.status == Status.NOT_RUN
        and not (fresh and SITE_BY_NAME.get(c.name) and SITE_BY_NAME[c.name].upgrade_only)
    ]
    if unjudged:
        return Status.NOT_RUN, f"{unjudged[0].name} not run: {unjudged[0].reason}"
    if any(c.status == Status.WAIVED for c in checks):
        return Status.WAIVED, "passed with acknowledged findings"
    return Status.PASSED, f"installed fresh: {fresh}" if fresh else ""


@dataclass
class SiteTargetResult:
    """The whole site on one target: one database, every plugin."""

    id: str
    engine: str
    label: str
    required: bool
    status: Status = Status.NOT_RUN
    reason: str = ""
    provider: str | None = None
    server_version: str | None = None
    postgis_version: str | None = None
    reached: bool = False
    fatal: dict[str, str] | None = None
    duration_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    window_s: float | None = None  # the whole site's upgrade: the maintenance window
    plugins: list[PluginRow] = field(default_factory=list)

    def settle(self) -> None:
        for row in self.plugins:
            row.settle()
        self.status, reason = site_target_status(self)
        if self.fatal or self.status != Status.PASSED:
            self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteTargetResult:
        values = known_fields(cls, data)
        values["status"] = Status(values["status"])
        values["plugins"] = [PluginRow.from_dict(p) for p in data.get("plugins", [])]
        return cls(**values)


def site_target_status(target: SiteTargetResult) -> tuple[Status, str]:
    """A target's status from its plugins' rows (recomputed, never read back)."""
    if target.fatal:
        status = target.fatal.get("status")
        if status not in (Status.FAILED, Status.ERROR):
            return Status.ERROR, f"a fatal cause stored as {status!r}; only failed or error can be"
        return Status(status), target.fatal.get("reason") or str(status)
    if not target.reached:
        return Status.NOT_RUN, target.reason or "no live server was reached"
    if not target.plugins:
        return Status.ERROR, "no plugin results"
    rows = [(row, *plugin_status(row.checks, row.fresh)) for row in target.plugins]
    for status in WORST_FIRST:
        hit = [(row, why) for row, found, why in rows if found == status]
        if hit and status == Status.WAIVED:
            return status, "passed with acknowledged findings"
        if hit:
            return status, f"{hit[0][0].name}: {hit[0][1]}"
    return Status.PASSED, ""


@dataclass
class SitePluginInfo:
    """Which build of which plugin the site holds, and what it upgrades from."""

    name: str
    spec: str
    version: str
    schema: str
    head: str
    revisions: int
    source: str
    wheel_sha256: str | None = None
    distribution: str | None = None
    previous: dict[str, Any] | None = None  # spec, version, head, revisions, wheel_sha256
    fresh: str | None = None


@dataclass
class SiteReport:
    """The whole rehearsal: ``compat.json`` with ``kind = "site"``."""

    site: dict[str, str]  # name, path, sha256
    run_id: str
    started_at: str
    git_commit: str | None
    matrix_file: str
    scale: int = 0
    plugins: list[SitePluginInfo] = field(default_factory=list)
    targets: list[SiteTargetResult] = field(default_factory=list)
    failure: str | None = None  # a site-level failure (requirements that conflict)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # the site's distributions
    harness: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    kind: str = KIND
    schema_version: int = SITE_REPORT_SCHEMA_VERSION
    allowed_missing: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.failure:
            return Status.FAILED
        if not self.targets:
            return Status.NOT_RUN
        for status in WORST_FIRST:
            if any(t.status == status for t in self.targets):
                return status
        return Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteReport:
        values = known_fields(cls, data)
        values["plugins"] = [
            SitePluginInfo(**known_fields(SitePluginInfo, p)) for p in data.get("plugins", [])
        ]
        values["targets"] = [SiteTargetResult.from_dict(t) for t in data.get("targets", [])]
        return cls(**values)
