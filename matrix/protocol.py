"""The boundary between the harness and the processes it starts in a plugin's environment.

The harness starts three programs in a plugin's (or a site's) own
environment: the check process (:data:`CHECK_PROCESS`; ``--probe`` loads the
plugin, ``--seed`` brings a database to the previous release), the check
process with the benchmark after its checks (:data:`BENCH_PROCESS`), and the
site's rehearsal (:data:`SITE_PROCESS`). What crosses is defined here and
nowhere else: the spec each program reads (a frozen dataclass, JSON in
:data:`SPEC_ENV`), the database URL (:data:`URL_ENV`), and the events each
writes back, one per line after :data:`MARKER`, in one tagged shape
(``{"event": "<tag>", ...fields}``). Both sides build and read these
classes, so a field one side renames is an error at the other side's
constructor, never a ``KeyError`` three calls later.

Stdlib only (and the stdlib-only :mod:`matrix.results`): the harness and the
check process import it before anything heavy.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from matrix.results import CheckResult, RevisionEvidence
from matrix.results.benchmark import BenchmarkResult, Settings

MARKER = "@@matrix "
SPEC_ENV = "MATRIX_CELL_SPEC"
URL_ENV = "MATRIX_CELL_URL"
CHECK_PROCESS = "matrix.check.process"
BENCH_PROCESS = "matrix.bench.process"
SITE_PROCESS = "matrix.site.process"


@dataclass(frozen=True)
class Plugin:
    """A Peek storage plugin, ready to import from ``import_root``.

    ``import_root`` is the folder that holds the package: the site-packages
    of the plugin's environment, or the folder around a package used in
    place. ``python`` is the interpreter of that environment.
    """

    package: str
    version: str
    import_root: Path
    alembic_dir: Path
    source: str  # wheel | sdist | requirement | project | in-place
    python: Path | None = None
    wheel: Path | None = None
    wheel_sha256: str | None = None
    distribution: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {k: None if v is None else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str | None]) -> Plugin:
        paths = {"import_root", "alembic_dir", "python", "wheel"}
        return cls(
            **{
                key: (Path(value) if key in paths and value is not None else value)
                for key, value in data.items()
                if key in cls.__dataclass_fields__
            }
        )


# -- specs: what a program is asked to do ------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """Where a program works: one target's engine, its SQL folder, its timeouts, the policy."""

    engine: str
    target: str
    sql_dir: Path
    statement_timeout_s: float = 0
    lock_timeout_s: float = 0
    policy: dict[str, Any] = field(default_factory=dict)  # Policy.to_dict()
    # Another product speaking the engine's protocol (``babelfish``), or None for the engine.
    flavour: str | None = None


@dataclass(frozen=True)
class ProbeSpec:
    """Load each plugin once, under each engine's dialect, before any server starts."""

    plugins: tuple[Plugin, ...]
    engines: tuple[str, ...]


@dataclass(frozen=True)
class PreviousRelease:
    """The release ``upgrade_from_release`` compares with, or why there is none."""

    reason: str = ""  # why there is none (then nothing else is set)
    alembic_dir: Path | None = None
    version: str = ""
    head: str = ""
    database: str | None = None  # the sibling database the runner seeded at that release
    ledger: Path | None = None  # the rows the seed wrote (synthetic.Ledger as JSON)
    seed_error: str = ""  # why seeding that database failed


@dataclass(frozen=True)
class CellSpec:
    """One target's checks (and, in :data:`BENCH_PROCESS`, the benchmark after them)."""

    plugin: Plugin
    on: TargetSpec
    checks: tuple[str, ...]
    scale: int = 0
    previous: PreviousRelease = PreviousRelease("no previous release was given")
    benchmark: Settings | None = None


@dataclass(frozen=True)
class SeedSpec:
    """Bring a database to the (previous) plugin's head with rows; the ledger goes to a file."""

    plugin: Plugin
    on: TargetSpec
    ledger: Path


@dataclass(frozen=True)
class ReleaseAt:
    """A release a site runs: its version and its head revision."""

    version: str
    head: str


@dataclass(frozen=True)
class SiteMemberSpec:
    """One plugin of the site, as the runner installed it in the site's database."""

    plugin: Plugin
    schema: str
    head: str
    previous: ReleaseAt | None = None  # None: installed fresh at this release
    fresh: str | None = None  # why it is installed fresh


@dataclass(frozen=True)
class SiteSpec:
    """One target's site rehearsal: every plugin in one database."""

    on: TargetSpec
    members: tuple[SiteMemberSpec, ...]
    fresh_database: str
    scale: int = 0


# -- events: what a program reports --------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """What stopped a plugin (or the harness) in the child: kind, message, where."""

    kind: str  # missing_module | import | plugin | shadowed | harness
    error: str
    where: str | None = None
    raised_at: str | None = None
    module: str | None = None
    distribution: str | None = None


class Event:
    """One line a child writes; :data:`EVENTS` maps each tag to its class."""

    tag: ClassVar[str]


@dataclass(frozen=True)
class Ready(Event):
    tag = "ready"
    schema: str | None
    revisions: list[str]
    head: str | None


@dataclass(frozen=True)
class Started(Event):
    """A step (a check, the benchmark, a rehearsal phase) began: its time starts."""

    tag = "start"
    name: str


