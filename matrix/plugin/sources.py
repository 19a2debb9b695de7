"""Every form a plugin comes in, turned into one wheel (or a package used in place).

``--plugin`` takes what a plugin developer or a release engineer has at hand:

- a requirement (``peek-plugin-inbox==5.1.6``), fetched from the package
  index with ``pip download`` (pip's index, ``PIP_INDEX_URL`` and its config
  apply); an exact pin also fetches a yanked release, as pip does;
- an sdist (``.tar.gz``), or a folder unpacked from one (it has ``PKG-INFO``),
  built into a wheel the way pip builds it: from the sdist as it is, so the
  package data its ``*.egg-info/SOURCES.txt`` declares is kept;
- a wheel (``.whl``), checked for integrity and used as it is;
- a project folder (``pyproject.toml`` or ``setup.py``), built from a clean
  copy into an sdist and a wheel, reproducibly (``SOURCE_DATE_EPOCH``);
- a package folder (with ``plugin_package.json``), used in place.

Downloads and wheels built from sdists are cached by what identifies them
(an exact pin, the sdist's sha256), so a rerun builds nothing and gets the
very same wheel, and with it the same cached environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from matrix import leftovers, processes
from matrix.errors import HarnessError, PluginError
from matrix.plugin.manifest import FILE_NAME, alembic_folder, parse_manifest

DEFAULT_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest a zip holds
BUILD_TIMEOUT_S = 900
DOWNLOAD_TIMEOUT_S = 600
# What a clean copy of a project leaves behind. A folder unpacked from an
# sdist keeps its *.egg-info: that is where the sdist declares its files.
PROJECT_LEFTOVERS = ("build", "dist", "*.egg-info", "__pycache__", ".git", ".nox", ".venv")
SDIST_LEFTOVERS = ("build", "dist", "__pycache__")


class Kind(StrEnum):
    REQUIREMENT = "requirement"
    SDIST = "sdist"
    WHEEL = "wheel"
    PROJECT = "project"
    PACKAGE = "in-place"


@dataclass(frozen=True)
class Source:
    """What ``--plugin`` named, classified."""

    kind: Kind
    path: Path | None = None
    requirement: str | None = None


@dataclass(frozen=True)
class Built:
    """A plugin made ready: its wheel, or its package folder used in place."""

    kind: Kind
    wheel: Path | None = None
    package_dir: Path | None = None
    requirement: str | None = None
    sdist: Path | None = None
    sdist_sha256: str | None = None
    built_from: Path | None = None  # the source folder a wheel was built from


def classify(spec: str | Path, option: str = "--plugin") -> Source:
    """Which form ``spec`` is; a clear error, naming the ``option`` it came from, when it is
    none of them."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_file():
            if path.name.endswith(".whl"):
                return Source(Kind.WHEEL, path)
            if path.name.endswith((".tar.gz", ".zip")):
                return Source(Kind.SDIST, path)
            raise PluginError(
                f"{option} {path} is a file, but not a wheel (.whl) or an sdist (.tar.gz).",
                f"Pass {option} a wheel, an sdist, a requirement such as "
                "peek-plugin-inbox==5.1.6, or a plugin's project or package folder.",
            )
        if (path / FILE_NAME).is_file():
            return Source(Kind.PACKAGE, path)
        if (path / "PKG-INFO").is_file() and _is_project(path):
            return Source(Kind.SDIST, path)
        if _is_project(path):
            return Source(Kind.PROJECT, path)
        raise PluginError(
            f"{option} {path} holds no {FILE_NAME}, pyproject.toml or setup.py.",
            f"Point {option} at the plugin's project folder (the one with pyproject.toml) "
            f"or at its package folder (the one with {FILE_NAME}).",
        )
    if "/" in text or text.endswith((".whl", ".tar.gz", ".zip")):
        raise PluginError(
            f"{option} {text}: the path does not exist.",
            f"Check the path; pass {option} a wheel, an sdist, a folder, or a requirement.",
        )
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        raise PluginError(
            f"{option} {text!r} is neither an existing path nor a requirement ({error}).",
            "Pass a path, or a requirement such as peek-plugin-inbox==5.1.6.",
        ) from None
    return Source(Kind.REQUIREMENT, requirement=str(requirement))


