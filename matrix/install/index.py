"""The package index pip uses: which one it is, and which releases it lists.

pip resolves and downloads requirements; the harness asks the index itself
only to list a project's releases (``--previous auto``) and to record where a
requirement came from. It asks the way PEP 691 defines (``Accept:
application/vnd.pypi.simple.v1+json``) and reads the PEP 503 HTML page where
the index serves only that (pypiserver does). Yanked files (PEP 592:
``"yanked"`` in JSON, ``data-yanked`` in HTML) are kept and marked, never
dropped: every Peek release on the public index is yanked, yet installs with
an exact pin. Stdlib only (urllib), so that a core install can do it.

The index is pip's: ``PIP_INDEX_URL``, else pip's configuration
(``download.index-url``, ``global.index-url``), else pip's own default.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from matrix import processes, settings
from matrix.errors import HarnessError

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, text/html;q=0.1"
HTTP_TIMEOUT_S = 60
PIP_CONFIG_TIMEOUT_S = 60
PIP_FIX = "Check the network to the index, PIP_INDEX_URL or pip's configuration (pip config list)."


@dataclass(frozen=True)
class IndexFile:
    """One file a project page lists: its name, where, and why it was yanked (None: it was not)."""

    filename: str
    url: str
    yanked: str | None = None  # "" when yanked without a reason


@dataclass(frozen=True)
class Release:
    """One version of a project on the index; yanked when every file of it is."""

    version: Version
    files: tuple[IndexFile, ...]

    @property
    def yanked(self) -> bool:
        return all(f.yanked is not None for f in self.files)


@dataclass(frozen=True)
class PreviousRelease:
    """The release sites run before this one, as an exact pin; or None and why not."""

    requirement: str | None
    why: str  # why there is none, or a note about the one found (yanked)


def index_url() -> str:
    """The index pip downloads from: ``PIP_INDEX_URL``, pip's configuration, pip's default."""
    explicit = settings.optional("PIP_INDEX_URL")
    if explicit:
        return explicit
    try:
        done = processes.run(
            [sys.executable, "-m", "pip", "config", "list"],
            "pip config",
            timeout=PIP_CONFIG_TIMEOUT_S,
            check=False,
        )
        configured = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    except HarnessError:
        configured = {}
    for key in ("download.index-url", "global.index-url"):
        if configured.get(key):
            return configured[key].strip().strip("'\"")
    from pip._internal.models.index import PyPI  # pip's default, named by pip itself

    return PyPI.simple_url


def without_credentials(url: str) -> str:
    """``url`` with no user or password in it: what a report may record."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def releases(distribution: str, index: str) -> list[Release]:
    """Every release of ``distribution`` the index lists, oldest first, yanked ones marked.

    Raises :class:`HarnessError` when the index cannot be asked; an index
    without the project lists nothing.
    """
    by_version: dict[Version, list[IndexFile]] = {}
    for file in project_files(index, distribution, fix=PIP_FIX) or []:
        version = _version_of(file.filename)
        if version is not None:
            by_version.setdefault(version, []).append(file)
    return [Release(v, tuple(by_version[v])) for v in sorted(by_version)]


