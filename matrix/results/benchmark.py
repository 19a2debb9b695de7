"""The benchmark's results, ``benchmark.json`` and the comparison with a baseline.

Stdlib only: :mod:`matrix.results` stores a :class:`BenchmarkResult` in each
target's result, and the HTML report and the gate read them without
SQLAlchemy. Every benchmark dict read back (from ``compat.json``, a target's
JSON or ``benchmark.json``) goes through these classes' ``from_dict``;
nothing else indexes them by string keys.

A figure is one throughput over several measured rounds: the median with its
spread, so that a reader can tell a change from noise. ``benchmark.json``
keeps one target's figures beside what served them (provider, versions),
because only figures from the same kind of server compare.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from matrix.documents import read_json
from matrix.errors import HarnessError

BENCHMARK_FILE = "benchmark.json"
ORM, DRIVER = "orm", "driver"


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``cls``: newer files may carry more."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Settings:
    """Sizes and rounds. The defaults finish one target in well under 30 s."""

    rows: int = 2000  # rows per batched insert, and rows in the tables read from
    ops: int = 200  # single operations per round: commits, key reads, settings
    queries: int = 20  # filtered queries per round
    rounds: int = 5  # measured rounds per figure
    warmup: int = 2  # rounds run first and discarded: caches, plans, autovacuum after loads

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        return cls(**{k: int(v) for k, v in known_fields(cls, data).items()})


@dataclass(frozen=True)
class Spread:
    median: float
    min: float
    max: float
    cv: float  # sample standard deviation over mean; 0 for a single value


def spread(values: Sequence[float]) -> Spread:
    """The median, range and coefficient of variation of ``values``."""
    if not values:
        raise ValueError("no values to summarise")
    mean = statistics.fmean(values)
    cv = statistics.stdev(values) / mean if len(values) > 1 and mean else 0.0
    return Spread(statistics.median(values), min(values), max(values), cv)


@dataclass
class Figure:
    """One throughput figure: an operation on one layer, over several rounds."""

    operation: str
    layer: str  # ORM or DRIVER
    method: str  # how the layer did it, e.g. "Session.add_all + commit", "COPY"
    unit: str
    median: float
    min: float
    max: float
    cv: float
    rounds: int
    size: int  # units of work (rows, transactions, operations) per round
    seconds: list[float] = field(default_factory=list)  # per measured round
    statements: float | None = None  # SQL statements per call, counted in the warm-up

    @classmethod
    def from_seconds(
        cls,
        operation: str,
        layer: str,
        method: str,
        unit: str,
        size: int,
        seconds: list[float],
        statements: float | None = None,
    ) -> Figure:
        """Throughput per round is ``size / seconds``; the figure summarises those."""
        stats = spread([size / s for s in seconds])
        return cls(
            operation,
            layer,
            method,
            unit,
            stats.median,
            stats.min,
            stats.max,
            stats.cv,
            len(seconds),
            size,
            [round(s, 6) for s in seconds],
            statements,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        return cls(**known_fields(cls, data))


@dataclass
class OperationResult:
    """One operation on one target: its figures, or why there are none.

    ``orm_to_driver`` is the ORM's median as a fraction of the fastest driver
    method's (``driver_limit``): how close the storage code comes to what the
    driver can do on the same connection.
    """

    operation: str
    title: str
    unit: str
    size: int = 0  # units of work per round
    figures: list[Figure] = field(default_factory=list)
    orm_to_driver: float | None = None
    driver_limit: str | None = None
    skipped: str | None = None  # the plugin lacks what the operation needs
    error: str | None = None  # the operation failed; the others still ran

    @classmethod
    def measured(
        cls, operation: str, title: str, unit: str, size: int, figures: list[Figure]
    ) -> OperationResult:
        """The figures of both layers, with the ORM's share of the fastest driver method."""
        orm = next(f for f in figures if f.layer == ORM)
        best = max((f for f in figures if f.layer == DRIVER), key=lambda f: f.median)
        return cls(operation, title, unit, size, figures, orm.median / best.median, best.method)

    @property
    def orm(self) -> Figure:
        return next(f for f in self.figures if f.layer == ORM)

    @property
    def limit(self) -> Figure:
        """The fastest driver method's figure."""
        return next(f for f in self.figures if f.method == self.driver_limit)

    @property
    def why_not(self) -> str:
        """Why the operation has no figures; empty when it has."""
        return self.skipped or self.error or ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperationResult:
        values = known_fields(cls, data)
        values["figures"] = [Figure.from_dict(f) for f in data.get("figures", [])]
        return cls(**values)


