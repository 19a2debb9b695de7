"""Build and publish: the two ends of the release around the gate.

``python -m matrix build`` turns the plugin project into an sdist and a wheel
in ``dist/`` the way a release must: reproducibly (``SOURCE_DATE_EPOCH``,
checked by building the wheel a second time and comparing digests), checked
by ``twine check``, and refused when the wheel lacks a file the migrations
need at run time. The digests go to ``dist/SHA256SUMS``.

``python -m matrix publish`` runs the gate, then uploads the proven wheel
with twine to the repository named by the environment (``TWINE_REPOSITORY_URL``,
``TWINE_USERNAME``, ``TWINE_PASSWORD``; nothing is read from a file and the
password is masked everywhere). It asks the index itself, before and after,
which bytes it serves under that file name: the same bytes already there are
a skip, not an error; other bytes under the same version are refused. (Twine's
own ``--skip-existing`` is refused by twine for any index but PyPI's, and
trusts the server's error message; asking the index works everywhere.) The
evidence (``compat.json``, ``compat.md``) is summarised in
``release-notes.md`` next to them, which the CI release attaches; the wheel
itself cannot carry it without changing the digest the gate proved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
from packaging.utils import canonicalize_name, parse_wheel_filename

from matrix import gate, masking
from matrix.errors import HarnessError, PluginError
from matrix.plugin import PLUGIN_PACKAGE_JSON, build_wheel, sha256_of, source_date_epoch
from matrix.results import TargetResult

SUMS_FILE = "SHA256SUMS"
RELEASE_NOTES = "release-notes.md"
INDEX_URL_ENV = "MATRIX_INDEX_URL"
TIMEOUT_S = 60

# -- build ---------------------------------------------------------------------------


def build_release(project: Path, dist_dir: Path) -> list[Path]:
    """Build, check and record the sdist and wheel of ``project``; return them."""
    needed = runtime_files(project)
    _clear(dist_dir)
    _build(project, dist_dir)
    sdist, wheel = sorted(dist_dir.glob("*.tar.gz")), sorted(dist_dir.glob("*.whl"))
    if len(sdist) != 1 or len(wheel) != 1:
        raise PluginError(
            f"python -m build left {len(sdist)} sdists and {len(wheel)} wheels in {dist_dir}.",
            "Expected one of each; check the project's build configuration.",
        )
    built = [sdist[0], wheel[0]]
    _twine_check(built)
    with zipfile.ZipFile(wheel[0]) as archive:
        inside = set(archive.namelist())
    missing = [name for name in needed if name not in inside]
    if missing:
        raise PluginError(
            f"The wheel {wheel[0].name} lacks files the migrations need at run time: "
            f"{', '.join(missing)}.",
            "Declare them as package data in the plugin's pyproject.toml "
            "(its tool.setuptools.package-data table) and build again.",
        )
    _check_reproducible(project, wheel[0])
    (dist_dir / SUMS_FILE).write_text(
        "".join(f"{sha256_of(path)}  {path.name}\n" for path in built), encoding="utf-8"
    )
    return built


def runtime_files(project: Path) -> list[str]:
    """Paths, as inside the wheel, of every file Peek needs to run the migrations.

    Read from the source: ``plugin_package.json`` names the Alembic folder,
    which must hold ``env.py``, ``script.py.mako`` and the revisions in
    ``versions/``; the package must hold an ``alembic.ini``.
    """
    manifests = sorted(project.glob(f"*/{PLUGIN_PACKAGE_JSON}"))
    if len(manifests) != 1:
        raise PluginError(
            f"{project} has {len(manifests)} packages with a {PLUGIN_PACKAGE_JSON}; "
            "expected exactly one.",
            "Pass --plugin with the plugin's project folder (the one with pyproject.toml).",
        )
    package = manifests[0].parent
    storage = json.loads(manifests[0].read_text(encoding="utf-8")).get("storage") or {}
    if not storage.get("alembicDir"):
        raise PluginError(
            f"{manifests[0]} names no storage.alembicDir, so nothing says where the "
            "migrations are.",
            'Add "storage": {"alembicDir": "_private/alembic"} as in the Peek tutorial.',
        )
    alembic = package / storage["alembicDir"]
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


def _build(project: Path, dist_dir: Path) -> None:
    """``python -m build``: the sdist, then the wheel built from that sdist."""
    command = [sys.executable, "-m", "build", "--outdir", str(dist_dir)]
    if shutil.which("uv"):
        command += ["--installer", "uv"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch(project)}
    _run([*command, str(project)], "python -m build", env=env)


def _twine_check(paths: list[Path]) -> None:
    _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, paths)], "twine check")


def _check_reproducible(project: Path, wheel: Path) -> None:
    """Build the wheel again, straight from the source, and compare the bytes.

    ``python -m matrix run --plugin <project>`` builds it this way, so equal
    digests also mean a matrix run on the project proves the released wheel.
    """
    with tempfile.TemporaryDirectory(prefix="matrix-rebuild-") as scratch:
        again = build_wheel(project, Path(scratch))
        first, second = sha256_of(wheel), sha256_of(again)
    if first != second:
        raise PluginError(
            f"Two builds of {project} gave different wheels (sha256 {first} and {second}), "
            "so the gate could not tie a report to the published wheel.",
            "Build with SOURCE_DATE_EPOCH set (nox -s build does) and remove stale "
            f"build/ and *.egg-info folders from {project}.",
        )


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    output = masking.mask(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-20:])
        raise HarnessError(f"{what} failed:\n{tail}", f"Fix the problem above and rerun {what}.")
    return output


# -- publish ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Repository:
    """Where twine uploads, and the simple index that tells what is there."""

    upload_url: str
    index_url: str
    username: str | None
    password: str | None

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None


def repository_from_env(env: dict[str, str]) -> Repository | None:
    """The repository twine will use, from the environment only; None when unset."""
    url = env.get("TWINE_REPOSITORY_URL")
    if not url:
        return None
    password = env.get("TWINE_PASSWORD")
    masking.register(password)
    masking.register(urlsplit(url).password)
    index = env.get(INDEX_URL_ENV) or url.rstrip("/") + "/simple/"
    return Repository(url, index, env.get("TWINE_USERNAME"), password)


def published_sha256(repository: Repository, wheel_name: str) -> str | None:
    """The sha256 of the bytes the index serves as ``wheel_name``; None if it has none.

    The file is downloaded and hashed rather than trusting a link fragment,
    which some servers give as md5 or not at all.
    """
    project = canonicalize_name(parse_wheel_filename(wheel_name)[0])
    page = _get(repository, urljoin(repository.index_url, f"{project}/"))
    if page is None:
        return None
    links = _LinkParser.parse(page.text, page.url)
    if wheel_name not in links:
        return None
    served = _get(repository, links[wheel_name])
    if served is None:
        raise HarnessError(
            f"The index lists {wheel_name} but does not serve it.",
            "Check the repository's storage; rerun the publish once it serves the file.",
        )
    return hashlib.sha256(served.content).hexdigest()


def _get(repository: Repository, url: str) -> requests.Response | None:
    """GET with the upload credentials; None for a page the index does not have.

    Redirects are not followed: an index that forwards unknown projects to
    another index (pypiserver's fallback) does not have them.
    """
    try:
        response = requests.get(url, auth=repository.auth, timeout=TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as error:
        raise HarnessError(
            masking.mask(f"The package index at {url} cannot be reached ({error})."),
            f"Check TWINE_REPOSITORY_URL, or set {INDEX_URL_ENV} to its simple index.",
        ) from None
    if response.status_code == 404 or response.is_redirect:
        return None
    if response.status_code != 200:
        raise HarnessError(
            masking.mask(f"The package index answered {response.status_code} for {url}."),
            "Check TWINE_USERNAME and TWINE_PASSWORD (they must be allowed to read), "
            f"or set {INDEX_URL_ENV} to the repository's simple index.",
        )
    return response


class _LinkParser(HTMLParser):
    """File name -> absolute URL, from a PEP 503 simple project page."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.links: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            url = urljoin(self.base, href).split("#")[0]
            self.links[url.rsplit("/", 1)[-1]] = url

    @classmethod
    def parse(cls, html: str, base: str) -> dict[str, str]:
        parser = cls(base)
        parser.feed(html)
        return parser.links


def publish(args: argparse.Namespace) -> int:
    """Gate, then upload the wheel unless the index already serves these bytes."""
    verdict = gate.run_gate(args)
    if not verdict.passed:
        print("Nothing was uploaded.", flush=True)
        return gate.EXIT_REFUSED
    notes = write_release_notes(verdict, args.reports)
    repository = repository_from_env(dict(os.environ))
    if args.dry_run:
        print(dry_run(verdict.build, repository))
    else:
        print(upload(verdict.build, _required(repository)))
    evidence = [args.reports / "compat.json", args.reports / "compat.md", notes]
    print(f"Evidence for the release: {', '.join(map(str, evidence))}.", flush=True)
    return gate.EXIT_PASSED


def upload(build: gate.Build, repository: Repository) -> str:
    """Upload with twine and confirm with the index; a wheel already served is skipped."""
    where = masking.mask(repository.upload_url)
    if _already_served(repository, build):
        return f"{build.wheel.name} is already published at {where} with the same sha256: skipped."
    output = _run(_twine_upload(build.wheel), "twine upload").rstrip()
    served = published_sha256(repository, build.wheel.name)
    if served != build.sha256:
        raise HarnessError(
            f"After the upload the index serves {build.wheel.name} as "
            f"{'nothing' if served is None else 'sha256 ' + served}, not the proven "
            f"{build.sha256}.",
            f"Check the repository; set {INDEX_URL_ENV} if its simple index is not "
            "TWINE_REPOSITORY_URL/simple/.",
        )
    return (
        f"{output}\nPublished {build.wheel.name} (sha256 {build.sha256}) to {where}; "
        "the index serves these bytes."
    )


def dry_run(build: gate.Build, repository: Repository | None) -> str:
    """What ``upload`` would do, asking the index (read-only) when one is set."""
    if repository is None:
        where, user = "(TWINE_REPOSITORY_URL is not set)", "-"
    elif _already_served(repository, build):
        return f"Dry run: {build.wheel.name} is already published: it would be skipped."
    else:
        where, user = masking.mask(repository.upload_url), repository.username or "-"
    size = build.wheel.stat().st_size
    return (
        f"Dry run: would upload {build.wheel} ({size} bytes, sha256 {build.sha256})\n"
        f"  to {where} as {user}; nothing was uploaded."
    )


def _already_served(repository: Repository, build: gate.Build) -> bool:
    """True when the index serves these very bytes; other bytes are refused."""
    served = published_sha256(repository, build.wheel.name)
    if served is not None and served != build.sha256:
        raise HarnessError(
            f"{masking.mask(repository.upload_url)} already serves {build.wheel.name} with "
            f"sha256 {served}, not the proven {build.sha256}; an index never replaces a "
            "published file.",
            "Bump the plugin's version, rebuild, rerun the matrix and publish that.",
        )
    return served == build.sha256


def _required(repository: Repository | None) -> Repository:
    if repository is None:
        raise HarnessError(
            "TWINE_REPOSITORY_URL is not set, so there is nowhere to publish.",
            "Set TWINE_REPOSITORY_URL, TWINE_USERNAME and TWINE_PASSWORD in the "
            "environment (in GitLab: the project's package registry and CI_JOB_TOKEN).",
        )
    return repository


def _twine_upload(wheel: Path) -> list[str]:
    """Credentials reach twine through the environment only, never the command line."""
    options = ["--non-interactive", "--disable-progress-bar"]
    return [sys.executable, "-m", "twine", "upload", *options, str(wheel)]


def write_release_notes(verdict: gate.Verdict, reports_dir: Path) -> Path:
    path = reports_dir / RELEASE_NOTES
    path.write_text(release_notes(verdict), encoding="utf-8")
    return path


def release_notes(verdict: gate.Verdict) -> str:
    """The evidence in a few lines: what was proven, on which databases."""
    report, build = verdict.report, verdict.build
    present = {t.id for t in report.targets}
    rows = [_notes_row(verdict, t.id, t.label, _server(t), str(t.status)) for t in report.targets]
    rows += [_notes_row(verdict, i, "-", "", "missing") for i in verdict.waived if i not in present]
    except_waived = ", except those allowed missing" if verdict.waived else ""
    lines = [
        f"# {report.plugin.name} {report.plugin.version}",
        "",
        f"Wheel `{build.wheel.name}`, sha256 `{build.sha256}`, from commit `{build.commit}`.",
        "It passed the release gate: every database the matrix requires proved its "
        f"migrations on this wheel{except_waived} (matrix run `{report.run_id}`, "
        f"{report.started_at}).",
        "",
        "| target | database | required | status |",
        "|---|---|---|---|",
        *rows,
        "",
        "Evidence attached to this release: `compat.json` (every check, machine-readable) "
        "and `compat.md` (the same, readable).",
        "",
    ]
    return "\n".join(lines)


def _notes_row(verdict: gate.Verdict, target_id: str, label: str, server: str, status: str) -> str:
    required = "yes" if target_id in verdict.required else "no"
    waived = " (allowed missing)" if target_id in verdict.waived else ""
    return f"| {target_id} | {label}{server} | {required} | {status}{waived} |"


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


# -- command line ------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser("build", help="build the plugin's sdist and wheel for a release")
    build.add_argument(
        "--plugin",
        type=Path,
        default=Path(os.environ.get("MATRIX_PLUGIN", "plugin_under_test")),
        help="plugin project folder (default: %(default)s)",
    )
    build.add_argument("--dist", type=Path, default=Path("dist"), help="output folder")
    build.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    build.set_defaults(handler=_build_command)

    upload = sub.add_parser("publish", help="run the gate, then upload the wheel with twine")
    gate.add_gate_options(upload)
    upload.add_argument(
        "--dry-run", action="store_true", help="show what would be uploaded; upload nothing"
    )
    upload.set_defaults(handler=publish)


def _build_command(args: argparse.Namespace) -> int:
    for path in build_release(args.plugin, args.dist):
        print(f"built {path} (sha256 {sha256_of(path)})")
    print(
        f"twine check passed; the wheel holds every file its migrations need; a second "
        f"build gave the same wheel; digests in {args.dist / SUMS_FILE}",
        flush=True,
    )
    return gate.EXIT_PASSED