def _is_project(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() or (path / "setup.py").is_file()


def validate(source: Source, option: str = "--plugin") -> None:
    """Check what can be checked of a plugin before anything is built or started.

    A package folder's manifest, a wheel's integrity and manifest, a project's
    manifest: each error is the same paragraph it would be later, but before
    any server starts. A requirement is checked once it is downloaded.
    """
    if source.kind == Kind.PACKAGE:
        alembic_folder(source.path)
    elif source.kind == Kind.WHEEL:
        package = check_wheel(source.path)
        with zipfile.ZipFile(source.path) as archive:
            raw = archive.read(f"{package}/{FILE_NAME}")
        _parse_raw(source.path / package / FILE_NAME, raw)
    elif source.kind == Kind.PROJECT or (source.kind == Kind.SDIST and source.path.is_dir()):
        found = sorted(source.path.glob(f"*/{FILE_NAME}"))
        if len(found) != 1:
            raise PluginError(
                f"{source.path} has {len(found)} packages with a {FILE_NAME} "
                f"({', '.join(p.parent.name for p in found) or 'none'}); expected exactly one.",
                f"Point {option} at a Peek plugin's project folder; its package holds {FILE_NAME}.",
            )
        alembic_folder(found[0].parent)


def _parse_raw(path: Path, raw: bytes) -> None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PluginError(
            f"{path} cannot be read as JSON ({error}).",
            "Fix the file: Peek reads it to find the plugin's services.",
        ) from None
    parse_manifest(path, data)


def build(source: Source, cache: Path, dist_dir: Path | None, work: Path) -> Built:
    """Turn a classified source into a checked wheel (or a package folder)."""
    if source.kind == Kind.PACKAGE:
        return Built(Kind.PACKAGE, package_dir=source.path)
    if source.kind == Kind.WHEEL:
        check_wheel(source.path)
        return Built(Kind.WHEEL, wheel=source.path)
    if source.kind == Kind.PROJECT:
        wheel = build_wheel(source.path, dist_dir or work / "dist")
        return Built(Kind.PROJECT, wheel=wheel, built_from=source.path)
    if source.kind == Kind.SDIST:
        return _from_sdist(source.path, cache, Kind.SDIST)
    artifact = download(source.requirement, cache)
    if artifact.name.endswith(".whl"):
        check_wheel(artifact)
        return Built(Kind.REQUIREMENT, wheel=artifact, requirement=source.requirement)
    built = _from_sdist(artifact, cache, Kind.REQUIREMENT)
    return Built(
        Kind.REQUIREMENT,
        wheel=built.wheel,
        requirement=source.requirement,
        sdist=artifact,
        sdist_sha256=built.sdist_sha256,
        built_from=built.built_from,
    )


# -- the index ---------------------------------------------------------------------


def download(requirement: str, cache: Path) -> Path:
    """The distribution file pip picks for ``requirement`` (a wheel if there is one).

    An exact pin is cached for good; a range asks the index every time.
    """
    exact = _exact_pin(requirement)
    folder = cache / "downloads" / hashlib.sha256(requirement.encode()).hexdigest()[:16]
    if exact and folder.is_dir():
        found = _artifacts(folder)
        if len(found) == 1:
            return found[0]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(folder)]
    done = processes.run(
        [*command, requirement],
        "pip download",
        timeout=DOWNLOAD_TIMEOUT_S,
        check=False,
        fix="Check the network to the package index, or pass a local file.",
    )
    found = _artifacts(folder)
    if done.returncode != 0 or len(found) != 1:
        shutil.rmtree(folder, ignore_errors=True)
        tail = processes.tail(done.stdout + done.stderr, 15)
        hint = (
            "A yanked release is only fetched with an exact pin (==)."
            if not exact
            else "Check the name and version on the index."
        )
        raise PluginError(
            f"pip could not fetch {requirement} from the package index:\n{tail}",
            f"{hint} The index is pip's (PIP_INDEX_URL or pip's configuration overrides it).",
        )
    return found[0]


def previous_release(distribution: str, version: str) -> tuple[str | None, str]:
    """The highest release of ``distribution`` below ``version`` on pip's index.

    pip lists every version its index has when none matches what it is asked
    for (the yanked ones on a line of their own in newer pips); the harness
    asks for one that cannot exist to read that list. Peek's releases are all
    yanked, so ``<version`` alone would find nothing. Returns the exact pin, or None and why.
    """
    from packaging.version import InvalidVersion, Version

    impossible = f"{distribution}==0.0.0.dev0+peekmatrix.listing"
    with tempfile.TemporaryDirectory(prefix="matrix-versions-") as scratch:
        done = processes.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", scratch, impossible],
            "pip download",
            timeout=DOWNLOAD_TIMEOUT_S,
            check=False,
        )
    output = done.stdout + done.stderr
    listed = re.findall(r"\(from versions: ([^)]*)\)", output)
    listed += re.findall(r"Ignored the following yanked versions: ([^\n]*)", output)
    if not listed:
        return None, f"pip could not list the releases of {distribution} on its index"
    try:
        current = Version(version)
    except InvalidVersion:
        return None, f"{version} is not a version pip can compare"
    older = []
    for text in ",".join(listed).split(","):
        try:
            candidate = Version(text.strip())
        except InvalidVersion:
            continue
        if candidate < current and (current.is_prerelease or not candidate.is_prerelease):
            older.append(candidate)
    if not older:
        return None, f"the index has no release of {distribution} below {version}"
    return f"{distribution}=={max(older)}", ""


def _exact_pin(requirement: str) -> bool:
    specifiers = list(Requirement(requirement).specifier)
    return len(specifiers) == 1 and specifiers[0].operator in ("==", "===")


