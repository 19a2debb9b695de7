"""Starting the check process in the plugin's environment, and reading it with deadlines.

The check process (:mod:`matrix.check.process`) runs with the interpreter of the
plugin's own environment. The harness's ``matrix`` package reaches it through
a folder holding nothing but a link to that package, so none of the
harness's own dependencies leak into the plugin's environment.

Its events are read on a thread of their own, so the caller can wait with a
deadline: a check that stalls (a migration waiting on a lock, a
``pg_sleep``) is noticed when its time is up, whatever the child does.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matrix
from matrix import masking
from matrix.check.process import SPEC_ENV, URL_ENV, parse_event

OUTPUT_KEPT = 40


def harness_path(cache: Path) -> Path:
    """A folder whose only entry is a link to the harness's ``matrix`` package."""
    package = Path(matrix.__file__).resolve().parent
    folder = cache / "harness" / hashlib.sha256(str(package).encode()).hexdigest()[:16]
    link = folder / "matrix"
    if not link.is_symlink() or link.resolve() != package:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".matrix.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(package, target_is_directory=True)
        os.replace(temporary, link)
    return folder


class Child:
    """A running check process (``module``: the plugin's, or the site's ``matrix.site.process``)."""

    def __init__(
        self,
        python: Path,
        args: list[str],
        spec: dict[str, Any],
        url: str | None,
        path: list[Path],
        module: str = "matrix.check.process",
    ) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(
            {
                SPEC_ENV: json.dumps(spec, default=str),
                URL_ENV: url or "",
                "PYTHONPATH": os.pathsep.join(str(p) for p in path),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.process = subprocess.Popen(
            [str(python), "-m", module, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="replace",  # a plugin's stray bytes must not end the reading
            start_new_session=True,
        )
        self.output: collections.deque[str] = collections.deque(maxlen=OUTPUT_KEPT)
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        """Events onto the queue, other output into the tail; None once output ends."""
        assert self.process.stdout is not None
        try:
            for raw in self.process.stdout:
                event = parse_event(raw)
                if event is None:
                    self.output.append(raw.rstrip())
                else:
                    self._events.put(event)
        finally:
            self._events.put(None)  # whatever happened, events() ends

    def events(self, timeout: float) -> Iterator[dict[str, Any] | None]:
        """Events as they come; ``None`` whenever ``timeout`` passes without one.

        Ends when the child closes its output.
        """
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                yield None
                continue
            if event is None:
                return
            yield event

    def kill(self) -> None:
        """Kill the child and anything it started."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait()

    def wait(self, timeout: float = 10) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self) -> str:
        return masking.mask("\n".join(self.output))
