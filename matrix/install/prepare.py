"""Preparing the plugin: taken in any form, given its own environment, probed.

:func:`prepare_plugin` is the one way in: it classifies ``--plugin``
(:mod:`~matrix.install.sources`), builds or fetches the wheel, creates or
reuses the plugin's environment (:mod:`~matrix.install.environment`) and loads
the plugin there once (``python -m matrix.check.process --probe``), before any server
starts. A module missing from the environment is the user's to add: one
paragraph naming the module, the plugin file and line that imports it, and
the ``--with`` that adds it. The plugin's own code failing to load is a
verdict, not bad input: it comes back per engine (``load_failure(engine)``), for
each target of that engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from matrix.child import Child, Watch, harness_path
from matrix.errors import PluginError
from matrix.forks import Forks, channel_pair
from matrix.install import environment, sources, wheels
from matrix.install.environment import Environment
from matrix.install.manifest import alembic_folder
from matrix.install.sources import Built, Kind
from matrix.protocol import Cause, Fatal, Plugin, Probed, ProbeSpec, Serving

PROBE_TIMEOUT_S = 300
# Modules whose distribution is not named like them.
KNOWN_DISTRIBUTIONS = {
    "vortex": "vortexpy",
    "yaml": "PyYAML",
    "jsoncfg": "json-cfg-rw",
    "pytmpdir": "pytmpdir",
    "psycopg": "psycopg[binary]",
    "geoalchemy2": "GeoAlchemy2",
}


@dataclass
class PreparedPlugin:
    """A plugin ready for the check processes, and what the probe learnt of it."""

    plugin: Plugin
    environment: Environment
    built: Built
    child_path: list[Path]
    schema: str | None = None
    revisions: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    offline: dict[str, bool] = field(default_factory=dict)  # per engine: renders offline
    load_failures: dict[str, str] = field(default_factory=dict)  # per engine: why it cannot load
    seconds: dict[str, float] = field(default_factory=dict)
    previous: PreparedPlugin | None = None  # the previous release, when one is checked against
    previous_reason: str = ""  # why there is none
    forks: Forks | None = None  # the probe, kept to fork the check processes

    def close(self) -> None:
        """End the kept probe (and the previous release's)."""
        for prepared in (self, self.previous):
            if prepared is not None and prepared.forks is not None:
                prepared.forks.close()

    def load_failure(self, engine: str) -> str | None:
        """Why the plugin cannot be loaded under ``engine``'s dialect, or None when it can."""
        return self.load_failures.get(engine)


def prepare_plugin(
    spec: str | Path,
    *,
    cache: Path,
    work: Path,
    dist_dir: Path | None = None,
    with_requirements: tuple[str, ...] = (),
    without_dependencies: tuple[str, ...] = (),
    constraints: Path | None = None,
    drivers: tuple[str, ...],
    engines: tuple[str, ...],
    log=lambda message: None,
    serve: bool = False,
) -> PreparedPlugin:
    """Classify, build, install and probe the plugin; bad input raises PluginError.

    With ``serve`` the probe is kept to fork the check processes
    (:attr:`PreparedPlugin.forks`); the caller ends it with :meth:`PreparedPlugin.close`.
    """
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    source = sources.classify(spec)
    built = sources.build(source, cache, dist_dir, work)
    seconds["build"] = round(time.perf_counter() - started, 3)
    wheel_sha = sources.sha256_of(built.wheel) if built.wheel else None
    env = environment.prepare(
        cache,
        wheel=built.wheel,
        wheel_sha256=wheel_sha,
        with_requirements=with_requirements,
        constraints=constraints,
        drivers=drivers,
        without_dependencies=without_dependencies,
        log=log,
    )
    seconds["environment"] = env.seconds
    plugin = plugin_in(built, env, wheel_sha)
    prepared = PreparedPlugin(plugin, env, built, import_path(built, cache), seconds=seconds)
    started = time.perf_counter()
    _probe(prepared, engines, serve)
    seconds["probe"] = round(time.perf_counter() - started, 3)
    return prepared


def import_path(built: Built, cache: Path) -> list[Path]:
    """What the check process puts on ``PYTHONPATH``: the harness, and a package used in place."""
    path = [harness_path(cache)]
    if built.kind == Kind.PACKAGE:
        path.append(built.package_dir.parent)
    return path


def plugin_in(built: Built, env: Environment, wheel_sha: str | None) -> Plugin:
    """The plugin as installed in ``env`` (or used in place), with its manifest's Alembic folder."""
    if built.kind == Kind.PACKAGE:
        package_dir = built.package_dir
        import_root = package_dir.parent
        version = None
        distribution = None
    else:
        package = wheels.check_wheel(built.wheel)
        import_root = env.site_packages
        package_dir = import_root / package
        distribution, version = built.wheel.name.split("-")[:2]
    manifest, alembic_dir = alembic_folder(package_dir)
    return Plugin(
        package=package_dir.name,
        version=version or manifest.version or "unknown",
        import_root=import_root,
        alembic_dir=alembic_dir,
        source=str(built.kind),
        python=env.python,
        wheel=built.wheel,
        wheel_sha256=wheel_sha,
        distribution=distribution,
    )


@dataclass
class Probing:
    """What a probe process said of each plugin, by package, and how it ended."""

    found: dict[str, Probed | Fatal]
    exit_code: int | None
    output: str  # its last lines: why a plugin it never reported on is missing
    forks: Forks | None = None  # the probe, kept to fork the check processes


def probe(
    plugins: list[Plugin],
    python: Path,
    path: list[Path],
    engines: tuple[str, ...],
    timeout_s: float,
    serve: bool = False,
) -> Probing:
    """Load each plugin once in one process of ``python``, as the checks will.

    A plugin the process never reported on is missing from :attr:`Probing.found`
    (the process could not even start: the caller says so with its output).
    With ``serve``, a probe that loaded the plugins is kept (:attr:`Probing.forks`).
    """
    ours = theirs = None
    if serve:
        try:
            ours, theirs = channel_pair()
        except OSError:  # no SOCK_SEQPACKET here: check processes are started instead
            pass
    args = ["--probe", "--serve", str(theirs.fileno())] if theirs else ["--probe"]
    pass_fds = (theirs.fileno(),) if theirs else ()
    spec = ProbeSpec(tuple(plugins), engines)
    try:
        child = Child(python, args, spec, None, path, pass_fds=pass_fds)
    finally:
        if theirs:
            theirs.close()
    found: dict[str, Probed | Fatal] = {}
    serving = False
    watch = Watch(child, deadline=time.monotonic() + timeout_s, poll_s=1.0)
    try:
        for event in watch.events():
            if isinstance(event, Probed | Fatal) and event.package:
                found[event.package] = event
            serving = serving or isinstance(event, Serving)
    finally:
        if not serving or watch.stopped:
            child.kill()
            if ours:
                ours.close()
    if watch.stopped:
        raise PluginError(
            f"Loading the plugin took more than {timeout_s:g} s.",
            "Check what its modules do at import time.",
        )
    if serving and ours:
        return Probing(found, None, child.tail(), Forks(child.process, ours))
    return Probing(found, child.process.returncode, child.tail())


def _probe(prepared: PreparedPlugin, engines: tuple[str, ...], serve: bool) -> None:
    """Load the plugin once, rendering under each engine's dialect: a verdict per engine."""
    plugin = prepared.plugin
    probing = probe(
        [plugin],
        prepared.environment.python,
        prepared.child_path,
        engines,
        PROBE_TIMEOUT_S,
        serve=serve,
    )
    try:
        _judge_probe(prepared, probing, engines)
    except BaseException:
        if probing.forks is not None:
            probing.forks.close()
        raise
    prepared.forks = probing.forks


def _judge_probe(prepared: PreparedPlugin, probing: Probing, engines: tuple[str, ...]) -> None:
    plugin = prepared.plugin
    found = probing.found.get(plugin.package)
    if found is None:
        raise PluginError(
            f"The plugin's environment could not load the harness's check process "
            f"(exit code {probing.exit_code}):\n{probing.output}",
            f"Check the environment in {prepared.environment.path}; remove it to rebuild it.",
        )
    if isinstance(found, Fatal):
        failure = _load_failure(found.cause, prepared)
        prepared.load_failures = dict.fromkeys(engines, failure)
        return
    prepared.schema = found.schema
    prepared.revisions = found.revisions
    prepared.heads = found.heads
    prepared.offline = found.offline
    prepared.load_failures = {
        engine: _load_failure(cause, prepared) for engine, cause in found.failures.items()
    }


def _load_failure(cause: Cause, prepared: PreparedPlugin) -> str:
    """The verdict for a plugin that cannot load; bad input or a harness bug raises."""
    if cause.kind in ("missing_module", "import"):
        raise environment_error(cause)
    if cause.kind == "harness":
        raise PluginError(
            f"The harness failed while loading the plugin at {cause.where}: {cause.error}.",
            "This is a harness bug; rerun with -v and report it with the output.",
        )
    return describe_failure(cause)


def environment_error(cause: Cause) -> PluginError:
    """A module the environment lacks (or holds in another release), as the user's fix."""
    where = cause.where or "the plugin"
    chain = f"{cause.raised_at}, reached from {where}," if cause.raised_at else where
    module = cause.module or "?"
    if cause.kind == "missing_module":
        top = module.split(".")[0]
        distribution = KNOWN_DISTRIBUTIONS.get(top, top.replace("_", "-"))
        return PluginError(
            f"The plugin's environment has no module {module!r}: {chain} imports it.",
            f"Add the distribution that provides it: --with {distribution} (in nox sessions: "
            f"MATRIX_PLUGIN_WITH={distribution}), or --with-no-deps {distribution} when the "
            "plugin needs only a module of it and not its dependencies; the plugin does not "
            "declare it.",
        )
    installed = cause.distribution
    return PluginError(
        f"The plugin's environment cannot import what {chain} needs: {cause.error}"
        + (f" (installed: {installed})." if installed else "."),
        "The installed release of that distribution differs from the one the plugin was "
        "written for: pin the release it needs with --constraints FILE (a line such as "
        "'Twisted<26') or --with 'NAME<VERSION'.",
    )


def describe_failure(cause: Cause) -> str:
    where = f" at {cause.where}" if cause.where else ""
    return f"the plugin cannot be loaded{where}: {cause.error}"
