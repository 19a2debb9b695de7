"""Check processes forked from the probe, which has already loaded the plugin.

Every check process used to start its interpreter and import SQLAlchemy,
Alembic, the driver and the plugin again: about a second of CPU per target,
which on two cores the targets of a run share. The probe
(:mod:`matrix.check.process` ``--probe``) has paid that once, before any
server answered; asked to ``--serve``, it stays, and every check process is a
``fork`` of it. A forked process is as fresh as a new one for what the checks
touch: Alembic's proxies, the plugin's module state and every connection are
made by the checks after the fork, in that process only; it runs in a
session of its own, like a started one, and ends with its parent.

The two sides share one ``AF_UNIX`` ``SOCK_SEQPACKET`` pair. The harness sends
a request (which program, its arguments, spec and URL) with the write end of
a pipe attached (``SCM_RIGHTS``); the fork writes its events and output
there, read like a started process's stdout. The server answers with the
fork's pid, and later with its exit code. Stdlib only: the server side runs
in the plugin's environment.
"""

from __future__ import annotations

import importlib
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


# -- the server's side, in the plugin's environment -----------------------------------


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
            data, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, 1)
        except OSError:
            return
        if not data:
            return
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _become(request, fds[0], channel)
        for fd in fds:
            os.close(fd)
        answer({"id": request["id"], "pid": pid})
        threading.Thread(target=_reap, args=(pid, answer), daemon=True).start()


def _reap(pid: int, answer) -> None:
    _, status = os.waitpid(pid, 0)
    answer({"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def _become(request: dict[str, Any], output: int, channel: socket.socket) -> None:
    """In the fork: the program the request names, as ``python -m`` would run it."""
    code = 1
    try:
        os.setsid()
        channel.close()
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        os.environ.update(request["environment"])
        module = importlib.import_module(request["module"])
        sys.argv = [module.__file__, *request["args"]]
        code = module.main(request["args"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - the harness reads it as the process's output
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the reader may be gone
                pass
        os._exit(code or 0)


def stop_output() -> None:
    """The server's own output ends here (the harness stops reading it); the forks get theirs."""
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


# -- the harness's side ---------------------------------------------------------------


class ForkedProcess:
    """What the harness knows of a fork: its pid, and its exit code once the server says."""

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

    def __init__(self, server: subprocess.Popen, channel: socket.socket) -> None:
        self.server = server
        self.channel = channel
        self._lock = threading.Lock()
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._running: dict[int, ForkedProcess] = {}
        self._closed = False
        threading.Thread(target=self._listen, daemon=True).start()

    def start(
        self, module: str, args: list[str], environment: dict[str, str]
    ) -> tuple[ForkedProcess, IO[str]]:
        """A fork running ``module``'s ``main(args)``, and its output; OSError when it cannot."""
        read, write = os.pipe()
        try:
            with self._lock:
                self._next += 1
                ident = self._next
                message = {"id": ident, "module": module, "args": args, "environment": environment}
                socket.send_fds(self.channel, [json.dumps(message).encode()], [write])
        finally:
            os.close(write)
        answer = self._answer(ident)
        if answer is None:
            os.close(read)
            raise OSError("the probe kept for forking did not answer")
        with self._arrived:
            process = self._running.setdefault(answer["pid"], ForkedProcess(answer["pid"]))
        return process, open(read, encoding="utf-8", errors="replace")

    def _answer(self, ident: int) -> dict[str, Any] | None:
        with self._arrived:
            self._arrived.wait_for(
                lambda: ident in self._answers or self._closed, timeout=ANSWER_TIMEOUT_S
            )
            return self._answers.pop(ident, None)

    def _listen(self) -> None:
        while True:
            try:
                data = self.channel.recv(MESSAGE_BYTES)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._arrived:
                if "exit" in message:
                    process = self._running.setdefault(
                        message["pid"], ForkedProcess(message["pid"])
                    )
                    process.returncode = message["exit"]
                    process.ended.set()
                else:
                    self._answers[message["id"]] = message
                self._arrived.notify_all()
        with self._arrived:  # the server is gone: nobody will say how its forks ended
            self._closed = True
            for process in self._running.values():
                process.ended.set()
            self._arrived.notify_all()

    @property
    def alive(self) -> bool:
        return not self._closed and self.server.poll() is None

    def close(self) -> None:
        """End the server (its forks end with it: each watches its parent)."""
        try:
            self.channel.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.channel.close()
        if self.server.poll() is None:
            self.server.kill()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """The harness's end and the server's (inheritable, for ``pass_fds``)."""
    harness, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.set_inheritable(True)
    return harness, server
