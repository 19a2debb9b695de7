"""Running a tool as a subprocess: bounded in time, its output masked, its failure explained."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from matrix import masking
from matrix.errors import HarnessError


def run(
    command: list[str | Path],
    what: str,
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    fix: str = "",
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``command``; with ``check``, a non-zero exit is a HarnessError with its output's tail.

    ``stdout`` and ``stderr`` of the result are masked. A command that outlives
    ``timeout`` is killed and reported; nothing waits forever.
    """
    try:
        process = subprocess.Popen(
            [str(part) for part in command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            errors="replace",
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own group: a timeout kills what it started too
        )
    except OSError as error:
        raise HarnessError(
            f"{what} could not be started: {error.strerror} ({command[0]}).",
            fix or "Install it, or check the PATH.",
        ) from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise HarnessError(
            f"{what} did not finish within {timeout:g} s.", fix or f"Check what {what} waits for."
        ) from None
    except BaseException:  # Ctrl-C, SIGTERM: nothing it started outlives the run
        _kill_group(process)
        raise
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    done.stdout, done.stderr = masking.mask(done.stdout or ""), masking.mask(done.stderr or "")
    if check and done.returncode != 0:
        raise HarnessError(
            f"{what} failed (exit code {done.returncode}):\n{tail(done.stdout + done.stderr)}",
            fix or f"Fix the problem above and rerun {what}.",
        )
    return done


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pass  # a grandchild that left the group still holds the pipe; do not wait on it


def tail(output: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a tool's output."""
    return "\n".join(output.strip().splitlines()[-lines:])
