"""The gate's vocabulary: what is about to ship, the evidence, each refusal, the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from matrix.results import (
    RunReport,
    Status,
)

REASON_WIDTH = 160  # of a target's own reason, quoted; compat.md has it whole


PROVEN = (Status.PASSED, Status.WAIVED)


REPORT_FILE = "compat.json"


TARGETS_FOLDER = "targets"


class Cause(StrEnum):
    FAILED = "failed"
    ERROR = "error"
    NOT_RUN = "not_run"
    MISSING = "missing"
    OTHER_COMMIT = "other_commit"
    OTHER_WHEEL = "other_wheel"
    INCONSISTENT = "inconsistent"  # the report's pieces disagree about a status
    INCOMPLETE = "incomplete"  # a target claims a pass without every required check


@dataclass(frozen=True)
class Refusal:
    """One reason not to publish: which target (if any), why, and what to do."""

    cause: Cause
    target: str | None
    message: str


@dataclass(frozen=True)
class Build:
    """What is about to be published: a wheel, and the commit its source tree is at now.

    ``commit`` is None where the report records none (nothing to compare) or
    where the tree's commit cannot be known any more.
    """

    wheel: Path
    sha256: str
    commit: str | None


@dataclass(frozen=True)
class Evidence:
    """What the reports folder holds: compat.json, read back, and what it was written from.

    ``stated_status`` is the overall status compat.json states (a derived
    value the typed report does not keep); ``target_files`` are the
    per-target files beside it, each read as a one-target report.
    """

    report: RunReport
    stated_status: str | None
    target_files: dict[Path, RunReport] = field(default_factory=dict)


@dataclass(frozen=True)
class Acknowledged:
    """A finding the plugin's policy waived on a target the gate counts as passed."""

    target: str
    check: str
    kind: str
    message: str
    revision: str | None = None
    reason: str | None = None  # None: the message already says why (a waived not_run)

    def describe(self) -> str:
        at = f" at revision {self.revision}" if self.revision else ""
        why = f" (waived: {self.reason})" if self.reason else ""
        return f"{self.target} {self.check}{at}, {self.kind}: {self.message}{why}"


@dataclass
class Verdict:
    """The gate's decision, with what the release notes and compat.md must carry."""

    report: RunReport
    build: Build
    required: frozenset[str] = frozenset()  # target ids the matrix requires
    refusals: list[Refusal] = field(default_factory=list)
    allowed_missing: list[str] = field(default_factory=list)  # waived by --allow-missing
    acknowledged: list[Acknowledged] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.refusals

    def summary(self, headline: bool = False) -> str:
        """What a pass means here: clean, with waived findings, with targets allowed missing."""
        count = len(self.acknowledged)
        waived = f" with {count} waived finding{'s' if count != 1 else ''}" if count else ""
        commit = " and commit" if self.report.plugin.commit else ""
        excepted = ["the findings the plugin's policy waives (listed)"] if count else []
        excepted += ["the targets allowed missing on purpose"] if self.allowed_missing else []
        said = f"every required target passed for this wheel{commit}" + (
            f", except {' and '.join(excepted)}" if excepted else ""
        )
        return f"{waived}: {said}" if headline else said


# -- the decision: pure functions ------------------------------------------------
