"""The core install (``pip install .``, no extras) runs what needs no extra, and names the extra.

A fresh virtual environment (uv) gets the harness alone; the commands run
from outside the work tree, so that the installed package is what answers.
``--help``, ``list``, ``report`` and ``gate`` work; ``run``, ``publish`` and
``images`` refuse with the extra that adds what they need (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import PUBLISHED, ROOT, report

# A real tool (uv) builds a real environment: the live tier.
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed"),
]


@pytest.fixture(scope="module")
def core(live, tmp_path_factory) -> Path:
    """The interpreter of a fresh environment with the harness installed without extras."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    for command in (
        ["uv", "venv", "--quiet", "--python", "3.11", str(venv)],
        ["uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(ROOT)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin" / "python"


def matrix(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "matrix", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )


def test_the_core_install_holds_no_extra(core):
    listed = subprocess.run(
        ["uv", "pip", "list", "--python", str(core)], capture_output=True, text=True, timeout=120
    ).stdout.lower()
    for extra in ("psycopg", "pymssql", "docker", "matplotlib", "twine", "requests"):
        assert f"\n{extra} " not in listed, listed


def test_help_list_report_and_gate_work_without_extras(core, tmp_path):
    assert matrix(core, tmp_path, "--help").returncode == 0
    for command in ("run", "list", "report", "gate", "publish", "build", "images", "html"):
        done = matrix(core, tmp_path, command, "--help")
        assert done.returncode == 0, done.stderr
        assert "examples:" in done.stdout, command
    listed = matrix(core, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "finding kinds, by check" in listed.stdout

    wheel = tmp_path / "peek_plugin_chat-5.1.6-py3-none-any.whl"
    wheel.write_bytes(b"the proven wheel")
    run = report(source=PUBLISHED)
    run.plugin.wheel, run.plugin.wheel_sha256 = (
        str(wheel),
        hashlib.sha256(b"the proven wheel").hexdigest(),
    )
    header = {k: v for k, v in run.to_dict().items() if k not in ("targets", "status")}
    targets = tmp_path / "jobs"
    targets.mkdir()
    for target in run.to_dict()["targets"]:
        (targets / f"{target['id']}.json").write_text(json.dumps({**header, "target": target}))
    merged = matrix(
        core, tmp_path, "report", *map(str, sorted(targets.iterdir())), "--reports", "reports"
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert (tmp_path / "reports" / "index.html").is_file()
    gated = matrix(core, tmp_path, "gate", "--reports", "reports")
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert "PASSED" in gated.stdout


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (
            ("run", "--plugin", str(ROOT / "plugin_under_test"), "--targets", "pg15-postgis33"),
            "postgresql",
        ),
        (("run", "--plugin", str(ROOT / "plugin_under_test"), "--engine", "mssql"), "mssql"),
        (("publish", "--dry-run"), "release"),
        (("build", "--plugin", str(ROOT / "plugin_under_test")), "release"),
        (("images", "list"), "docker"),
    ],
    ids=["run-postgresql", "run-mssql", "publish", "build", "images"],
)
def test_a_command_that_needs_an_extra_names_it(core, tmp_path, args, extra):
    done = matrix(core, tmp_path, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"pip install 'peek-plugin-matrix[{extra}]'" in " ".join(done.stderr.split())
