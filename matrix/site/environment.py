"""One environment for the site, as a release deploys it; one per previous release.

A Peek release is deployed into one new virtual environment holding the
platform and every plugin (synerty-peek, ``DeployPeekRelease.rst``), so the
site's plugins must resolve together: a pin one plugin declares that another
plugin's requirement excludes is a site-level failure, named with both
plugins and both pins, before any resolver runs. Whatever else the resolver
refuses is the same failure, with its message.

The site's environment is built by the harness's own
:func:`matrix.install.environment.prepare`, with every plugin's wheel as a
requirement and every plugin's exact pins as constraints (Peek's releases are
yanked; only an exact pin installs them), so it is cached like a plugin's.
Each previous release gets an environment of its own
(:func:`matrix.install.prepare.prepare_plugin`): a site at that release ran
its migrations there, with that release's dependencies.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from matrix.errors import HarnessError, PluginError
from matrix.install import environment, sources
from matrix.install.environment import Environment, declared_requirements, exact_pins
from matrix.install.prepare import (
    PROBE_TIMEOUT_S,
    describe_failure,
    environment_error,
    import_path,
    plugin_in,
    prepare_plugin,
    probe,
)
from matrix.install.sources import Built
from matrix.protocol import Cause, Fatal, Plugin
from matrix.site.sitefile import Site, SitePlugin, check_load_order


@dataclass(frozen=True)
class Conflict:
    """Two plugins whose requirements on one distribution cannot both hold."""

    distribution: str
    first: str  # the plugin that pins it exactly
    first_pin: str
    second: str
    second_requirement: str

    def describe(self) -> str:
        return (
            f"{self.first} pins {self.first_pin} but {self.second} requires "
            f"{self.second_requirement}"
        )


class SiteConflict(Exception):
    """The site's plugins cannot be installed together: a site-level failure, not bad input."""

    def __init__(self, message: str, conflicts: list[Conflict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.conflicts = conflicts or []


def pin_conflicts(declared: dict[str, list[Requirement]]) -> list[Conflict]:
    """Every exact pin of one plugin that another plugin's requirement excludes.

    ``declared`` maps each plugin to what it requires (its wheel's
    ``Requires-Dist`` and its undeclared extras). Two exact pins of different
    versions, or a pin outside another plugin's range, can never resolve; a
    range against a range is left to the resolver.
    """
    found: dict[tuple[str, str, str], Conflict] = {}
    for (one, first), (other, second) in combinations(declared.items(), 2):
        for a in first:
            for b in second:
                if canonicalize_name(a.name) != canonicalize_name(b.name):
                    continue
                for pinner, pin, requirer, requirement in ((one, a, other, b), (other, b, one, a)):
                    version = _exact(pin)
                    if version is None or requirement.specifier.contains(version, prereleases=True):
                        continue
                    key = (canonicalize_name(a.name), *sorted((pinner, requirer)))
                    found.setdefault(
                        key,
                        Conflict(
                            canonicalize_name(a.name), pinner, str(pin), requirer, str(requirement)
                        ),
                    )
    return list(found.values())


def _exact(requirement: Requirement) -> str | None:
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "==="):
        return specifiers[0].version
    return None


@dataclass
class PreviousRelease:
    """The release a site runs today, in its own environment, ready for plain alembic."""

    plugin: Plugin
    python: Path
    import_roots: list[Path]  # a package used in place; never the harness
    head: str
    revisions: list[str]
    environment: dict[str, str] = field(default_factory=dict)  # distribution -> version


@dataclass
class SiteMember:
    """One plugin of the site: this release as the site's environment holds it."""

    entry: SitePlugin
    plugin: Plugin
    built: Built
    schema: str = ""
    head: str = ""
    revisions: list[str] = field(default_factory=list)
    previous: PreviousRelease | None = None
    fresh: str | None = None  # why it is installed fresh at this release

    @property
    def name(self) -> str:
        return self.plugin.package


@dataclass
class SiteEnvironment:
    environment: Environment
    members: list[SiteMember]
    path: list[Path]  # the site's check process's PYTHONPATH
    seconds: dict[str, float] = field(default_factory=dict)


def prepare_site(
    site: Site,
    *,
    cache: Path,
    work: Path,
    drivers: tuple[str, ...],
    engine: str,
    log=lambda message: None,
) -> SiteEnvironment:
    """Build and probe the site's environment, then prepare each previous release.

    Bad input (a plugin that cannot be fetched, a module the site lacks)
    raises :class:`PluginError`; requirements that cannot hold together raise
    :class:`SiteConflict`.
    """
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    built = [
        sources.build(sources.classify(entry.release.spec), cache, None, work / f"p{entry.index}")
        for entry in site.plugins
    ]
    seconds["build"] = round(time.perf_counter() - started, 3)
    _refuse_conflicts(site, built)
    started = time.perf_counter()
    env = _site_environment(site, built, cache, work, drivers, log)
    seconds["environment"] = round(time.perf_counter() - started, 3)
    members = []
    path: list[Path] = []
    for entry, made in zip(site.plugins, built, strict=True):
        sha = sources.sha256_of(made.wheel) if made.wheel else None
        members.append(SiteMember(entry, plugin_in(made, env, sha), made))
        path += [p for p in import_path(made, cache) if p not in path]
    check_load_order(site, [m.name for m in members])
    started = time.perf_counter()
    probe_members(members, env.python, path, engine)
    seconds["probe"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    for member in members:
        _previous(member, cache, work, drivers, engine, log)
    seconds["previous"] = round(time.perf_counter() - started, 3)
    return SiteEnvironment(env, members, path, seconds)


def _refuse_conflicts(site: Site, built: list[Built]) -> None:
    declared = {}
    for entry, made in zip(site.plugins, built, strict=True):
        own = declared_requirements(made.wheel) if made.wheel else []
        extras = [*entry.release.with_requirements, *entry.release.without_dependencies]
        name = made.wheel.name.split("-")[0].replace("_", "-") if made.wheel else entry.label
        declared[name] = own + [Requirement(r) for r in extras]
    conflicts = pin_conflicts(declared)
    if conflicts:
        raise SiteConflict(
            "The site's plugins cannot be installed into one environment: "
            + "; ".join(c.describe() for c in conflicts)
            + ". A release deploys every plugin into one virtual environment, so one of them "
            "must move to the other's pin.",
            conflicts,
        )


def _site_environment(
    site: Site, built: list[Built], cache: Path, work: Path, drivers: tuple[str, ...], log
) -> Environment:
    """Every plugin's wheel and extras in one environment, their exact pins as constraints."""
    pins = sorted({pin for made in built for pin in exact_pins(made.wheel)})
    constraints = work / "site-constraints.txt"
    constraints.parent.mkdir(parents=True, exist_ok=True)
    constraints.write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
    wheels = tuple(str(made.wheel) for made in built if made.wheel)
    extras = _unique(r for entry in site.plugins for r in entry.release.with_requirements)
    no_deps = _unique(r for entry in site.plugins for r in entry.release.without_dependencies)
    identity = [
        sources.sha256_of(made.wheel) if made.wheel else str(made.package_dir) for made in built
    ]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    try:
        return environment.prepare(
            cache,
            wheel=None,
            wheel_sha256=digest,
            with_requirements=(*wheels, *extras),
            constraints=constraints,
            drivers=drivers,
            without_dependencies=no_deps,
            log=log,
        )
    except PluginError as error:
        raise SiteConflict(
            "The site's plugins cannot be installed into one environment; the resolver says: "
            + error.cause
        ) from None


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def probe_members(members: list[SiteMember], python: Path, path: list[Path], engine: str) -> None:
    """Load every plugin in one process of the site's environment, as the logic service does."""
    probing = probe(
        [m.plugin for m in members], python, path, (engine,), PROBE_TIMEOUT_S * len(members)
    )
    missing = [m.name for m in members if m.name not in probing.found]
    if missing:
        raise PluginError(
            f"The site's environment could not load {', '.join(missing)} (exit code "
            f"{probing.exit_code}):\n{probing.output}",
            "Rerun with -v; remove the site's environment (MATRIX_CACHE_DIR/envs) to rebuild it.",
        )
    for member in members:
        found = probing.found[member.name]
        if isinstance(found, Fatal):
            _refuse_probe(member, found.cause)
        elif engine in found.failures:  # it loads, but not under this site's dialect
            _refuse_probe(member, found.failures[engine])
        else:
            member.schema, member.revisions = found.schema, found.revisions
            member.head = ",".join(found.heads)


def _refuse_probe(member: SiteMember, cause: Cause) -> None:
    if cause.kind in ("missing_module", "import"):
        error = environment_error(cause)
        raise PluginError(f"{member.name}: {error.cause}", error.fix.replace("--with ", "with = "))
    raise PluginError(
        f"{member.name} at this release {describe_failure(cause)}.",
        "A plugin that cannot load stops the site; fix it or leave it out of the site file.",
    )


def _previous(
    member: SiteMember, cache: Path, work: Path, drivers: tuple[str, ...], engine: str, log
) -> None:
    """The previous release in its own environment; or why the plugin is installed fresh."""
    entry = member.entry
    if entry.previous is None:
        member.fresh = entry.fresh
        return
    try:
        prepared = prepare_plugin(
            entry.previous.spec,
            cache=cache,
            work=work / f"previous-{entry.index}",
            with_requirements=entry.previous.with_requirements,
            without_dependencies=entry.previous.without_dependencies,
            drivers=drivers,
            engines=(engine,),
            log=log,
        )
    except HarnessError as error:
        member.fresh = f"its previous release {entry.previous.spec} cannot be prepared: {error}"
        return
    failure = prepared.load_failure(engine)
    if failure or len(prepared.heads) != 1:
        why = failure or f"it has {len(prepared.heads)} heads"
        member.fresh = f"its previous release {entry.previous.spec} cannot be used: {why}"
        return
    if prepared.schema != member.schema:
        member.fresh = (
            f"its previous release {entry.previous.spec} keeps its tables in schema "
            f"{prepared.schema}, this release in {member.schema}"
        )
        return
    member.previous = PreviousRelease(
        plugin=prepared.plugin,
        python=prepared.environment.python,
        import_roots=prepared.child_path[1:],
        head=prepared.heads[0],
        revisions=prepared.revisions,
        environment=prepared.environment.versions,
    )
