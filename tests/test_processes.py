"""A tool the harness runs never outlives its timeout, nor do the processes it started."""

from __future__ import annotations

import subprocess
import time

import pytest

from matrix import processes
from matrix.errors import HarnessError


def test_a_tool_that_outlives_its_timeout_is_killed_with_what_it_started(tmp_path):
    """pip and build start processes of their own; a timeout must end those too,
    or reading their output waits for them (subprocess.run did, for 300 s here)."""
    pid_file, finished = tmp_path / "grandchild.pid", tmp_path / "grandchild.finished"
    # The grandchild records its own end: killed with the tool, it never does.
    script = f"(sleep 60; touch {finished}) & echo $! > {pid_file}; wait"
    with pytest.raises(HarnessError) as caught:
        processes.run(["bash", "-c", script], "the slow tool", timeout=1)
    assert not finished.exists(), "run() waited for the grandchild to end by itself"
    assert "the slow tool did not finish within 1 s" in caught.value.cause
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    state = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(grandchild)], capture_output=True, text=True
    ).stdout.strip()
    assert state in ("", "Z"), f"the grandchild {grandchild} still runs ({state})"


def test_output_that_is_not_utf8_is_read_and_masked():
    done = processes.run(["printf", "ok \\377 done"], "printf", timeout=10)
    assert done.stdout.startswith("ok ") and done.stdout.endswith(" done")


def test_a_missing_tool_is_one_paragraph():
    with pytest.raises(HarnessError) as caught:
        processes.run(["no-such-tool-here"], "the tool", timeout=10)
    assert "the tool could not be started" in caught.value.cause
    assert "PATH" in caught.value.fix