def previous_release(distribution: str, version: str, index: str | None = None) -> PreviousRelease:
    """The highest release below ``version`` that sites may run, as an exact pin.

    A release that is not yanked wins over a higher yanked one (a yank says
    "do not install this"); where every earlier release is yanked, as for
    Peek, the highest yanked one is taken, said so, and installed with its
    exact pin as pip allows. Pre-releases count only below a pre-release.
    """
    try:
        current = Version(version)
    except InvalidVersion:
        return PreviousRelease(None, f"{version} is not a version that can be compared")
    where = index or index_url()
    shown = without_credentials(where)
    try:
        listed = releases(distribution, where)
    except HarnessError as error:
        return PreviousRelease(
            None, f"{distribution}'s releases could not be listed: {error.cause}"
        )
    older = [
        r
        for r in listed
        if r.version < current and (current.is_prerelease or not r.version.is_prerelease)
    ]
    if not older:
        return PreviousRelease(
            None, f"the index {shown} has no release of {distribution} below {version}"
        )
    kept = [r for r in older if not r.yanked]
    if kept:
        chosen = kept[-1]
        skipped = [str(r.version) for r in older if r.yanked and r.version > chosen.version]
        note = f"; yanked and skipped: {', '.join(skipped)}" if skipped else ""
        return PreviousRelease(f"{distribution}=={chosen.version}", f"from {shown}{note}")
    chosen = older[-1]
    reasons = {f.yanked for f in chosen.files if f.yanked}
    because = f" ({'; '.join(sorted(reasons))})" if reasons else ""
    return PreviousRelease(
        f"{distribution}=={chosen.version}",
        f"from {shown}; every earlier release is yanked, so the highest, {chosen.version}, "
        f"is taken{because} and installed with its exact pin",
    )


# -- reading an index ----------------------------------------------------------------------


def project_files(
    index: str, distribution: str, auth: tuple[str, str] | None = None, fix: str = PIP_FIX
) -> list[IndexFile] | None:
    """The files the index's page of ``distribution`` lists; None when it has no such page."""
    url = urljoin(index.rstrip("/") + "/", f"{canonicalize_name(distribution)}/")
    page = fetch(url, auth, fix, accept=ACCEPT)
    if page is None:
        return None
    content_type, body = page
    if content_type.startswith((JSON_TYPE, "application/json")):
        return _json_files(body, url)
    return _HtmlFiles.parse(body.decode("utf-8", "replace"), url)


def fetch(
    url: str, auth: tuple[str, str] | None = None, fix: str = PIP_FIX, accept: str = "*/*"
) -> tuple[str, bytes] | None:
    """GET ``url``: (content type, body); None for a page the index does not have.

    Credentials go as Basic authentication: ``auth``, or the user and password
    written into the URL (as in ``PIP_INDEX_URL``). Redirects are not
    followed: an index that forwards what it lacks to another index
    (pypiserver's fallback) does not have it.
    """
    parts = urlsplit(url)
    if parts.username is not None:
        auth = auth or (unquote(parts.username), unquote(parts.password or ""))
        url = without_credentials(url)
    headers = {"Accept": accept}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=HTTP_TIMEOUT_S) as r:
            return r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as error:
        if error.code == 404 or 300 <= error.code < 400:
            return None
        raise HarnessError(f"The package index answered {error.code} for {url}.", fix) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise HarnessError(
            f"The package index at {url} cannot be reached ({reason}).", fix
        ) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs) -> None:
        return None  # the 3xx is raised as an HTTPError, and read as "not here"


def _json_files(body: bytes, url: str) -> list[IndexFile]:
    try:
        files = json.loads(body)["files"]
        return [
            IndexFile(f["filename"], urljoin(url, f["url"]), _yank_reason(f.get("yanked", False)))
            for f in files
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise HarnessError(
            f"The index's JSON page {url} is not PEP 691 ({error}).",
            "Check the index URL: it must name a simple index (PEP 503 or 691).",
        ) from None


def _yank_reason(value: object) -> str | None:
    """PEP 691's ``yanked``: False, True, or the reason as a string."""
    if value is False or value is None:
        return None
    return value if isinstance(value, str) else ""


def _version_of(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None  # an .egg, an .exe, a name the index's owner made up: not a release file


class _HtmlFiles(HTMLParser):
    """The files of a PEP 503 project page, with PEP 592's ``data-yanked``."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.files: list[IndexFile] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        href = values.get("href")
        if tag != "a" or not href:
            return
        url = urljoin(self.base, href).split("#")[0]
        name = unquote(url.rstrip("/").rsplit("/", 1)[-1])
        yanked = (values["data-yanked"] or "") if "data-yanked" in values else None
        self.files.append(IndexFile(name, url, yanked))

    @classmethod
    def parse(cls, html: str, base: str) -> list[IndexFile]:
        parser = cls(base)
        parser.feed(html)
        return parser.files
