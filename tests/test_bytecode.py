"""Bytecode kept under the harness's cache where the environment forbids writing it.

The harness's own process and every process it starts compile each module
once, into ``<cache>/pycache``, never beside anyone's sources; a user who
says where bytecode goes (``PYTHONPYCACHEPREFIX``) is left alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from matrix import bytecode


def test_a_forbidden_write_moves_bytecode_under_the_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setenv("MATRIX_CACHE_DIR", str(tmp_path / "cache"))

    env = bytecode.child_environment({"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/bin"})

    assert env == {"PATH": "/bin", "PYTHONPYCACHEPREFIX": str(tmp_path / "cache" / "pycache")}


def test_a_prefix_the_user_chose_or_no_prohibition_leaves_everything_as_it_is(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "theirs"))
    assert bytecode.prefix() is None
    assert bytecode.child_environment({"A": "1"}) == {"A": "1"}
    monkeypatch.delenv("PYTHONPYCACHEPREFIX")
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE")
    assert bytecode.prefix() is None


def test_a_started_process_compiles_into_the_cache_not_beside_the_sources(
    monkeypatch, tmp_path
) -> None:
    """The real interpreter, told what a child of the harness is told."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setenv("MATRIX_CACHE_DIR", str(tmp_path / "cache"))
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "plugin_module.py").write_text("VALUE = 42\n")
    env = bytecode.child_environment({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(sources)})

    for _ in range(2):  # the second process reads what the first wrote
        done = subprocess.run(
            [sys.executable, "-c", "import plugin_module; print(plugin_module.__cached__)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    cached = Path(done.stdout.strip())
    assert cached.is_file()
    assert cached.is_relative_to(tmp_path / "cache" / "pycache")
    assert not (sources / "__pycache__").exists()


def test_the_harness_keeps_its_own_bytecode_in_the_cache(monkeypatch, tmp_path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MATRIX_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "matrix", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )

    assert done.returncode == 0, done.stderr
    compiled = {p.name.split(".")[0] for p in (tmp_path / "cache" / "pycache").rglob("*.pyc")}
    assert {"cli", "masking", "sqlalchemy"} <= compiled | {
        p.parent.name for p in (tmp_path / "cache" / "pycache").rglob("__init__*.pyc")
    }
