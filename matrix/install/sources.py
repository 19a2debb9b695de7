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
  copy into an sdist and a wheel, reproducibly (``SOURCE_DATE_EPOCH``); a
  wheel built from the same content (and date) is reused;
- a package folder (with ``plugin_package.json``), used in place.

Downloads and wheels built from sdists are cached by what identifies them
(an exact pin, the sdist's sha256), so a rerun builds nothing and gets the
very same wheel, and with it the same cached environment.

Each form leaves its :class:`~matrix.results.Provenance`: what arrived (file
and sha256), from which index, and a commit only where the plugin was built
from a repository's tree. A wheel built by :func:`build_wheel` is recorded
in ``provenance.json`` beside it, so a later run on that wheel (the release
pipeline's test jobs) still knows the commit it was built from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from matrix import processes, settings
from matrix.errors import HarnessError, PluginError
from matrix.install import index
from matrix.install.manifest import FILE_NAME, alembic_folder, parse_manifest
from matrix.install.wheels import check_wheel
from matrix.provide import leftovers
from matrix.results import Provenance

DEFAULT_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest a zip holds
BUILD_TIMEOUT_S = 900
DOWNLOAD_TIMEOUT_S = 600
GIT_TIMEOUT_S = 60
BUILD_RECORD = "provenance.json"  # beside built wheels: which tree and commit each came from
DOWNLOAD_RECORD = "index.json"  # in a download's cache folder: the index it came from
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
    """A plugin made ready: its wheel, or its package folder used in place, and whence."""

    kind: Kind
    provenance: Provenance
    wheel: Path | None = None
    package_dir: Path | None = None


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
        return Built(
            Kind.PACKAGE,
            Provenance(str(Kind.PACKAGE), file=shown(source.path)),
            package_dir=source.path,
        )
    if source.kind == Kind.WHEEL:
        check_wheel(source.path)
        return Built(Kind.WHEEL, wheel_provenance(source.path), wheel=source.path)
    if source.kind == Kind.PROJECT:
        places = [dist_dir] if dist_dir else sorted((cache / "builds").glob("*"))
        wheel = reused_build(source.path, places)
        if wheel is None:
            wheel = build_wheel(source.path, dist_dir or work / "dist")
            if dist_dir is None:
                wheel = _keep(wheel, cache)
        recorded = recorded_build(wheel) or Provenance(str(Kind.PROJECT), tree=shown(source.path))
        return Built(Kind.PROJECT, recorded, wheel=wheel)
    if source.kind == Kind.SDIST:
        wheel, digest = _from_sdist(source.path, cache)
        return Built(
            Kind.SDIST, Provenance(str(Kind.SDIST), file=shown(source.path), sha256=digest), wheel
        )
    artifact = download(source.requirement, cache)
    provenance = Provenance(
        str(Kind.REQUIREMENT),
        requirement=source.requirement,
        index=_download_index(artifact),
        file=artifact.name,
        sha256=sha256_of(artifact),
    )
    if artifact.name.endswith(".whl"):
        check_wheel(artifact)
        return Built(Kind.REQUIREMENT, provenance, wheel=artifact)
    wheel, _ = _from_sdist(artifact, cache)
    return Built(Kind.REQUIREMENT, provenance, wheel=wheel)


# -- provenance ---------------------------------------------------------------------


def shown(path: Path) -> str:
    """A path as a report records it: relative to the working folder when inside it.

    CI jobs run in one checkout at possibly different places, so the gate in
    the publish job finds ``dist/x.whl`` where the test job recorded it.
    """
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def tree_commit(folder: Path) -> str | None:
    """The commit a source tree is at: CI's checkout (``CI_COMMIT_SHA``), else git's HEAD.

    None where neither says (no repository, no git): then no commit is recorded.
    """
    if settings.ci_commit():
        return settings.ci_commit()
    try:
        done = processes.run(
            ["git", "rev-parse", "HEAD"],
            "git rev-parse",
            timeout=GIT_TIMEOUT_S,
            cwd=folder,
            check=False,
        )
    except HarnessError:  # no git here
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def wheel_provenance(wheel: Path) -> Provenance:
    """A given wheel: its sha256, and the tree and commit its build record vouches for."""
    recorded = recorded_build(wheel)
    digest = sha256_of(wheel)
    return Provenance(
        str(Kind.WHEEL),
        file=shown(wheel),
        sha256=digest,
        commit=recorded.commit if recorded else None,
        tree=recorded.tree if recorded else None,
    )


def recorded_build(wheel: Path) -> Provenance | None:
    """The tree and commit ``provenance.json`` beside ``wheel`` records for these very bytes."""
    try:
        entry = json.loads((wheel.parent / BUILD_RECORD).read_text(encoding="utf-8"))[wheel.name]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(entry, dict) or entry.get("sha256") != sha256_of(wheel):
        return None  # another build under the same name: it vouches for nothing here
    return Provenance(str(Kind.PROJECT), commit=entry.get("commit"), tree=entry.get("tree"))


def _record_build(project: Path, built: list[Path], content: str) -> None:
    """Note, beside the files, which tree, commit and content each was built from.

    Written whole and replaced atomically: a run reusing the build rewrites it
    while another may read it.
    """
    path = built[0].parent / BUILD_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    commit = tree_commit(project)
    for file in built:
        record[file.name] = {
            "sha256": sha256_of(file),
            "tree": shown(project),
            "commit": commit,
            "content": content,
        }
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def reused_build(project: Path, places: list[Path]) -> Path | None:
    """A wheel built before from this very content, found in ``places``; None if there is none.

    The build is reproducible: the same files and the same ``SOURCE_DATE_EPOCH``
    give the same bytes, so a wheel whose record holds this content digest
    (:func:`project_content`) and whose bytes are still those recorded is the
    wheel a build would make now. Its record is written again, so that it
    names the commit the tree is at now (the gate compares it), and its sdist
    beside it, when it has the same content, is recorded with it.
    """
    content = project_content(project, source_date_epoch(project))
    for place in places:
        try:
            record = json.loads((place / BUILD_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        same = [
            place / name
            for name, entry in record.items()
            if isinstance(entry, dict)
            and entry.get("content") == content
            and (place / name).is_file()
            and entry.get("sha256") == sha256_of(place / name)
        ]
        wheels = [file for file in same if file.name.endswith(".whl")]
        if len(wheels) == 1:
            check_wheel(wheels[0], built_from=project)
            _record_build(project, same, content)
            return wheels[0]
    return None


def project_content(project: Path, epoch: str) -> str:
    """The sha256 of what a build of ``project`` reads: every file its clean copy holds
    (the same ignore patterns), by relative path, executable bit and bytes, and the epoch."""
    ignore = shutil.ignore_patterns(*PROJECT_LEFTOVERS)
    digest = hashlib.sha256(f"SOURCE_DATE_EPOCH={epoch}\0".encode())
    for folder, dirs, files in os.walk(project, followlinks=True):  # as copytree copies
        skipped = ignore(folder, [*dirs, *files])
        dirs[:] = sorted(d for d in dirs if d not in skipped)
        for name in sorted(f for f in files if f not in skipped):
            path = Path(folder, name)
            mode = "x" if path.stat().st_mode & 0o111 else "-"
            digest.update(f"{path.relative_to(project).as_posix()}\0{mode}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _keep(wheel: Path, cache: Path) -> Path:
    """A wheel built in the run's scratch folder, kept (with its record) for the gate.

    Kept under its sha256, written atomically: runs side by side never write
    the same file, and a report's wheel is still there after its run.
    """
    folder = cache / "builds" / sha256_of(wheel)[:16]
    folder.mkdir(parents=True, exist_ok=True)
    for file in (wheel, wheel.parent / BUILD_RECORD):
        temporary = folder / f".{file.name}.{os.getpid()}"
        shutil.copyfile(file, temporary)
        os.replace(temporary, folder / file.name)
    return folder / wheel.name


def _download_index(artifact: Path) -> str | None:
    try:
        return json.loads((artifact.parent / DOWNLOAD_RECORD).read_text(encoding="utf-8"))["index"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the index ---------------------------------------------------------------------


def download(requirement: str, cache: Path) -> Path:
    """The distribution file pip picks for ``requirement`` (a wheel if there is one).

    An exact pin is cached for good; a range asks the index every time.
    """
    exact = _exact_pin(requirement)
    folder = cache / "downloads" / hashlib.sha256(requirement.encode()).hexdigest()[:16]
    if exact and (folder / DOWNLOAD_RECORD).is_file():  # the record says which index served it
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
    if done.returncode == 0 and len(found) == 1:
        record = {"index": index.without_credentials(index.index_url())}
        (folder / DOWNLOAD_RECORD).write_text(json.dumps(record) + "\n", encoding="utf-8")
        return found[0]
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


def _exact_pin(requirement: str) -> bool:
    specifiers = list(Requirement(requirement).specifier)
    return len(specifiers) == 1 and specifiers[0].operator in ("==", "===")


def _artifacts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip")))


# -- sdists and projects --------------------------------------------------------------


def _from_sdist(sdist: Path, cache: Path) -> tuple[Path, str]:
    """Build (or reuse) the wheel of an sdist file or of a folder unpacked from one.

    Returns the wheel and the sdist's digest (of the file, or of the folder's tree).
    """
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
    return wheel, digest


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
        content = project_content(source, epoch)  # what was built, not what is there now
        _python_build(source, out, epoch, sdist_too=True)
        built = []
        for file in sorted(out.iterdir()):
            if file.name.endswith(".tar.gz"):
                reproducible_sdist(file, int(epoch))
            built.append(Path(shutil.copyfile(file, dist_dir / file.name)))
    (wheel,) = (file for file in built if file.name.endswith(".whl"))
    check_wheel(wheel, built_from=project)
    _record_build(project, built, content)
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
    """``SOURCE_DATE_EPOCH`` when set, else the project's last commit time, else a fixed date."""
    if settings.source_date_epoch():
        return settings.source_date_epoch()
    try:
        done = processes.run(
            ["git", "log", "-1", "--format=%ct", "--", "."],
            "git log",
            timeout=GIT_TIMEOUT_S,
            cwd=project,
            check=False,
        )
    except HarnessError:  # no git here, or it hangs: the fixed date still builds reproducibly
        return DEFAULT_SOURCE_DATE_EPOCH
    stamp = done.stdout.strip()
    return stamp if done.returncode == 0 and stamp.isdigit() else DEFAULT_SOURCE_DATE_EPOCH


def reproducible_sdist(sdist: Path, epoch: int) -> None:
    """Rewrite an sdist so that its bytes depend on its content and ``epoch`` only.

    setuptools writes ``PKG-INFO``, the ``*.egg-info`` files and the folders
    at build time, and gzip stamps the time it compressed: two builds of one
    commit differ. Here every member's mtime is clamped to ``epoch`` (as
    ``tar --clamp-mtime`` does), owners are dropped, members keep their order,
    and the gzip header carries ``epoch`` and no file name.
    """
    with tarfile.open(sdist, "r:gz") as archive:
        members = [(m, archive.extractfile(m).read() if m.isfile() else None) for m in archive]
        tar_format = archive.format
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for member, content in members:
            member.mtime = min(int(member.mtime), epoch)
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.pax_headers = {}
            archive.addfile(member, io.BytesIO(content) if content is not None else None)
    with sdist.open("wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=epoch) as stream:
        stream.write(buffer.getvalue())


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