@dataclass
class BenchmarkResult:
    """Every operation on one target, and which of the plugin's tables they used.

    ``to_dict`` is :func:`dataclasses.asdict`, so a :class:`TargetResult`
    holding one serialises to the same JSON.
    """

    settings: Settings
    operations: list[OperationResult]
    table: str | None = None
    spatial_table: str | None = None
    global_setting: str | None = None
    timed_s: float = 0.0  # the measured rounds' database work
    wall_s: float = 0.0  # everything, loads and warm-up included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResult:
        values = known_fields(cls, data)
        values["settings"] = Settings.from_dict(data["settings"])
        values["operations"] = [OperationResult.from_dict(o) for o in data["operations"]]
        return cls(**values)


# -- benchmark.json -----------------------------------------------------------------


@dataclass
class TargetBenchmark:
    """One target's figures beside what served them: baselines compare like for like."""

    provider: str | None
    server_version: str | None
    postgis_version: str | None
    result: BenchmarkResult

    def to_dict(self) -> dict[str, Any]:
        served = {k: v for k, v in asdict(self).items() if k != "result"}
        return {**served, **self.result.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetBenchmark:
        return cls(
            data.get("provider"),
            data.get("server_version"),
            data.get("postgis_version"),
            BenchmarkResult.from_dict(data),
        )


@dataclass
class Change:
    """One figure against the baseline's."""

    target: str
    operation: str
    layer: str
    method: str
    unit: str
    baseline: float
    current: float
    ratio: float  # current / baseline throughput: below 1 is slower
    slower: bool  # fell by more than the threshold


@dataclass
class Comparison:
    """The run's figures against a baseline file's, every figure both have."""

    baseline: str  # the baseline file
    baseline_run: str | None
    baseline_commit: str | None
    threshold: float
    changes: list[Change]

    @classmethod
    def between(
        cls, current: BenchmarkDocument, baseline: BenchmarkDocument, source: Path, threshold: float
    ) -> Comparison:
        return cls(
            str(source),
            baseline.run_id,
            baseline.git_commit,
            threshold,
            compare(current, baseline, threshold),
        )

    @property
    def slower(self) -> int:
        """How many figures fell by more than the threshold."""
        return sum(c.slower for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "slower": self.slower}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        values = known_fields(cls, data)
        values["changes"] = [Change(**known_fields(Change, c)) for c in data["changes"]]
        return cls(**values)


@dataclass
class BenchmarkDocument:
    """``benchmark.json``: one run's figures by target, and the baseline comparison."""

    plugin: dict[str, Any]
    git_commit: str | None
    run_id: str
    started_at: str
    targets: dict[str, TargetBenchmark]
    comparison: Comparison | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "git_commit": self.git_commit,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "targets": {target: t.to_dict() for target, t in self.targets.items()},
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkDocument:
        comparison = data.get("comparison")
        return cls(
            data["plugin"],
            data.get("git_commit"),
            data["run_id"],
            data["started_at"],
            {target: TargetBenchmark.from_dict(t) for target, t in data["targets"].items()},
            Comparison.from_dict(comparison) if comparison else None,
        )


def load_document(path: Path, what: str = "benchmark document") -> BenchmarkDocument:
    """A ``benchmark.json`` (or a saved baseline), or one paragraph saying why not."""
    fix = "Pass a file written by `python -m matrix bench` (or its --save-baseline FILE)."
    data = read_json(path, what, fix)
    try:
        return BenchmarkDocument.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise HarnessError(
            f"{path} is not a {what} ({type(error).__name__}: {error}).", fix
        ) from None


# -- the baseline -------------------------------------------------------------------

FigureKey = tuple[str, str, str, str]  # target, operation, layer, method


def figures(document: BenchmarkDocument) -> dict[FigureKey, Figure]:
    """Every figure of a document by (target, operation, layer, method)."""
    return {
        (target, f.operation, f.layer, f.method): f
        for target, measured in document.targets.items()
        for operation in measured.result.operations
        for f in operation.figures
    }


def compare(
    current: BenchmarkDocument, baseline: BenchmarkDocument, threshold: float
) -> list[Change]:
    """Every figure found in both documents, flagged when it fell by more than ``threshold``."""
    before = figures(baseline)
    changes = []
    for key, figure in figures(current).items():
        if key in before:
            old, new = before[key].median, figure.median
            changes.append(
                Change(*key, figure.unit, old, new, new / old, new / old < 1 - threshold)
            )
    return changes
