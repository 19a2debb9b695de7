"""Build and publish: the two ends of the release around the gate.

:func:`build_release` turns the plugin project into an sdist and a wheel in
``dist/`` the way a release must: with the one wheel builder the matrix also
uses (:func:`matrix.install.sources.build_wheel`: a clean copy,
``SOURCE_DATE_EPOCH``), proven reproducible by building the wheel a second
time and comparing digests, checked by ``twine check``, and refused when the
wheel lacks a file the migrations need at run time. The digests go to
``dist/SHA256SUMS``.

:func:`publish` takes the gate's passing :class:`~matrix.gate.Verdict` and
uploads the proven wheel with twine to a :class:`Repository` the command
line resolved from the environment (``TWINE_REPOSITORY_URL``,
``TWINE_USERNAME``, ``TWINE_PASSWORD``, and ``MATRIX_INDEX_URL`` for the
index to ask; the password is masked everywhere and reaches twine through
its environment only). It asks the index itself, before and after, which
bytes it serves under that file name: the same bytes already there are a
skip, not an error; other bytes under the same version are refused. (Twine's
own ``--skip-existing`` is refused by twine for any index but PyPI's, and
trusts the server's error message; asking the index works everywhere.) The
evidence (``compat.json``, ``compat.md``) is summarised in
``release-notes.md`` next to them, which the CI release attaches; the wheel
itself cannot carry it without changing the digest the gate proved.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename

from matrix import gate, masking, processes
from matrix.errors import HarnessError, PluginError
from matrix.install import index
from matrix.install.manifest import FILE_NAME, read_manifest
from matrix.install.sources import build_wheel, sha256_of
from matrix.report import write_atomic
from matrix.results import TargetResult

SUMS_FILE = "SHA256SUMS"
RELEASE_NOTES = "release-notes.md"
TWINE_TIMEOUT_S = 600

# -- build ---------------------------------------------------------------------------


def build_release(project: Path, dist_dir: Path) -> list[Path]:
    """Build, check and record the sdist and wheel of ``project``; return them."""
    needed = runtime_files(project)
    _clear(dist_dir)
    wheel = build_wheel(project, dist_dir)
    built = [*sorted(dist_dir.glob("*.tar.gz")), wheel]
    processes.run(
        [sys.executable, "-m", "twine", "check", "--strict", *built],
        "twine check",
        timeout=TWINE_TIMEOUT_S,
    )
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    missing = [name for name in needed if name not in inside]
    if missing:
        raise PluginError(
            f"The wheel {wheel.name} lacks files the migrations need at run time: "
            f"{', '.join(missing)}.",
            "Declare them as package data in the plugin's pyproject.toml "
            "(its tool.setuptools.package-data table) and build again.",
        )
    _check_reproducible(project, built)
    (dist_dir / SUMS_FILE).write_text(
        "".join(f"{sha256_of(path)}  {path.name}\n" for path in built), encoding="utf-8"
    )
    return built


def runtime_files(project: Path) -> list[str]:
    """Paths, as inside the wheel, of every file Peek needs to run the migrations.

    Read from the source, as Peek reads the installed plugin: the manifest
    names the Alembic folder, which must hold ``env.py``, ``script.py.mako``
    and the revisions in ``versions/``; the package must hold an ``alembic.ini``.
    """
    manifests = sorted(project.glob(f"*/{FILE_NAME}"))
    if len(manifests) != 1:
        raise PluginError(
            f"{project} has {len(manifests)} packages with a {FILE_NAME}; expected exactly one.",
            "Pass --plugin with the plugin's project folder (the one with pyproject.toml).",
        )
    package = manifests[0].parent
    alembic = package / read_manifest(package).alembic_dir
    files = [manifests[0], alembic / "env.py", alembic / "script.py.mako"]
    revisions = [p for p in sorted((alembic / "versions").glob("*.py")) if p.stem != "__init__"]
    inis = sorted(p for p in package.rglob("alembic.ini") if "__pycache__" not in p.parts)
    absent = [p.relative_to(project).as_posix() for p in files if not p.is_file()]
    absent += [] if revisions else [f"{(alembic / 'versions').relative_to(project)}/*.py"]
    absent += [] if inis else [f"{package.name}/**/alembic.ini"]
    if absent:
        raise PluginError(
            f"The plugin source in {project} lacks {', '.join(absent)}.",
            "A Peek storage plugin needs them to run its migrations; restore them.",
        )
    return [p.relative_to(project).as_posix() for p in [*files, *revisions, *inis]]


def _clear(dist_dir: Path) -> None:
    """Empty dist/ of earlier builds, so that the gate finds exactly one wheel."""
    dist_dir.mkdir(parents=True, exist_ok=True)
    for old in [*dist_dir.glob("*.whl"), *dist_dir.glob("*.tar.gz"), dist_dir / SUMS_FILE]:
        old.unlink(missing_ok=True)


def _check_reproducible(project: Path, built: list[Path]) -> None:
    """Build the sdist and the wheel again and compare the bytes.

    ``python -m matrix run --plugin <project>`` builds them the same way, so
    equal digests also mean a matrix run on the project proves the released wheel.
    """
    with tempfile.TemporaryDirectory(prefix="matrix-rebuild-") as scratch:
        build_wheel(project, Path(scratch))
        for first in built:
            again = Path(scratch) / first.name
            digests = sha256_of(first), sha256_of(again) if again.is_file() else "nothing"
            if digests[0] != digests[1]:
                raise PluginError(
                    f"Two builds of {project} gave different {first.name} (sha256 {digests[0]} "
                    f"and {digests[1]}), so the gate could not tie a report to the published "
                    "files.",
                    "Make the build deterministic: no timestamps or random values written "
                    "into the package at build time (SOURCE_DATE_EPOCH is set for the build).",
                )


# -- publish ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Repository:
    """Where twine uploads, and the simple index that tells what is there."""

    upload_url: str
    index_url: str
    username: str | None
    password: str | None

    def auth_for(self, url: str) -> tuple[str, str] | None:
        """The credentials, for the repository's own hosts only.

        A simple page may link its files to another host (a CDN, a mirror):
        the upload password must not travel there.
        """
        if not (self.username and self.password):
            return None
        own = {_origin(self.upload_url), _origin(self.index_url)}
        return (self.username, self.password) if _origin(url) in own else None

    def twine_environment(self) -> dict[str, str]:
        """The TWINE_* variables that make twine upload here, and nowhere else."""
        values = {
            "TWINE_REPOSITORY_URL": self.upload_url,
            "TWINE_USERNAME": self.username,
            "TWINE_PASSWORD": self.password,
        }
        return {name: value for name, value in values.items() if value}


def repository_from_env(env: Mapping[str, str], index_url: str | None) -> Repository | None:
    """The repository twine's variables in ``env`` name; None when there is none.

    ``index_url`` is the simple index to ask what is already published; by
    default the repository's own ``/simple/``.
    """
    url = env.get("TWINE_REPOSITORY_URL")
    if not url:
        return None
    password = env.get("TWINE_PASSWORD")
    masking.register(password)
    masking.register(urlsplit(url).password)
    index = index_url or url.rstrip("/") + "/simple/"
    masking.register(urlsplit(index).password)
    return Repository(url, index, env.get("TWINE_USERNAME"), password)


def publish(verdict: gate.Verdict, repository: Repository, reports_dir: Path) -> str:
    """Upload a passing verdict's wheel unless the index already serves these bytes.

    Writes the release notes beside the evidence; returns what was done.
    """
    if not verdict.passed:
        raise HarnessError(
            f"The gate refused {verdict.build.wheel.name}, so it cannot be published.",
            "Publish only a verdict that passed: python -m matrix publish runs the gate first.",
        )
    done = upload(verdict.build, repository)
    notes = write_release_notes(verdict, reports_dir)
    evidence = [reports_dir / gate.REPORT_FILE, reports_dir / "compat.md", notes]
    return f"{done}\nEvidence for the release: {', '.join(map(str, evidence))}."


def upload(build: gate.Build, repository: Repository) -> str:
    """Upload with twine and confirm with the index; a wheel already served is skipped."""
    where = masking.mask(repository.upload_url)
    if _already_served(repository, build, published_sha256(repository, build.wheel.name)):
        return f"{build.wheel.name} is already published at {where} with the same sha256: skipped."
    options = ["--non-interactive", "--disable-progress-bar"]
    done = processes.run(
        [sys.executable, "-m", "twine", "upload", *options, build.wheel],
        "twine upload",
        timeout=TWINE_TIMEOUT_S,
        env={**os.environ, **repository.twine_environment()},
    )
    served = published_sha256(repository, build.wheel.name)
    if served != build.sha256:
        raise HarnessError(
            f"After the upload the index serves {build.wheel.name} as "
            f"{'nothing' if served is None else 'sha256 ' + served}, not the proven "
            f"{build.sha256}.",
            "Check the repository; set MATRIX_INDEX_URL if its simple index is not "
            "TWINE_REPOSITORY_URL/simple/.",
        )
    return (
        f"{(done.stdout + done.stderr).rstrip()}\nPublished {build.wheel.name} "
        f"(sha256 {build.sha256}) to {where}; the index serves these bytes."
    )


def dry_run_upload(build: gate.Build, repository: Repository) -> str:
    """What ``upload`` would do, asking the index (read-only); nothing is written.

    An index that cannot be read does not end the preview: the dry run says
    what it could not learn and that a real publish stops there, and still
    shows what would be uploaded where.
    """
    where = masking.mask(repository.upload_url)
    unknown = ""
    try:
        served = published_sha256(repository, build.wheel.name)
    except HarnessError as error:
        served = None
        unknown = (
            f"\n  Not known: whether the index already serves it. {error.cause} A real "
            f"publish asks the index first and stops here: {error.fix}"
        )
    if _already_served(repository, build, served):
        return (
            f"Dry run: {build.wheel.name} is already published at {where} with the same "
            "sha256: it would be skipped. Nothing was uploaded or written."
        )
    size = build.wheel.stat().st_size
    return (
        f"Dry run: would upload {build.wheel} ({size} bytes, sha256 {build.sha256})\n"
        f"  to {where} as {repository.username or '(no user)'}; nothing was uploaded, and "
        "the reports were left as they are (a real publish records the verdict in them and "
        f"writes release-notes.md).{unknown}"
    )


def _already_served(repository: Repository, build: gate.Build, served: str | None) -> bool:
    """True when the index serves these very bytes (``served``: their sha256); other bytes
    are refused."""
    if served is not None and served != build.sha256:
        raise HarnessError(
            f"{masking.mask(repository.upload_url)} already serves {build.wheel.name} with "
            f"sha256 {served}, not the proven {build.sha256}; an index never replaces a "
            "published file.",
            "Bump the plugin's version, rebuild, rerun the matrix and publish that.",
        )
    return served == build.sha256


def published_sha256(repository: Repository, wheel_name: str) -> str | None:
    """The sha256 of the bytes the index serves as ``wheel_name``; None if it has none.

    The file is downloaded and hashed rather than trusting a link fragment,
    which some servers give as md5 or not at all. The upload credentials go
    to the repository's own hosts only.
    """
    fix = (
        "Check TWINE_REPOSITORY_URL, TWINE_USERNAME and TWINE_PASSWORD (they must be "
        "allowed to read), or set MATRIX_INDEX_URL to the repository's simple index."
    )
    project = canonicalize_name(parse_wheel_filename(wheel_name)[0])
    index_url = repository.index_url
    try:
        files = index.project_files(index_url, project, repository.auth_for(index_url), fix)
        listed = {f.filename: f for f in files or []}
        if wheel_name not in listed:
            return None
        url = listed[wheel_name].url
        served = index.fetch(url, repository.auth_for(url), fix)
    except HarnessError as error:
        raise HarnessError(masking.mask(error.cause), error.fix) from None
    if served is None:
        raise HarnessError(
            f"The index lists {wheel_name} but does not serve it.",
            "Check the repository's storage; rerun the publish once it serves the file.",
        )
    return hashlib.sha256(served[1]).hexdigest()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


# -- release notes -------------------------------------------------------------------


def write_release_notes(verdict: gate.Verdict, reports_dir: Path) -> Path:
    path = reports_dir / RELEASE_NOTES
    write_atomic(path, masking.mask(release_notes(verdict)))
    return path


def release_notes(verdict: gate.Verdict) -> str:
    """The evidence in a few lines: what was proven, on which databases, what was waived."""
    report, build = verdict.report, verdict.build
    present = {t.id for t in report.targets}
    rows = [_notes_row(verdict, t.id, t.label, _server(t), str(t.status)) for t in report.targets]
    rows += [
        _notes_row(verdict, i, "-", "", "missing")
        for i in verdict.allowed_missing
        if i not in present
    ]
    except_allowed = ", except those allowed missing" if verdict.allowed_missing else ""
    lines = [
        f"# {report.plugin.name} {report.plugin.version}",
        "",
        f"Wheel `{build.wheel.name}`, sha256 `{build.sha256}`; the plugin: "
        f"{report.plugin.source.describe()}.",
        "It passed the release gate: every database the matrix requires proved its "
        f"migrations on this wheel{except_allowed} (matrix run `{report.run_id}`, "
        f"{report.started_at}).",
        "",
        "| target | database | required | status |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    if verdict.acknowledged:
        lines += [
            "Passed with findings the plugin's policy acknowledges (target, check, "
            "revision, kind: finding (reason)):",
            "",
            *[f"- {line}" for line in gate.acknowledged_lines(verdict.acknowledged)],
            "",
        ]
    lines += [
        "Evidence attached to this release: `compat.json` (every check, machine-readable) "
        "and `compat.md` (the same, readable).",
        "",
    ]
    return "\n".join(lines)


def _notes_row(verdict: gate.Verdict, target_id: str, label: str, server: str, status: str) -> str:
    required = "yes" if target_id in verdict.required else "no"
    allowed = " (allowed missing)" if target_id in verdict.allowed_missing else ""
    return f"| {target_id} | {label}{server} | {required} | {status}{allowed} |"


def _server(target: TargetResult) -> str:
    """`` (server 15.18, PostGIS 3.3.2)``: what actually answered, or nothing."""
    found = [
        f"{name} {version}"
        for name, version in (
            ("server", target.server_version),
            ("PostGIS", target.postgis_version),
        )
        if version
    ]
    return f" ({', '.join(found)})" if found else ""
