"""``plugin_package.json``: read and validated the way Peek reads it.

Peek finds a plugin's services and its Alembic folder here, so the harness
does too, and checks every field it uses before any server starts: a value
of the wrong type is one paragraph naming the file, the field and the fix,
never a traceback halfway through a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from matrix.documents import read_json
from matrix.errors import PluginError

FILE_NAME = "plugin_package.json"


@dataclass(frozen=True)
class Manifest:
    """What the harness uses of a plugin's ``plugin_package.json``."""

    path: Path
    services: tuple[str, ...]
    alembic_dir: str  # relative to the package folder
    version: str | None  # "plugin": {"version"} (Peek 5), else the top-level "version"
    package_name: str | None


def read_manifest(package_dir: Path) -> Manifest:
    """Read and validate ``<package_dir>/plugin_package.json``."""
    path = package_dir / FILE_NAME
    data = read_json(
        path,
        "plugin manifest",
        "Fix the file: Peek reads it to find the plugin's services.",
        missing=f"{package_dir} has no {FILE_NAME}.",
        missing_fix="Point --plugin at a Peek plugin; its package folder holds "
        "plugin_package.json.",
        error=PluginError,
    )
    return parse_manifest(path, data)


def parse_manifest(path: Path, data: Any) -> Manifest:
    """Validate the parsed JSON of a manifest; every field the harness uses is checked."""
    if not isinstance(data, dict):
        raise PluginError(
            f"{path} holds a JSON {type(data).__name__}, not an object.",
            'Make it an object: {"plugin": {...}, "requiresServices": [...], "storage": {...}}.',
        )
    services = _field(path, data, "requiresServices", list, [])
    if not all(isinstance(s, str) for s in services):
        raise PluginError(
            f"{path}: requiresServices = {services!r} is not a list of strings.",
            'List the service names as strings, e.g. ["logic", "storage"].',
        )
    storage = _field(path, data, "storage", dict, None)
    if "storage" not in services or storage is None:
        raise PluginError(
            f"The plugin does not use Peek's storage service: {path} lacks "
            '"storage" in "requiresServices" or a "storage": {"alembicDir": ...} section.',
            'Add both, as in the Peek tutorial\'s "Add Storage Service" step; '
            "the harness only tests plugins with storage.",
        )
    alembic_dir = _field(path, storage, "alembicDir", str, None, where="storage.alembicDir")
    relative = PurePosixPath(alembic_dir or "")
    if not alembic_dir or relative.is_absolute() or ".." in relative.parts:
        raise PluginError(
            f"{path}: storage.alembicDir = {alembic_dir!r} is not a folder inside the package.",
            'Give the Alembic folder relative to the package, e.g. "_private/alembic".',
        )
    plugin = _field(path, data, "plugin", dict, {})
    version = _field(path, plugin, "version", str, None, where="plugin.version")
    version = version or _field(path, data, "version", str, None)
    package_name = _field(path, plugin, "packageName", str, None, where="plugin.packageName")
    return Manifest(path, tuple(services), alembic_dir, version, package_name)


def _field(
    path: Path, data: dict, key: str, kind: type, default: Any, where: str | None = None
) -> Any:
    if key not in data or data[key] is None:
        return default
    value = data[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        name = {dict: "an object", list: "a list", str: "a string"}.get(kind, kind.__name__)
        raise PluginError(
            f"{path}: {where or key} = {json.dumps(value)} is not {name}.",
            f"Make {where or key} {name}, as Peek expects.",
        )
    return value


def alembic_folder(package_dir: Path) -> tuple[Manifest, Path]:
    """The manifest and the Alembic folder it names, which must hold an env.py."""
    manifest = read_manifest(package_dir)
    folder = package_dir / manifest.alembic_dir
    if not (folder / "env.py").is_file():
        raise PluginError(
            f"storage.alembicDir of {package_dir.name} points at {folder}, which has no env.py.",
            "Check the path in plugin_package.json, and that a wheel includes the Alembic "
            "folder (env.py, script.py.mako, versions/*.py) as package data.",
        )
    return manifest, folder
