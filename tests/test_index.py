"""Release listing (``--previous auto``) from real indexes, yanked releases handled explicitly.

pypiserver 2.4 (``tests/conftest.py``'s ``pypi``) serves PEP 503 HTML only
and has no way to yank a file (its ``_app.py`` and ``core.py`` know no
"yanked"): it proves the HTML fallback, authentication, and that
``PIP_INDEX_URL`` is the index asked. Yanked files are served by a static
PEP 503 index (PEP 592's ``data-yanked``) from Python's own HTTP server on
127.0.0.1, the layout ``pip`` itself reads: the test has pip agree that the
file is yanked (a range skips it, an exact pin installs it). The JSON form
(PEP 691) is read from the public index, where every Peek release is yanked
(``corpus``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from matrix.install import index

NAME = "sample-plugin"


def wheel(folder: Path, version: str) -> Path:
    """A minimal valid wheel of ``sample-plugin`` at ``version``."""
    path = folder / f"sample_plugin-{version}-py3-none-any.whl"
    info = f"sample_plugin-{version}.dist-info"
    files = {
        "sample_plugin/__init__.py": b"",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip('=')},{len(data)}\n"
        for name, data in files.items()
    )
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return path


@pytest.fixture
def static_index(tmp_path):
    """A PEP 503 index of plain files on 127.0.0.1; ``publish`` writes the project page."""
    root = tmp_path / "static"
    (root / "files").mkdir(parents=True)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def publish(releases: dict[str, str | None]) -> str:
        """``{version: yank reason or None}``; returns the index URL."""
        links = []
        for version, yanked in releases.items():
            name = wheel(root / "files", version).name
            attribute = "" if yanked is None else f' data-yanked="{yanked}"'
            links.append(f'<a href="../../files/{name}"{attribute}>{name}</a>')
        page = root / "simple" / NAME / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>")
        return f"http://127.0.0.1:{server.server_port}/simple/"

    yield publish
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def pip_download(index_url: str, requirement: str, dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        + ["--index-url", index_url, "--dest", str(dest), requirement],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pypiserver_releases_are_listed_from_its_html_page_through_pip_index_url(pypi, monkeypatch):
    for version in ("1.0.0", "1.1.0", "2.0.0rc1", "2.0.0"):
        wheel(pypi.packages, version)
    monkeypatch.setenv("PIP_INDEX_URL", pypi.index_with_credentials)
    listed = index.releases(NAME, index.index_url())
    assert [str(r.version) for r in listed] == ["1.0.0", "1.1.0", "2.0.0rc1", "2.0.0"]
    assert not any(r.yanked for r in listed)
    found = index.previous_release(NAME, "2.0.0")
    assert found.requirement == f"{NAME}==1.1.0"  # the pre-release is not a release below
    assert found.why == f"from {pypi.url}simple/"  # the password is not repeated
    assert index.previous_release(NAME, "2.0.1rc1").requirement == f"{NAME}==2.0.0"
    assert index.previous_release(NAME, "1.0.0").requirement is None
    assert (
        "has no release of sample-plugin below 1.0.0" in index.previous_release(NAME, "1.0.0").why
    )


def test_an_index_that_refuses_the_credentials_is_a_reason_not_a_crash(pypi, monkeypatch):
    wheel(pypi.packages, "1.0.0")
    monkeypatch.setenv("PIP_INDEX_URL", pypi.index_with_credentials.replace(pypi.password, "no"))
    found = index.previous_release(NAME, "2.0.0")
    assert found.requirement is None
    assert "could not be listed: The package index answered 403" in found.why
    assert "publisher" not in found.why  # no credentials in the URL it names


@pytest.mark.live  # a real HTTP index on 127.0.0.1
def test_a_yanked_release_is_taken_only_when_every_earlier_one_is_yanked(static_index, tmp_path):
    url = static_index({"1.0.0": None, "1.1.0": "broke the upgrade", "2.0.0": None})
    found = index.previous_release(NAME, "2.0.0", url)
    assert found.requirement == f"{NAME}==1.0.0"
    assert found.why.endswith("; yanked and skipped: 1.1.0")

    url = static_index({"1.0.0": "", "1.1.0": "broke the upgrade", "2.0.0": None})
    found = index.previous_release(NAME, "2.0.0", url)
    assert found.requirement == f"{NAME}==1.1.0"
    assert "every earlier release is yanked, so the highest, 1.1.0, is taken" in found.why
    assert "(broke the upgrade)" in found.why

    # pip reads the same page the same way: a range skips the yanked files, an exact pin gets one.
    assert pip_download(url, f"{NAME}<2", tmp_path / "range").returncode != 0
    pinned = pip_download(url, found.requirement, tmp_path / "pin")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert [p.name for p in (tmp_path / "pin").iterdir()] == [
        "sample_plugin-1.1.0-py3-none-any.whl"
    ]


@pytest.mark.live  # a real HTTP index on 127.0.0.1
def test_an_index_without_the_project_lists_nothing(static_index):
    url = static_index({"1.0.0": None})
    assert index.releases("peek-plugin-absent", url) == []
    assert index.previous_release("peek-plugin-absent", "1.0", url).requirement is None


def test_a_url_with_credentials_is_recorded_without_them():
    shown = index.without_credentials("https://reader:s3cret@index.example:8443/simple/")
    assert shown == "https://index.example:8443/simple/"


@pytest.mark.corpus
def test_the_public_index_answers_pep_691_and_every_peek_release_is_yanked(public_index):
    """Peek's releases are yanked on the public index; the previous one installs pinned."""
    where = public_index
    content_type, _ = index.fetch(f"{where.rstrip('/')}/peek-plugin-chat/", accept=index.ACCEPT)
    assert content_type.startswith(index.JSON_TYPE)
    listed = {str(r.version): r for r in index.releases("peek-plugin-chat", where)}
    assert listed["5.1.5"].yanked and listed["5.1.6"].yanked
    found = index.previous_release("peek-plugin-chat", "5.1.6")
    assert found.requirement == "peek-plugin-chat==5.1.5"
    assert "every earlier release is yanked" in found.why
