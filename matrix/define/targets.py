"""The matrix definition: which database servers a plugin must be proven on.

The matrix lives in a TOML file (``matrix/define/targets.toml`` by default) so that the
nox sessions, the CLI, the GitLab pipeline and the release gate all read one
list. Loading validates every field up front: a typo in the file must fail
before any container starts, naming the target and the field to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from matrix.documents import read_toml
from matrix.engines import engine_named, engine_names
from matrix.errors import HarnessError, MatrixFileError

DEFAULT_MATRIX_FILE = Path(__file__).with_name("targets.toml")
PROVIDERS = ("docker", "native", "external")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ImageRecipe:
    """How to build an equivalent image offline from Debian packages."""

    suite: str
    packages: tuple[str, ...]
    tag: str


@dataclass(frozen=True)
class EngineSettings:
    """What every target of one engine shares."""

    url_env: str
    ready_timeout: float
    port: int
    min_memory_mb: int = 0


@dataclass(frozen=True)
class Target:
    """One database server version of the matrix."""

    id: str
    engine: str
    version: str
    image: str
    providers: tuple[str, ...]
    required: bool
    settings: EngineSettings
    postgis: str | None = None
    recipe: ImageRecipe | None = None
    network: str = "bridge"
    # Another product speaking the engine's protocol (``babelfish``): never the engine itself.
    flavour: str | None = None
    # An image no registry serves and no recipe here builds: the document that
    # says how it was made. The docker provider then uses it only when present.
    image_doc: str | None = None

    @property
    def label(self) -> str:
        """A human name, as its engine (or flavour) says it: ``PostgreSQL 15 + PostGIS 3.3``."""
        return engine_named(self.engine, self.flavour).target_label(self.version, self.postgis)


@dataclass(frozen=True)
class Matrix:
    """All targets of a matrix file, in file order."""

    path: Path
    targets: tuple[Target, ...] = field(default_factory=tuple)

    def select(self, ids: list[str] | None = None, engine: str | None = None) -> list[Target]:
        """Targets by id (in the order given) or by engine; all when neither."""
        if ids:
            known = {t.id: t for t in self.targets}
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise MatrixFileError(
                    f"Unknown target id {', '.join(map(repr, unknown))} in {self.path}.",
                    f"Known targets: {', '.join(known)}. Run `python -m matrix list`.",
                )
            chosen = [known[i] for i in ids]
        else:
            chosen = list(self.targets)
        if engine:
            if engine not in engine_names():
                raise MatrixFileError(
                    f"Unknown engine {engine!r}.", f"Use one of {', '.join(engine_names())}."
                )
            chosen = [t for t in chosen if t.engine == engine]
        return chosen


def load_matrix(path: Path | str = DEFAULT_MATRIX_FILE) -> Matrix:
    """Read and validate a matrix file."""
    path = Path(path)
    data = read_toml(
        path,
        "matrix file",
        "Fix the syntax at the line and column given.",
        missing=f"Matrix file {path} does not exist.",
        missing_fix="Pass --matrix with the path of a matrix TOML file, or omit it to use "
        f"the default {DEFAULT_MATRIX_FILE}.",
        error=MatrixFileError,
    )
    return _parse(path, data)


def _parse(path: Path, data: dict[str, Any]) -> Matrix:
    where = f"Matrix file {path}"
    if data.get("schema_version") != SCHEMA_VERSION:
        raise MatrixFileError(
            f"{where} has schema_version {data.get('schema_version')!r}.",
            f"Set `schema_version = {SCHEMA_VERSION}` at the top of the file.",
        )
    engines = {name: _engine(where, name, data.get("engine", {})) for name in engine_names()}
    raw_targets = data.get("target")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise MatrixFileError(
            f"{where} defines no targets.",
            "Add at least one [[target]] table with id, engine, version and image.",
        )
    targets = [_target(where, i, raw, engines) for i, raw in enumerate(raw_targets, 1)]
    seen: set[str] = set()
    for target in targets:
        if target.id in seen:
            raise MatrixFileError(
                f"{where} defines target {target.id!r} twice.",
                "Give every [[target]] a unique id.",
            )
        seen.add(target.id)
    return Matrix(path=path, targets=tuple(targets))


def _engine(where: str, name: str, section: dict[str, Any]) -> EngineSettings:
    raw = section.get(name)
    if not isinstance(raw, dict):
        raise MatrixFileError(
            f"{where} has no [engine.{name}] section.",
            "Add it with url_env, ready_timeout and port.",
        )
    try:
        settings = EngineSettings(
            url_env=_typed(raw, "url_env", str),
            ready_timeout=float(_typed(raw, "ready_timeout", (int, float))),
            port=_typed(raw, "port", int),
            min_memory_mb=_typed(raw, "min_memory_mb", int, 0),
        )
        _within("ready_timeout", settings.ready_timeout, 0.1, 3600)
        _within("port", settings.port, 1, 65535)
        _within("min_memory_mb", settings.min_memory_mb, 0, 1 << 20)
        _check_url_env(settings.url_env)
        return settings
    except _FieldError as error:
        raise MatrixFileError(f"{where}: [engine.{name}] {error.problem}.", error.fix) from None


def _target(
    where: str, index: int, raw: dict[str, Any], engines: dict[str, EngineSettings]
) -> Target:
    name = f"target #{index} ({raw.get('id', 'no id')!r})"
    try:
        engine = _typed(raw, "engine", str)
        if engine not in engine_names():
            raise _FieldError(
                f"has unknown engine {engine!r}", f"Use one of {', '.join(engine_names())}."
            )
        providers = tuple(_typed(raw, "providers", list))
        bad = [p for p in providers if p not in PROVIDERS]
        if bad or not providers:
            raise _FieldError(
                f"has providers {list(providers)!r}",
                f"List one or more of {', '.join(PROVIDERS)}.",
            )
        recipe_raw = _typed(raw, "recipe", dict, None)
        recipe = None
        if recipe_raw is not None:
            recipe = ImageRecipe(
                suite=_typed(recipe_raw, "suite", str),
                packages=tuple(_typed(recipe_raw, "packages", list)),
                tag=_typed(recipe_raw, "tag", str),
            )
        network = _typed(raw, "network", str, "bridge")
        if network not in ("bridge", "host"):
            raise _FieldError(f"has network {network!r}", 'Use "bridge" (the default) or "host".')
        for key in ("id", "version", "image"):
            if not _typed(raw, key, str).strip():
                raise _FieldError(f"has an empty {key}", f"Give {key} a value.")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", raw["id"]):
            raise _FieldError(
                f"has id = {raw['id']!r}", "Use letters, digits, '-', '_' and '.' only."
            )
        postgis = _typed(raw, "postgis", str, None)
        if postgis and not engine_named(engine).has_postgis:
            raise _FieldError("sets postgis on a non-PostgreSQL target", "Remove it.")
        flavour = _typed(raw, "flavour", str, None)
        try:
            engine_named(engine, flavour)
        except HarnessError as error:
            raise _FieldError(f"has flavour = {flavour!r}: {error.cause}", error.fix) from None
        # A flavour is another server than the engine's: its own URL variable and needs.
        settings = replace(
            engines[engine],
            url_env=_typed(raw, "url_env", str, engines[engine].url_env),
            min_memory_mb=_typed(raw, "min_memory_mb", int, engines[engine].min_memory_mb),
        )
        _check_url_env(settings.url_env)
        _within("min_memory_mb", settings.min_memory_mb, 0, 1 << 20)
        return Target(
            id=_typed(raw, "id", str),
            engine=engine,
            version=_typed(raw, "version", str),
            image=_typed(raw, "image", str),
            providers=providers,
            required=_typed(raw, "required", bool),
            settings=settings,
            postgis=postgis,
            recipe=recipe,
            network=network,
            flavour=flavour,
            image_doc=_typed(raw, "image_doc", str, None),
        )
    except _FieldError as error:
        raise MatrixFileError(f"{where}: {name} {error.problem}.", error.fix) from None


def _check_url_env(name: str) -> None:
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
        raise _FieldError(
            f"has url_env = {name!r}, not an environment variable name",
            'Name a variable such as "MATRIX_POSTGRESQL_URL".',
        )


def _within(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise _FieldError(
            f"has {key} = {value:g}, outside {low:g} to {high:g}", f"Set {key} within that range."
        )


class _FieldError(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


_MISSING = object()


def _typed(raw: dict[str, Any], key: str, kind: Any, default: Any = _MISSING) -> Any:
    if key not in raw:
        if default is _MISSING:
            raise _FieldError(f"lacks the field {key!r}", f"Add `{key} = ...`.")
        return default
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise _FieldError(f"has {key} = {value!r}, not a {expected}", f"Make {key} a {expected}.")
    return value
