"""The site file: a Peek release as a site deploys it, plugins in load order.

::

    schema_version = 1
    name = "Synerty Peek 5.1.6"
    with = ["Twisted<26"]                        # every plugin, both releases
    with_no_deps = ["peek-platform=={version}"]  # {version}: the plugin's own release

    [[plugin]]                                   # in the order Peek loads them
    requirement = "peek-core-device==5.1.6"      # this release
    previous = "peek-core-device==4.1.9"         # the release the site runs today

    [[plugin]]
    requirement = "peek-plugin-diagram==5.1.6"
    previous = "peek-plugin-diagram==4.1.9"
    with = ["peek-abstract-chunked-index=={version}", "hashids"]

    [[plugin]]
    requirement = "peek-plugin-new==5.1.6"
    fresh = "no release before 5 installs here: ..."   # installed fresh, and why

``requirement`` and ``previous`` take what ``--plugin`` takes (a
requirement, a wheel, an sdist, a folder). ``with`` and ``with_no_deps`` are
the plugin's undeclared extras (the README's table); ``{version}`` is replaced
by the version the plugin's requirement pins, so one line serves both
releases. Each plugin names its previous release or says why it has none.

The order is the logic service's: its ``ServerPluginLoader`` loads the core
plugins first, in the fixed order of peek-platform's ``corePlugins``, then
the optional plugins in the order ``config.json`` enables them; a site file
that lists core plugins otherwise is refused (Peek would not run them so).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from matrix.documents import read_toml
from matrix.errors import HarnessError

SCHEMA_VERSION = 1
# peek_platform/plugin/PluginLoaderABC.py (5.1.6): loadCorePlugins() walks this list.
CORE_ORDER = (
    "peek_core_email",
    "peek_core_device",
    "peek_core_search",
    "peek_core_user",
    "peek_core_docdb",
    "peek_core_screen",
)
_PLUGIN_KEYS = {"requirement", "previous", "fresh", "with", "with_no_deps"}
_TOP_KEYS = {"schema_version", "name", "with", "with_no_deps", "plugin"}


class SiteFileError(HarnessError):
    """The site file cannot be used."""


@dataclass(frozen=True)
class Release:
    """One release of one plugin: what to install, and its undeclared extras."""

    spec: str  # a --plugin form
    with_requirements: tuple[str, ...] = ()
    without_dependencies: tuple[str, ...] = ()

    @property
    def version(self) -> str | None:
        """The version an exact requirement pins; None for paths and ranges."""
        return pinned_version(self.spec)


@dataclass(frozen=True)
class SitePlugin:
    """One plugin of the site: this release, and the one the site runs today (or why none)."""

    index: int  # its place in the load order, from 0
    release: Release
    previous: Release | None
    fresh: str | None  # why the plugin is installed fresh at this release

    @property
    def label(self) -> str:
        return self.release.spec


@dataclass(frozen=True)
class Site:
    path: Path
    name: str
    sha256: str
    plugins: tuple[SitePlugin, ...]


def load_site(path: Path) -> Site:
    """Read and validate a site file; every problem is one paragraph naming the field."""
    data = read_toml(
        path,
        "site file",
        "Fix it at the line and column given; site.toml in the repository is an example.",
        missing=f"The site file {path} does not exist.",
        missing_fix="Pass --site the path of a site file (site.toml in the repository is an "
        "example).",
        error=SiteFileError,
    )
    return parse_site(path, data, hashlib.sha256(path.read_bytes()).hexdigest())


def parse_site(path: Path, data: dict[str, Any], sha256: str = "") -> Site:
    where = f"The site file {path}"
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SiteFileError(
            f"{where} has unknown keys {', '.join(unknown)}.",
            f"Use {', '.join(sorted(_TOP_KEYS))}.",
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise SiteFileError(
            f"{where} has schema_version {data.get('schema_version')!r}; this harness reads "
            f"{SCHEMA_VERSION}.",
            f"Set schema_version = {SCHEMA_VERSION} at the top of the file.",
        )
    entries = data.get("plugin")
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) for e in entries)
    ):
        raise SiteFileError(
            f"{where} lists no [[plugin]] tables.",
            "List the site's plugins as [[plugin]] tables, in the order Peek loads them.",
        )
    shared_with = _strings(where, data, "with")
    shared_no_deps = _strings(where, data, "with_no_deps")
    plugins = []
    for index, entry in enumerate(entries):
        plugins.append(
            _plugin(f"{where}, [[plugin]] #{index + 1}", index, entry, shared_with, shared_no_deps)
        )
    specs = [p.release.spec for p in plugins]
    twice = sorted({s for s in specs if specs.count(s) > 1})
    if twice:
        raise SiteFileError(
            f"{where} lists {', '.join(twice)} more than once.",
            "A site installs each plugin once; remove the repeated [[plugin]] table.",
        )
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise SiteFileError(f"{where}: name = {name!r} is not a string.", "Name the site.")
    return Site(path, name, sha256, tuple(plugins))


def _plugin(
    where: str,
    index: int,
    entry: dict[str, Any],
    shared_with: tuple[str, ...],
    shared_no_deps: tuple[str, ...],
) -> SitePlugin:
    unknown = sorted(set(entry) - _PLUGIN_KEYS)
    if unknown:
        raise SiteFileError(
            f"{where} has unknown keys {', '.join(unknown)}.",
            f"Use {', '.join(sorted(_PLUGIN_KEYS))}.",
        )
    requirement = entry.get("requirement")
    if not isinstance(requirement, str) or not requirement.strip():
        raise SiteFileError(
            f"{where} has no requirement.",
            'Give the plugin at this release: requirement = "peek-plugin-inbox==5.1.6" (or a '
            "wheel, an sdist or a folder).",
        )
    previous, fresh = entry.get("previous"), entry.get("fresh")
    if (previous is None) == (fresh is None):
        raise SiteFileError(
            f"{where} ({requirement}) has {'both' if previous else 'neither'} previous and fresh.",
            'Name the release the site runs today (previous = "peek-plugin-inbox==4.1.9"), or '
            'say why there is none (fresh = "..."): the plugin is then installed fresh.',
        )
    for key, value in (("previous", previous), ("fresh", fresh)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise SiteFileError(
                f"{where}: {key} = {value!r} is not a string.", f"Make {key} a string."
            )
    extras = (*shared_with, *_strings(where, entry, "with"))
    no_deps = (*shared_no_deps, *_strings(where, entry, "with_no_deps"))
    return SitePlugin(
        index=index,
        release=_release(where, requirement, extras, no_deps),
        previous=_release(where, previous, extras, no_deps) if previous else None,
        fresh=fresh,
    )


def _release(where: str, spec: str, extras: tuple[str, ...], no_deps: tuple[str, ...]) -> Release:
    version = pinned_version(spec)

    def expand(requirement: str) -> str:
        if "{version}" not in requirement:
            return _requirement(where, requirement)
        if version is None:
            raise SiteFileError(
                f"{where}: {requirement!r} uses {{version}}, but {spec} pins no version.",
                "Pin the plugin with == (peek-plugin-inbox==5.1.6), or write the extra's "
                "version out.",
            )
        return _requirement(where, requirement.replace("{version}", version))

    return Release(spec, tuple(map(expand, extras)), tuple(map(expand, no_deps)))


def pinned_version(spec: str) -> str | None:
    """``5.1.6`` of ``peek-plugin-inbox==5.1.6``; None for a path or a range."""
    if "/" in spec or spec.endswith((".whl", ".tar.gz", ".zip")):
        return None
    try:
        specifiers = list(Requirement(spec).specifier)
    except InvalidRequirement:
        return None
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "==="):
        return specifiers[0].version
    return None


def _strings(where: str, data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SiteFileError(
            f"{where}: {key} = {value!r} is not a list of requirements.",
            f'Write {key} as a list of strings, e.g. {key} = ["Twisted<26"].',
        )
    return tuple(value)


def _requirement(where: str, text: str) -> str:
    try:
        return str(Requirement(text))
    except InvalidRequirement as error:
        raise SiteFileError(
            f"{where}: {text!r} is not a requirement ({error}).",
            "Write it as pip does, e.g. 'Twisted<26' or 'peek-platform=={version}'.",
        ) from None


def check_load_order(site: Site, packages: list[str]) -> None:
    """Refuse core plugins listed after an optional one or out of Peek's own order.

    ``packages`` are the plugins' import names, in the site file's order.
    """
    core = [p for p in packages if p in CORE_ORDER]
    first_optional = next((i for i, p in enumerate(packages) if p not in CORE_ORDER), len(packages))
    late = [p for p in packages[first_optional:] if p in CORE_ORDER]
    expected = sorted(core, key=CORE_ORDER.index)
    if late or core != expected:
        raise SiteFileError(
            f"The site file {site.path} lists the core plugins as {', '.join(core)}"
            + (f" ({', '.join(late)} after an optional plugin)" if late else "")
            + "; Peek's ServerPluginLoader loads the core plugins first, in the order "
            f"{', '.join(CORE_ORDER)}, then the optional ones in config.json's order.",
            f"List the core plugins first, as {', '.join(expected)}.",
        )
