"""A wheel checked before anything installs it: whole, and holding one Peek plugin.

Kept apart from :mod:`~matrix.install.sources`, which turns every form a
plugin comes in into a wheel: whatever the form, the wheel is checked here,
and a failure names what the wheel holds and, where the harness built it,
what its source holds, so that the fix it gives is the one that works.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from pathlib import Path

from matrix.errors import PluginError
from matrix.install.manifest import FILE_NAME


def check_wheel(wheel: Path, built_from: Path | None = None) -> str:
    """Check a wheel's integrity and find its one plugin package; return its name.

    Every error says what the wheel holds and, where the harness built it,
    what the source holds, so the fix it names is the one that works.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            broken = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise PluginError(
            f"{wheel} is not a valid wheel ({error}).",
            "Download or build it again; `python -m zipfile -t` tests a wheel.",
        ) from None
    if broken is not None:
        raise PluginError(
            f"{wheel} is corrupt: {broken} fails its CRC check.",
            "Download or build it again; `python -m zipfile -t` tests a wheel.",
        )
    if not any(re.fullmatch(r"[^/]+\.dist-info/METADATA", n) for n in names):
        raise PluginError(
            f"{wheel} has no .dist-info/METADATA, so it is not a wheel an installer accepts.",
            "Build it with `python -m build --wheel`.",
        )
    found = [n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith("/" + FILE_NAME)]
    if len(found) == 1:
        return found[0]
    packages = sorted({n.split("/")[0] for n in names if "/" in n and ".dist-info" not in n})
    deeper = [n for n in names if n.endswith("/" + FILE_NAME)]
    what = (
        f"{wheel.name} holds {len(found)} packages with a {FILE_NAME} at their top "
        f"({', '.join(found) or 'none'}; packages: {', '.join(packages) or 'none'}"
        + (f"; deeper: {', '.join(deeper)}" if deeper and not found else "")
        + ")."
    )
    if len(found) > 1:
        raise PluginError(what, "A wheel must ship exactly one Peek plugin package.")
    in_source = _manifests_in(built_from) if built_from is not None else []
    if in_source:
        fix = (
            f"The source has {', '.join(in_source)} but the wheel built from it does not: "
            "the file is not declared as package data. With setuptools, list it in "
            "[tool.setuptools.package-data] (or set include-package-data and add it to "
            "MANIFEST.in), then build again."
        )
    else:
        fix = f"Pass a Peek plugin: its package must hold {FILE_NAME}."
    raise PluginError(what, fix)


def _manifests_in(source: Path) -> list[str]:
    if source.is_dir():
        return [p.relative_to(source).as_posix() for p in sorted(source.glob(f"*/{FILE_NAME}"))]
    try:
        if source.name.endswith(".zip"):
            with zipfile.ZipFile(source) as archive:
                names = archive.namelist()
        else:
            with tarfile.open(source) as archive:
                names = archive.getnames()
    except (tarfile.TarError, zipfile.BadZipFile, OSError):
        return []
    return [n for n in names if n.count("/") == 2 and n.endswith("/" + FILE_NAME)]
