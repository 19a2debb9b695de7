"""Starting a process that speaks :mod:`matrix.protocol`, and reading it with deadlines.

The check process (:mod:`matrix.check.process`) runs with the interpreter of the
plugin's own environment. The harness's ``matrix`` package reaches it through
a folder holding nothing but a link to that package, so none of the
harness's own dependencies leak into the plugin's environment.

Its events are read on a thread of their own, so the caller can wait with a
deadline: a check that stalls (a migration waiting on a lock, a
``pg_sleep``) is noticed when its time is up, whatever the child does
(:class:`Watch`).
"""

from __future__ import annotations

import collections
import hashlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import matrix
from matrix import bytecode, masking
from matrix.forks import ForkedProcess, Forks
from matrix.protocol import (
    CHECK_PROCESS,
    ENDS_STEP,
    SPEC_ENV,
    URL_ENV,
    Event,
    Started,
    encode_spec,
    parse_event,
)

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
    """A running program of :mod:`matrix.protocol` (``module``: which one), given ``spec``."""

    def __init__(
        self,
        python: Path,
        args: list[str],
        spec: Any,
        url: str | None,
        path: list[Path],
        module: str = CHECK_PROCESS,
        forks: Forks | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        """Started with ``python``, or forked by ``forks`` (the probe, which has the plugin
        loaded) when given and alive; a fork that cannot be had is started instead."""
        own = {SPEC_ENV: encode_spec(spec), URL_ENV: url or ""}
        self.process: subprocess.Popen | ForkedProcess
        stream: IO[str] | None = None
        if forks is not None and forks.alive:
            try:
                self.process, stream = forks.start(module, args, own)
            except OSError:
                pass  # the probe cannot fork it: started below
        if stream is None:
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            env = bytecode.child_environment(env)
            env.update(
                {
                    **own,
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
                pass_fds=pass_fds,
            )
            stream = self.process.stdout
        self.output: collections.deque[str] = collections.deque(maxlen=OUTPUT_KEPT)
        self._events: queue.Queue[Event | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        """Events onto the queue, other output into the tail; None once output ends."""
        try:
            for raw in stream:
                event = parse_event(raw)
                if event is None:
                    self.output.append(raw.rstrip())
                else:
                    self._events.put(event)
        finally:
            stream.close()
            self._events.put(None)  # whatever happened, events() ends

    def events(self, timeout: float) -> Iterator[Event | None]:
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


class Stop(StrEnum):
    """Why a :class:`Watch` stopped reading before the child closed its output."""

    STEP_TIMEOUT = "step_timeout"  # one step outlived its own timeout
    DEADLINE = "deadline"  # the whole outlived its deadline


class Watch:
    """A child's events, with the step that runs and the limits on it.

    A step starts with :class:`~matrix.protocol.Started` and ends with an
    event of :data:`~matrix.protocol.ENDS_STEP`. Reading stops when a step
    outlives ``step_timeout_s``, when the monotonic ``deadline`` passes, or
    when the child closes its output; then :attr:`stopped` says which of the
    first two it was (None: the child ended) and :attr:`running` names the
    step that had not ended. The caller kills the child.
    """

    def __init__(
        self,
        child: Child,
        deadline: float,
        step_timeout_s: float | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.child = child
        self.deadline = deadline
        self.step_timeout_s = step_timeout_s
        self.poll_s = poll_s
        self.running: str | None = None
        self.since = 0.0
        self.stopped: Stop | None = None

    def events(self) -> Iterator[Event]:
        for event in self.child.events(timeout=self.poll_s):
            now = time.monotonic()
            if (
                self.running is not None
                and self.step_timeout_s is not None
                and now - self.since > self.step_timeout_s
            ):
                self.stopped = Stop.STEP_TIMEOUT
                return
            if now > self.deadline:
                self.stopped = Stop.DEADLINE
                return
            if event is None:
                continue
            if isinstance(event, Started):
                self.running, self.since = event.name, now
            elif isinstance(event, ENDS_STEP):
                self.running = None
            yield event
