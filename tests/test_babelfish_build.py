"""``nox -s babelfish`` refuses sources it cannot build Babelfish 4.2.0 from, before any work.

The build takes 13 minutes or more; a wrong checkout found at its end would
waste them, and a missing variable must not end in a traceback. The sources
are checked before Docker is asked anything (``--rebuild``), so these run in
the unit tier. The build itself is verified by hand (docs/babelfish.md,
"Building the image"): a test cannot spend 13 minutes of 2 shared cores.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, assert_clear_error

SCRIPT = ROOT / "scripts" / "babelfish" / "build.py"
_spec = importlib.util.spec_from_file_location("babelfish_build", SCRIPT)
build = sys.modules["babelfish_build"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def _build(sources: Path | None) -> subprocess.CompletedProcess:
    # No engine answers there: sources wrongly accepted end at once with another error
    # (and the assertion on the message), never in a 13-minute build.
    env = {k: v for k, v in os.environ.items() if k != build.SOURCES_SETTING}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    if sources is not None:
        env[build.SOURCES_SETTING] = str(sources)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--rebuild", "--tag", "peek-matrix/babelfish:never-built"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _sources(root: Path, **override: str) -> Path:
    """A tree with every file the check reads, each saying the expected version."""
    for expected in build.EXPECTED:
        path = root / expected.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(override.get(expected.path, f"...\n{expected.text or ''}\n..."))
    return root


def test_without_the_variable_the_build_says_which_variable_and_how_to_fill_it():
    done = _build(None)
    assert_clear_error(
        done,
        "MATRIX_BABELFISH_SOURCES is not set",
        "babelfish-for-postgresql/postgresql_modified_for_babelfish at tag BABEL_4_2_0__PG_16_3",
        "babelfish-for-postgresql/babelfish_extensions at tag BABEL_4_2_0",
        "antlr/antlr4 at tag 4.9.3",
        "apt-get source --download-only postgis=3.5.2+dfsg-1",
    )


def test_an_empty_folder_is_refused_naming_every_missing_source(tmp_path):
    done = _build(tmp_path)
    assert_clear_error(
        done,
        f"MATRIX_BABELFISH_SOURCES={tmp_path} are not Babelfish 4.2.0's",
        "pg/configure is missing",
        "ext/contrib/babelfishpg_tsql/Version.config is missing",
        "antlr4/runtime/Cpp/VERSION is missing",
        "postgis/postgis_3.5.2+dfsg.orig.tar.xz is missing",
    )


def test_a_folder_that_is_not_there_is_refused(tmp_path):
    assert_clear_error(_build(tmp_path / "absent"), "absent is not a folder")


@pytest.mark.parametrize(
    ("path", "text", "phrase"),
    [
        ("pg/configure", "PACKAGE_VERSION='16.4'", "pg/configure lacks \"PACKAGE_VERSION='16.3'\""),
        ("pg/src/include/access/parallel.h", "/* vanilla */", "not PostgreSQL's own 16.3"),
        ("antlr4/runtime/Cpp/VERSION", "4.13.1", "antlr/antlr4 at tag 4.9.3"),
    ],
    ids=["another-postgresql", "postgresql-not-the-fork", "another-antlr"],
)
def test_a_checkout_at_another_tag_is_refused_before_the_build(tmp_path, path, text, phrase):
    done = _build(_sources(tmp_path, **{path: text}))
    assert_clear_error(done, "are not Babelfish 4.2.0's", phrase)


def test_sources_at_the_right_tags_are_accepted(tmp_path):
    assert build.check_sources(str(_sources(tmp_path))) == tmp_path.resolve()
