"""Typed results: what each check, target and run found.

These dataclasses are the one shape every report is written from (JSON,
Markdown, JUnit, HTML) and the one the release gate reads back and
re-verifies. Stdlib only. Status values are strings so that the JSON stays
readable by anything.

A check's status follows from its findings: a blocking finding that no
policy entry acknowledges fails it; blocking findings that are all
acknowledged make it ``waived`` (never ``passed``); a check that could not
judge is ``not_run`` with the reason. A target's status follows from its
checks in the same way (:meth:`TargetResult.settle`), and the gate recomputes
it rather than trusting the stored value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from matrix.catalogue import BY_NAME
from matrix.results.benchmark import (
    BenchmarkDocument,
    BenchmarkResult,
    TargetBenchmark,
    known_fields,
)

REPORT_SCHEMA_VERSION = 3  # 3: plugin.source is the plugin's provenance


class Status(StrEnum):
    PASSED = "passed"
    WAIVED = "waived"  # passed except for findings the plugin's policy acknowledges
    FAILED = "failed"
    ERROR = "error"
    NOT_RUN = "not_run"

    @property
    def symbol(self) -> str:
        """The one mark every report shows for this status."""
        return _SYMBOLS[self]


_SYMBOLS = {
    Status.PASSED: "✅",
    Status.WAIVED: "☑️",
    Status.FAILED: "❌",
    Status.ERROR: "💥",
    Status.NOT_RUN: "⏸️",
}


# Heads the code and SQL a finding's detail carries: ``--- upgrade() of R ---``.
CODE_MARK = "--- "


@dataclass
class Finding:
    """One thing a check found, blamed on a revision where one is to blame.

    ``blocking`` findings fail the check unless ``waived`` holds the reason a
    policy entry gave; the others are notes shown beside the verdict.
    """

    kind: str
    message: str
    revision: str | None = None
    detail: str = ""
    blocking: bool = True
    waived: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**known_fields(cls, data))


@dataclass
class LockHeld:
    """The strongest lock a revision took on one relation, and for how long."""

    relation: str
    mode: str
    seconds: float
    rows: int | None = None
    exclusive: bool = False  # the mode blocks reads and writes alike (ACCESS EXCLUSIVE, Sch-M)


@dataclass
class RevisionEvidence:
    """What one revision did on the way through a walk, and what it cost."""

    revision: str
    action: str  # upgrade | downgrade
    seconds: float
    changes: list[str] = field(default_factory=list)
    rows: int | None = None  # rows in the schema's tables before the revision (at --scale)
    locks: list[LockHeld] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)  # tables whose storage was rewritten
    lint: list[str] = field(default_factory=list)  # squawk's rule hits on its SQL

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RevisionEvidence:
        values = known_fields(cls, data)
        values["locks"] = [
            LockHeld(**known_fields(LockHeld, lock)) for lock in data.get("locks", [])
        ]
        return cls(**values)


@dataclass
class CheckResult:
    """One check on one target: its verdict, why, and the evidence behind it."""

    name: str
    status: Status
    duration_s: float = 0.0
    reason: str = ""  # one line: why it did not pass, or what it covered
    detail: str = ""
    revision: str | None = None
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evidence: list[RevisionEvidence] = field(default_factory=list)
    # The earlier check whose result left this one nothing to judge, when one did.
    blocked_by: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        values = known_fields(cls, data)
        values["status"] = Status(data["status"])
        values["findings"] = [Finding.from_dict(f) for f in data.get("findings", [])]
        values["evidence"] = [RevisionEvidence.from_dict(e) for e in data.get("evidence", [])]
        return cls(**values)

    def settle_from_findings(self) -> None:
        """``failed``, ``waived`` or ``passed`` from the blocking findings."""
        blocking = [f for f in self.findings if f.blocking]
        open_ = [f for f in blocking if not f.waived]
        if open_:
            self.status = Status.FAILED
            self.revision = self.revision or open_[0].revision
            self.reason = self.reason or open_[0].message
        elif blocking:
            self.status = Status.WAIVED
            self.reason = self.reason or "waived: " + "; ".join(
                f"{f.message} ({f.waived})" for f in blocking
            )
        else:
            self.status = Status.PASSED


@dataclass
class TargetResult:
    """Everything gathered about one target of the matrix.

    A target passes only when a live server ran every required check and
    each passed; ``waived`` when some passed only by an acknowledged finding.
    A target no server reached is ``not_run``, whatever its offline checks said.
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
    reached: bool = False  # a live server answered and the checks ran against it
    # Set when the target ended before its checks could: {"status", "reason"}.
    fatal: dict[str, str] | None = None
    phases: dict[str, float] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    benchmark: BenchmarkResult | None = None

    def settle(self) -> None:
        """Derive the target's status and one-line reason from its checks."""
        self.status, reason = target_status(self.checks, self.reached, self.fatal)
        if self.fatal or (self.status != Status.PASSED and not self.reason):
            self.reason = reason  # a fatal cause is the first cause, whatever came before

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetResult:
        values = known_fields(cls, data)
        values["status"] = Status(values["status"])
        values["checks"] = [CheckResult.from_dict(c) for c in data.get("checks", [])]
        if data.get("benchmark"):
            values["benchmark"] = BenchmarkResult.from_dict(data["benchmark"])
        return cls(**values)


