"""Typed results: what each check, target and run found.

These dataclasses are the one shape every report is written from (JSON,
Markdown, JUnit, HTML) and the one the release gate reads back. Status
values are strings so that the JSON stays readable by anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

REPORT_SCHEMA_VERSION = 1


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    NOT_RUN = "not_run"


@dataclass
class CheckResult:
    """One check on one target. ``detail`` says why when it did not pass."""

    name: str
    status: Status
    duration_s: float = 0.0
    detail: str = ""
    revision: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**{**_known(cls, data), "status": Status(data["status"])})


@dataclass
class TargetResult:
    """Everything gathered about one target of the matrix.

    A target is ``passed`` only when a live server ran every check and each
    passed; a target that no server served is ``not_run``, whatever its
    offline checks said.
    """

    id: str
    engine: str
    label: str
    required: bool
    status: Status = Status.NOT_RUN
    reason: str = ""
    provider: str | None = None
    server_version: str | None = None
    postgis_version: str | None = None
    ready_seconds: float | None = None
    duration_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    benchmark: dict[str, Any] | None = None

    def settle(self) -> None:
        """Derive the target's status from its checks, unless already decided."""
        if self.status in (Status.ERROR, Status.NOT_RUN) and self.reason:
            return
        statuses = {check.status for check in self.checks}
        if not self.checks:
            self.status = Status.NOT_RUN
        elif Status.ERROR in statuses:
            self.status = Status.ERROR
        elif Status.FAILED in statuses:
            self.status = Status.FAILED
        elif Status.NOT_RUN in statuses:
            self.status = Status.FAILED
            self.reason = self.reason or "some checks did not run"
        else:
            self.status = Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetResult:
        values = _known(cls, data)
        values["status"] = Status(values["status"])
        values["checks"] = [CheckResult.from_dict(c) for c in data.get("checks", [])]
        return cls(**values)


@dataclass
class PluginInfo:
    """Which build of which plugin the results are about."""

    name: str
    version: str
    source: str
    wheel: str | None = None
    wheel_sha256: str | None = None


@dataclass
class RunReport:
    """The whole run: ``compat.json``."""

    plugin: PluginInfo
    git_commit: str | None
    run_id: str
    started_at: str
    matrix_file: str
    targets: list[TargetResult] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    schema_version: int = REPORT_SCHEMA_VERSION
    allowed_missing: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        """``passed`` only when every target in the run passed."""
        if not self.targets:
            return Status.NOT_RUN
        order = [Status.ERROR, Status.FAILED, Status.NOT_RUN]
        for status in order:
            if any(t.status == status for t in self.targets):
                return status
        return Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        values = _known(cls, data)
        values["plugin"] = PluginInfo(**_known(PluginInfo, data["plugin"]))
        values["targets"] = [TargetResult.from_dict(t) for t in data.get("targets", [])]
        return cls(**values)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