def _artifacts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip")))


# -- sdists and projects --------------------------------------------------------------


def _from_sdist(sdist: Path, cache: Path, kind: Kind) -> Built:
    """Build (or reuse) the wheel of an sdist file or of a folder unpacked from one."""
    if sdist.is_dir():
        digest = _tree_digest(sdist)
        source_dir, scratch = sdist, None
    else:
        digest = sha256_of(sdist)
        scratch = Path(tempfile.mkdtemp(prefix="matrix-sdist-"))
        source_dir = _unpack(sdist, scratch)
    try:
        out = cache / "wheels" / digest[:16]
        found = sorted(out.glob("*.whl")) if out.is_dir() else []
        if len(found) != 1:
            shutil.rmtree(out, ignore_errors=True)
            wheel = _build_wheel_only(source_dir, out, _newest_mtime(source_dir), SDIST_LEFTOVERS)
        else:
            wheel = found[0]
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    check_wheel(wheel, built_from=source_dir if sdist.is_dir() else sdist)
    return Built(kind, wheel=wheel, sdist=sdist, sdist_sha256=digest, built_from=sdist)


def _unpack(sdist: Path, into: Path) -> Path:
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as archive:
                archive.extractall(into)
        else:
            with tarfile.open(sdist) as archive:
                archive.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise PluginError(
            f"{sdist} is not a readable sdist ({error}).",
            "Download it again, or rebuild it with `python -m build --sdist`.",
        ) from None
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1 or not _is_project(tops[0]):
        raise PluginError(
            f"{sdist} does not unpack to one project folder with a pyproject.toml or setup.py.",
            "Pass a source distribution built by `python -m build --sdist`.",
        )
    return tops[0]


def build_wheel(project: Path, dist_dir: Path) -> Path:
    """Build a project's sdist and wheel reproducibly; return the wheel's path.

    The build runs on a clean copy: setuptools reuses a stale ``build/``
    folder, which would ship a deleted revision. The wheel is built from the
    sdist, as an installer would, and ``SOURCE_DATE_EPOCH`` pins the
    timestamps inside it, so the same source gives the same bytes, and so the
    sha256 the release gate checks.
    """
    dist_dir.mkdir(parents=True, exist_ok=True)
    epoch = source_date_epoch(project)
    with tempfile.TemporaryDirectory(prefix=leftovers.scratch_prefix("build")) as scratch:
        source, out = Path(scratch) / project.name, Path(scratch) / "out"
        shutil.copytree(project, source, ignore=shutil.ignore_patterns(*PROJECT_LEFTOVERS))
        _python_build(source, out, epoch, sdist_too=True)
        for built in out.iterdir():
            shutil.copyfile(built, dist_dir / built.name)
        (wheel,) = out.glob("*.whl")
    wheel = dist_dir / wheel.name
    check_wheel(wheel, built_from=project)
    return wheel


def _build_wheel_only(source: Path, out: Path, epoch: str, ignore: tuple[str, ...]) -> Path:
    with tempfile.TemporaryDirectory(prefix=leftovers.scratch_prefix("build")) as scratch:
        copy = Path(scratch) / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*ignore))
        _python_build(copy, out, epoch, sdist_too=False)
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise PluginError(
            f"Building {source.name} left {len(wheels)} wheels.", "Check its build configuration."
        )
    return wheels[0]


def _python_build(source: Path, out: Path, epoch: str, sdist_too: bool) -> None:
    """``python -m build``: the wheel from the sdist (``sdist_too``) or from ``source``."""
    command = [sys.executable, "-m", "build", "--outdir", str(out)]
    if not sdist_too:
        command.append("--wheel")
    if shutil.which("uv"):
        command += ["--installer", "uv"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch}
    done = processes.run(
        [*command, str(source)], "python -m build", timeout=BUILD_TIMEOUT_S, env=env, check=False
    )
    if done.returncode != 0:
        raise PluginError(
            f"Building the wheel of {source.name} failed:\n"
            f"{processes.tail(done.stdout + done.stderr, 15)}",
            f"Fix the build error above; `python -m build` in {source.name} reproduces it.",
        )


def source_date_epoch(project: Path) -> str:
    """The commit time of the project's last change, or a fixed date."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    try:
        done = processes.run(
            ["git", "log", "-1", "--format=%ct", "--", "."],
            "git log",
            timeout=60,
            cwd=project,
            check=False,
        )
    except HarnessError:  # no git here, or it hangs: the fixed date still builds reproducibly
        return DEFAULT_SOURCE_DATE_EPOCH
    stamp = done.stdout.strip()
    return stamp if done.returncode == 0 and stamp.isdigit() else DEFAULT_SOURCE_DATE_EPOCH


def _newest_mtime(folder: Path) -> str:
    newest = max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=0)
    return str(max(int(newest), int(DEFAULT_SOURCE_DATE_EPOCH)))


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(
        p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


# -- wheels ------------------------------------------------------------------------------


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