def target_status(
    checks: list[CheckResult], reached: bool, fatal: dict[str, str] | None = None
) -> tuple[Status, str]:
    """A target's status from its checks: the one rule the runner and the gate share.

    A plugin that cannot be loaded fails its targets (``fatal``); a target no
    server reached is ``not_run``. Optional checks that did not run (no earlier
    release, no ``--scale``) do not count; required ones that could not judge
    leave the target unproven.
    """
    if fatal:
        status = fatal.get("status")
        if status not in (Status.FAILED, Status.ERROR):
            return Status.ERROR, f"a fatal cause stored as {status!r}; only failed or error can be"
        return Status(status), fatal.get("reason") or str(status)
    if not reached:
        return Status.NOT_RUN, "no live server was reached"
    by_name = {c.name: c for c in checks}
    missing = [name for name, info in BY_NAME.items() if info.required and name not in by_name]
    if missing:
        return Status.ERROR, f"checks missing from the result: {', '.join(missing)}"
    for status in (Status.ERROR, Status.FAILED):
        hit = [c for c in checks if c.status == status]
        if hit:
            return status, f"{hit[0].name}: {hit[0].reason or status}"
    unjudged = [
        c
        for c in checks
        if c.status == Status.NOT_RUN and BY_NAME.get(c.name, None) and BY_NAME[c.name].required
    ]
    if unjudged:
        return Status.NOT_RUN, f"{unjudged[0].name} not run: {unjudged[0].reason}"
    if any(c.status == Status.WAIVED for c in checks):
        return Status.WAIVED, "passed with acknowledged findings"
    return Status.PASSED, ""


@dataclass
class Provenance:
    """Where the plugin under test came from, and nothing a reader could mistake for more.

    ``kind`` is what ``--plugin`` named: ``project`` (a source tree, built
    here), ``requirement`` (fetched from ``index``), ``sdist``, ``wheel`` or
    ``in-place``. ``file`` and ``sha256`` are what arrived: the downloaded or
    given sdist or wheel. ``commit`` is recorded only when the plugin was
    built from a repository's tree (``tree``): a project, or a wheel whose
    build record vouches for it; the commit of the folder the harness runs
    in says nothing about a published plugin.
    """

    kind: str  # project | requirement | sdist | wheel | in-place
    requirement: str | None = None
    index: str | None = None  # the index pip fetched the requirement from (masked)
    file: str | None = None
    sha256: str | None = None
    commit: str | None = None
    tree: str | None = None  # the source tree the commit is of

    def describe(self) -> str:
        """One line, as every report prints it."""
        if self.kind == "requirement":
            what = f"requirement {self.requirement}" + (f" from {self.index}" if self.index else "")
        elif self.kind == "project":
            what = f"project {self.tree}"
        elif self.kind == "in-place":
            what = f"package folder {self.file} (used in place, no wheel)"
        else:
            what = f"{self.kind} {self.file}"
        named = f"{self.file}, " if self.kind == "requirement" and self.file else ""
        arrived = f" ({named}sha256 {self.sha256})" if self.sha256 else ""
        built = f" built from {self.tree}" if self.commit and self.kind != "project" else ""
        commit = f" at commit {self.commit}" if self.commit else ""
        return f"{what}{arrived}{built}{commit}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        return cls(**known_fields(cls, data))


@dataclass
class PluginInfo:
    """Which build of which plugin the results are about."""

    name: str
    version: str
    source: Provenance
    wheel: str | None = None
    wheel_sha256: str | None = None
    distribution: str | None = None
    revisions: int | None = None
    schema: str | None = None

    @property
    def commit(self) -> str | None:
        """The commit of the tree the plugin was built from; None when it was not."""
        return self.source.commit

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PluginInfo:
        values = known_fields(cls, data)
        values["source"] = Provenance.from_dict(data["source"])
        return cls(**values)


class RunState(StrEnum):
    """Whether the run that wrote a report is still going, was cut short, or ended."""

    RUNNING = "running"
    INTERRUPTED = "interrupted"  # a signal or an error ended it; ``interrupted`` says which
    FINISHED = "finished"


@dataclass
class RunReport:
    """The whole run: ``compat.json``."""

    plugin: PluginInfo
    run_id: str
    started_at: str
    matrix_file: str
    targets: list[TargetResult] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    schema_version: int = REPORT_SCHEMA_VERSION
    allowed_missing: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # distribution -> version
    harness: dict[str, str] = field(default_factory=dict)  # harness and verdict-deciding tools
    policy: dict[str, Any] = field(default_factory=dict)  # the policy file, and stale entries
    # The options of `python -m matrix run` that repeat this run (targets aside).
    run_options: list[str] = field(default_factory=list)
    state: RunState = RunState.FINISHED  # reports written before the field were finished ones
    interrupted: str = ""  # what ended the run early, and while doing what

    @property
    def status(self) -> Status:
        """The worst target status: error, failed, not_run, waived, passed.

        A run that has not finished proves nothing yet: ``not_run`` at best.
        """
        if self.state != RunState.FINISHED and self.status_of_targets in (
            Status.PASSED,
            Status.WAIVED,
        ):
            return Status.NOT_RUN
        return self.status_of_targets

    @property
    def status_of_targets(self) -> Status:
        if not self.targets:
            return Status.NOT_RUN
        for status in (Status.ERROR, Status.FAILED, Status.NOT_RUN, Status.WAIVED):
            if any(t.status == status for t in self.targets):
                return status
        return Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        values = known_fields(cls, data)
        values["plugin"] = PluginInfo.from_dict(data["plugin"])
        values["targets"] = [TargetResult.from_dict(t) for t in data.get("targets", [])]
        values["state"] = RunState(data.get("state", RunState.FINISHED))
        return cls(**values)


def benchmark_document(report: RunReport) -> BenchmarkDocument:
    """``benchmark.json``: the run's figures by target, with what served each."""
    return BenchmarkDocument(
        asdict(report.plugin),
        report.plugin.commit,
        report.run_id,
        report.started_at,
        {
            t.id: TargetBenchmark(t.provider, t.server_version, t.postgis_version, t.benchmark)
            for t in report.targets
            if t.benchmark
        },
    )