@dataclass(frozen=True)
class Done(Event):
    tag = "done"
    result: CheckResult


@dataclass(frozen=True)
class WaiversUsed(Event):
    """The check process's last word after its checks: which waivers matched."""

    tag = "waivers_used"
    indexes: list[int]


@dataclass(frozen=True)
class Benchmarked(Event):
    tag = "benchmark"
    result: BenchmarkResult


@dataclass(frozen=True)
class Fatal(Event):
    """Nothing more will come: ``package`` is set when a probe names the plugin it stopped."""

    tag = "fatal"
    cause: Cause
    package: str | None = None


@dataclass(frozen=True)
class Probed(Event):
    tag = "probe"
    package: str
    schema: str | None
    revisions: list[str]
    heads: list[str]
    offline: dict[str, bool]  # per engine: renders offline
    failures: dict[str, Cause]  # per engine: why it cannot load under that dialect
    versions: dict[str, str]  # distribution -> version in the environment


@dataclass(frozen=True)
class Serving(Event):
    """The probe's last word when it stays to fork the check processes (:mod:`matrix.forks`)."""

    tag = "serving"


@dataclass(frozen=True)
class Seeded(Event):
    tag = "seeded"
    head: str | None = None
    rows: int = 0
    error: str | None = None


@dataclass(frozen=True)
class PhaseDone(Event):
    tag = "phase"
    name: str
    seconds: float


@dataclass(frozen=True)
class PluginWindow:
    seconds: float | None
    timeline: list[RevisionEvidence]


@dataclass(frozen=True)
class Window(Event):
    """The site's upgrade window: the whole, and per plugin with its revisions."""

    tag = "window"
    total: float | None
    plugins: dict[str, PluginWindow]


@dataclass(frozen=True)
class SiteDone(Event):
    tag = "site_done"
    check: str
    plugins: dict[str, CheckResult]


@dataclass(frozen=True)
class Finished(Event):
    """The site process's last word: every phase and check reported."""

    tag = "finished"


EVENTS: dict[str, type[Event]] = {
    cls.tag: cls
    for cls in (
        Ready,
        Started,
        Done,
        WaiversUsed,
        Benchmarked,
        Fatal,
        Probed,
        Serving,
        Seeded,
        PhaseDone,
        Window,
        SiteDone,
        Finished,
    )
}
ENDS_STEP = (Done, Benchmarked, PhaseDone, SiteDone)  # events that end the running step


# -- (de)serialisation ------------------------------------------------------------------


def dump(value: Any) -> Any:
    """A spec, an event or a result as plain JSON values."""
    if isinstance(value, Event) and dataclasses.is_dataclass(value):
        return {
            "event": value.tag,
            **{f.name: dump(getattr(value, f.name)) for f in _fields(value)},
        }
    if hasattr(value, "to_dict"):  # a result with its own JSON shape
        return dump(value.to_dict())
    if dataclasses.is_dataclass(value):
        return {f.name: dump(getattr(value, f.name)) for f in _fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {str(k): dump(v) for k, v in value.items()}
    return value


def load(kind: Any, data: Any) -> Any:
    """``data`` (plain JSON values) as ``kind``: a spec, an event, a result, or a plain type.

    A missing field or one of the wrong shape raises at once (TypeError,
    ValueError): the two sides disagree, and no check should run on that.
    """
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if data is None else load(options[0], data)
    if origin is list:
        return [load(typing.get_args(kind)[0], v) for v in data]
    if origin is tuple:
        return tuple(load(typing.get_args(kind)[0], v) for v in data)
    if origin is dict:
        return {k: load(typing.get_args(kind)[1], v) for k, v in data.items()}
    if kind is Any or kind in (str, int, float, bool):
        return data
    if kind is Path:
        return Path(data)
    if kind in _OWN_LOADERS:
        return _OWN_LOADERS[kind](data)
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        unknown = set(data) - {f.name for f in _fields(kind)} - {"event"}
        if unknown:
            raise TypeError(f"{kind.__name__} has no field {', '.join(sorted(unknown))}")
        return kind(**{name: load(hints[name], v) for name, v in data.items() if name != "event"})
    raise TypeError(f"cannot load {kind!r}")


# The results keep their own readers (compat.json reads them back the same way).
_OWN_LOADERS: dict[type, Any] = {
    Plugin: Plugin.from_dict,
    CheckResult: CheckResult.from_dict,
    RevisionEvidence: RevisionEvidence.from_dict,
    BenchmarkResult: BenchmarkResult.from_dict,
    Settings: Settings.from_dict,
}


def _fields(value: Any) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(value) if f.init)


def encode_spec(spec: Any) -> str:
    return json.dumps(dump(spec))


def decode_spec(kind: type, text: str) -> Any:
    return load(kind, json.loads(text))


def emit(event: Event) -> None:
    """Write one event on stdout (the child's side)."""
    sys.stdout.write(MARKER + json.dumps(dump(event), default=str) + "\n")
    sys.stdout.flush()


def parse_event(line: str) -> Event | None:
    """The event a line carries, or None for any other output (a plugin's own prints)."""
    if not line.startswith(MARKER):
        return None
    try:
        data = json.loads(line[len(MARKER) :])
        return load(EVENTS[data["event"]], data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
