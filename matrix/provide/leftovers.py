"""What a run starts outside itself, written down, so the next run can clean it up.

A run killed with SIGKILL never reaches its cleanup: its native PostgreSQL
servers and its check processes would live on. Each is recorded here as a
small JSON file under ``<cache>/runs/`` naming the process that owns it;
every later run reaps the records whose owner on this host is dead, and a
clean exit removes its own. (Containers carry the same facts as labels; see
the docker provider.) Temporary folders carry their owner's pid in their
name (:func:`scratch_prefix`) for the same reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:  # 0 and negative ids name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record(state_dir: Path | None, kind: str, name: str, facts: dict[str, Any]) -> Path | None:
    """Write down that this process started something; returns the record's path."""
    if state_dir is None:
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{kind}-{name}.json"
    data = {
        "kind": kind,
        "owner_pid": os.getpid(),
        "owner_host": socket.gethostname(),
        "created": time.time(),
        **facts,
    }
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
    return path


def forget(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def reap(state_dir: Path | None, kind: str, clean: Callable[[dict[str, Any]], None]) -> list[str]:
    """Clean up every ``kind`` record whose owner on this host is dead; return their names."""
    if state_dir is None or not state_dir.is_dir():
        return []
    reaped = []
    host = socket.gethostname()
    for path in sorted(state_dir.glob(f"{kind}-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if data.get("owner_host") != host or pid_alive(int(data.get("owner_pid", 0))):
            continue
        clean(data)
        path.unlink(missing_ok=True)
        reaped.append(path.stem.removeprefix(f"{kind}-"))
    return reaped


def scratch_prefix(kind: str) -> str:
    """``matrix-<kind>-<pid>-``: a temporary folder a later run can judge by its owner."""
    return f"matrix-{kind}-{os.getpid()}-"


_SCRATCH = re.compile(r"matrix-(?:run|build)-(\d+)-")


def reap_scratch(where: Path | None = None) -> list[Path]:
    """Remove the temporary folders of runs that died without their cleanup (SIGKILL)."""
    removed = []
    for path in Path(where or tempfile.gettempdir()).glob("matrix-*-*-*"):
        found = _SCRATCH.match(path.name)
        if found and path.is_dir() and not pid_alive(int(found.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
