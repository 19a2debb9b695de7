"""Check processes forked from the probe, which has already loaded the plugin.

Every check process used to start its interpreter and import SQLAlchemy,
Alembic, the driver and the plugin again: about a second of CPU per target,
which on two cores the targets of a run share. The probe
(:mod:`matrix.check.process` ``--probe``) has paid that once, before any
server answered; asked to ``--serve``, it stays, and every check process is a
``fork`` of it. What a fork inherits is the probe's: the plugin's modules as
importing them left them, its history read, its ``env.py`` run offline once
per engine (as the check process itself runs it again online). Alembic's
context proxies are gone once a run of ``env.py`` ends, and the probe never
connects: every connection and every Alembic context of the checks is made
after the fork, in that process only. A fork runs in a session of its own,
like a started process, and ends with its parent.

The two sides share one ``AF_UNIX`` ``SOCK_SEQPACKET`` pair. The harness sends
a request (which program, its arguments, spec and URL) with two pipe ends
attached (``SCM_RIGHTS``): the write end of its output, read like a started
process's stdout, and the read end of a go-ahead. The probe answers with the
fork's pid, and later with its exit code. The fork waits for the go-ahead,
which the harness gives once it holds the pid; a harness that gave up waiting
closes it unsaid, and the fork ends without running anything, so a started
process that replaces it never meets a twin on the same database. Stdlib
only: the probe's side runs in the plugin's environment.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import traceback
from typing import IO, Any

MESSAGE_BYTES = 1 << 20  # a request carries a spec: a few kilobytes
ANSWER_TIMEOUT_S = 10.0
GO = b"g"


# -- the probe's side, in the plugin's environment ------------------------------------


def serve(channel: socket.socket) -> None:
    """Fork a process for every request until the harness closes its end."""
    lock = threading.Lock()

    def answer(message: dict[str, Any]) -> None:
        with lock:
            try:
                channel.send(json.dumps(message).encode())
            except OSError:
                pass  # the harness is gone

    while True:
        try:
            data, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, 2)
        except OSError:
            return
        if not data:
            return
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _become(request, *fds, channel)
        for fd in fds:
            os.close(fd)
        answer({"id": request["id"], "pid": pid})
        threading.Thread(target=_reap, args=(request["id"], pid, answer), daemon=True).start()


def _reap(ident: int, pid: int, answer) -> None:
    _, status = os.waitpid(pid, 0)
    answer({"id": ident, "exit": os.waitstatus_to_exitcode(status)})


def _become(request: dict[str, Any], output: int, go: int, channel: socket.socket) -> None:
    """In the fork: once the harness says go, the program the request names, as
    ``python -m`` would run it."""
    code: int = 1
    try:
        os.setsid()
        channel.close()
        said = os.read(go, 1)
        os.close(go)
        if said != GO:
            os._exit(0)  # the harness gave up on this fork and started a process instead
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        os.environ.update(request["environment"])
        sys.argv = [request["module"], *request["args"]]
        code = importlib.import_module(request["module"]).main(request["args"])
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except BaseException:  # noqa: BLE001 - the harness reads it as the process's output
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the reader may be gone
                pass
        os._exit(code or 0)


def _exit_code(code: object) -> int:
    """What the interpreter would exit with for ``SystemExit(code)``."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def stop_output() -> None:
    """The probe's own output ends here (the harness stops reading it); the forks get theirs."""
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


# -- the harness's side ---------------------------------------------------------------


class ForkedProcess:
    """What the harness knows of a fork: its pid, and its exit code once the probe says."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.ended = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"fork {self.pid}", timeout or 0)
        return self.returncode


class Forks:
    """The probe, kept to fork check processes; ``close`` ends it."""

    def __init__(self, probe: subprocess.Popen, channel: socket.socket) -> None:
        self.probe = probe
        self.channel = channel
        channel.settimeout(ANSWER_TIMEOUT_S)  # a stopped probe must not hold a sender
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._arrived = threading.Condition()
        self._pids: dict[int, int] = {}  # request -> pid, as answered
        self._forks: dict[int, ForkedProcess] = {}  # request -> the fork a Child holds
        self._ended: dict[int, int] = {}  # request -> exit code, before anyone held it
        self._abandoned: set[int] = set()  # requests given up on: their answers are dropped
        self._closed = False
        threading.Thread(target=self._listen, daemon=True).start()

    def start(
        self, module: str, args: list[str], environment: dict[str, str]
    ) -> tuple[ForkedProcess, IO[str]]:
        """A fork running ``module``'s ``main(args)``, and its output; OSError when it cannot."""
        read, write = os.pipe()
        wait, go = os.pipe()
        try:
            with self._lock:
                ident = next(self._ids)
                message = {"id": ident, "module": module, "args": args, "environment": environment}
                socket.send_fds(self.channel, [json.dumps(message).encode()], [write, wait])
        except OSError:
            os.close(read)
            os.close(go)
            raise
        finally:
            os.close(write)
            os.close(wait)
        with self._arrived:
            self._arrived.wait_for(
                lambda: ident in self._pids or self._closed, timeout=ANSWER_TIMEOUT_S
            )
            pid = self._pids.pop(ident, None)
            if pid is None:
                self._abandoned.add(ident)
            else:
                process = self._forks[ident] = ForkedProcess(pid)
                if ident in self._ended:
                    process.returncode = self._ended.pop(ident)
                    process.ended.set()
        if pid is None:
            os.close(go)  # unsaid: a fork that comes late ends without running anything
            os.close(read)
            raise OSError("the probe kept for forking did not answer")
        os.write(go, GO)
        os.close(go)
        return process, open(read, encoding="utf-8", errors="replace")

    def _listen(self) -> None:
        while True:
            try:
                data = self.channel.recv(MESSAGE_BYTES)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._arrived:
                ident = message["id"]
                if ident in self._abandoned:
                    if "exit" in message:
                        self._abandoned.discard(ident)
                elif "exit" not in message:
                    self._pids[ident] = message["pid"]
                elif ident in self._forks:
                    process = self._forks.pop(ident)
                    process.returncode = message["exit"]
                    process.ended.set()
                else:
                    self._ended[ident] = message["exit"]
                self._arrived.notify_all()
        with self._arrived:  # the probe is gone: nobody will say how its forks ended
            self._closed = True
            for process in self._forks.values():
                process.ended.set()
            self._arrived.notify_all()

    @property
    def alive(self) -> bool:
        return not self._closed and self.probe.poll() is None

    def close(self) -> None:
        """End the probe (its forks end with it: each watches its parent)."""
        try:
            self.channel.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.channel.close()
        if self.probe.poll() is None:
            self.probe.kill()
        try:
            self.probe.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """The harness's end and the probe's (inheritable, for ``pass_fds``)."""
    harness, probe = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    probe.set_inheritable(True)
    return harness, probe
