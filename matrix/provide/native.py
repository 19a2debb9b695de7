"""A throwaway PostgreSQL server from the local binaries.

For machines without a Docker engine: ``initdb`` into a temporary folder,
``pg_ctl start`` on a free port bound to 127.0.0.1 only, and everything
removed afterwards. PostgreSQL refuses to run as root, so as root the server
runs as the ``postgres`` account the Debian packages create.

Cleanup is as thorough as the docker provider's: every server is recorded
(:mod:`matrix.provide.leftovers`) before its data folder exists, so a run killed with
SIGKILL leaves a record the next run reaps; ``close()`` (the runner's
``finally`` and SIGTERM) kills an ``initdb`` or ``pg_ctl`` still running,
stops the servers and removes every folder, the ones still being made too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matrix import masking
from matrix.define.targets import Target
from matrix.engines import engine_named
from matrix.errors import HarnessError
from matrix.provide import databases, leftovers
from matrix.provide.base import Database, Log, Provider, free_port, retry_once

SUPERUSER = "peek"
COMMAND_TIMEOUT_S = 120
RECORD_KIND = "native"


class NativeProvider(Provider):
    name = "native"

    def __init__(
        self,
        run_id: str = "",
        pg_root: Path = Path("/usr/lib/postgresql"),
        state_dir=None,
        durable: bool = False,
    ) -> None:
        self.run_id = run_id
        self.durable = durable
        self.pg_root = pg_root
        self.state_dir = state_dir
        self._running: dict[Path, Path | None] = {}  # data folder -> its record
        self._commands: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Lock()
        self._closed = False
        self._reaped = False

    def bindir(self, target: Target) -> Path:
        return self.pg_root / target.version / "bin"

    def unavailable_reason(self, target: Target) -> str | None:
        if not engine_named(target.engine).runs_natively:
            return "the native provider runs PostgreSQL only"
        bindir = self.bindir(target)
        if not (bindir / "initdb").exists():
            return (
                f"PostgreSQL {target.version} server binaries are not in {bindir}; "
                f"install postgresql-{target.version} or use the docker provider"
            )
        if os.geteuid() == 0 and not _account_exists("postgres"):
            return "running as root needs the 'postgres' account to run the server"
        if target.postgis and not _postgis_installed(bindir):
            return (
                f"PostGIS is not installed for PostgreSQL {target.version}; "
                f"apt-get install postgresql-{target.version}-postgis-3"
            )
        return None

    @contextmanager
    def database(self, target: Target, log: Log) -> Iterator[Database]:
        self._reap_once(log)
        password = masking.generate_password()
        datadir, port, ready = retry_once(
            lambda attempt: self._start(target, password, log),
            log,
            f"PostgreSQL {target.version}",
        )
        server_url = (
            engine_named(target.engine)
            .url(f"{target.engine}://{SUPERUSER}@127.0.0.1:{port}/postgres")
            .set(password=password)
        )
        try:
            url = databases.create_database(server_url, databases.throwaway_name())
            yield Database(target, url, self.name, ready)
        finally:
            self._stop(datadir)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            commands = list(self._commands)
            running = list(self._running)
        for command in commands:
            _kill(command)
        for datadir in running:
            self._stop(datadir)

    def _reap_once(self, log: Log) -> None:
        with self._lock:
            if self._reaped:
                return
            self._reaped = True
        reaped = leftovers.reap(self.state_dir, RECORD_KIND, _clean_leftover)
        if reaped:
            log(f"stopped native servers left by dead runs: {', '.join(reaped)}")

    def _start(self, target: Target, password: str, log: Log) -> tuple[Path, int, float]:
        bindir = self.bindir(target)
        with self._lock:
            if self._closed:
                raise HarnessError(f"The run is stopping; {target.id} was not started.")
            datadir = Path(tempfile.mkdtemp(prefix=f"matrix-{target.id}-"))
            self._running[datadir] = leftovers.record(
                self.state_dir,
                RECORD_KIND,
                datadir.name,
                {"datadir": str(datadir), "pg_ctl": str(bindir / "pg_ctl"), "run": self.run_id},
            )
        try:
            pwfile = datadir / "pwfile"
            pwfile.write_text(password)
            _give_to_server_account(datadir)
            pgdata = datadir / "data"
            self._run(
                [
                    bindir / "initdb",
                    "-D",
                    pgdata,
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                "initdb",
            )
            pwfile.unlink()
            port = free_port()
            options = " ".join(
                (
                    f"-p {port} -c listen_addresses=127.0.0.1 -k {datadir}",
                    *(() if self.durable else engine_named(target.engine).throwaway_settings),
                )
            )
            log(f"native PostgreSQL {target.version} starting on 127.0.0.1:{port}")
            self._run(
                [
                    bindir / "pg_ctl",
                    "-D",
                    pgdata,
                    "-l",
                    datadir / "server.log",
                    "-o",
                    options,
                    "-w",  # pg_ctl polls ten times a second (WAITS_PER_SEC in pg_ctl.c)
                    "-t",
                    str(int(target.settings.ready_timeout)),
                    "start",
                ],
                "pg_ctl start",
                # pg_ctl waits up to ready_timeout itself; give it that and a margin
                timeout=target.settings.ready_timeout + COMMAND_TIMEOUT_S,
            )
            server_url = (
                engine_named(target.engine)
                .url(f"{target.engine}://{SUPERUSER}@127.0.0.1:{port}/postgres")
                .set(password=password)
            )
            ready = databases.wait_until_ready(
                server_url,
                target.settings.ready_timeout,
                postgis=bool(target.postgis),
                log_tail=lambda: _tail(datadir / "server.log"),
            )
        except BaseException:
            self._stop(datadir)
            raise
        return datadir, port, ready

    def _stop(self, datadir: Path) -> None:
        # Stops are serialised: close() (SIGTERM) must not return, and the run
        # exit, while a cell's thread is still halfway through removing a folder.
        with self._stopping:
            with self._lock:
                if datadir not in self._running:
                    return
                record = self._running.pop(datadir)
            _clean_leftover({"datadir": str(datadir), "pg_ctl": None})
            leftovers.forget(record)

    def _run(self, command: list, what: str, timeout: float = COMMAND_TIMEOUT_S) -> None:
        with self._lock:
            if self._closed:
                raise HarnessError("The run is stopping.")
            process = subprocess.Popen(
                _as_server_account(command),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            self._commands.add(process)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise HarnessError(
                f"{what} did not finish within {timeout:g} s.",
                "Check the local PostgreSQL installation and the disk.",
            ) from None
        finally:
            with self._lock:
                self._commands.discard(process)
        if process.returncode != 0:
            raise HarnessError(
                f"{what} failed with exit code {process.returncode}: "
                f"{masking.mask(output.strip())}",
                "Check the local PostgreSQL installation, or use another provider "
                "(--provider docker or external).",
            )


def _clean_leftover(facts: dict[str, Any]) -> None:
    """Stop the server of a data folder (whoever started it) and remove the folder."""
    datadir = Path(facts["datadir"])
    pid_file = datadir / "data" / "postmaster.pid"
    try:
        pid = abs(int(pid_file.read_text().splitlines()[0]))  # negative: single-user mode
    except (OSError, ValueError, IndexError):
        pid = 0
    if pid and leftovers.pid_alive(pid) and _serves(pid, datadir):
        try:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown, children included
        except (ProcessLookupError, PermissionError):
            pass
        for _ in range(100):
            if not leftovers.pid_alive(pid):
                break
            threading.Event().wait(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    shutil.rmtree(datadir, ignore_errors=True)


def _serves(pid: int, datadir: Path) -> bool:
    """Whether ``pid`` is still that server: a dead run's pid may belong to another process now."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return str(datadir).encode() in command


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _postgis_installed(bindir: Path) -> bool:
    share = Path("/usr/share/postgresql") / bindir.parent.name / "extension"
    return (share / "postgis.control").exists()


def _give_to_server_account(path: Path) -> None:
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam("postgres")
    os.chown(path, account.pw_uid, account.pw_gid)
    for child in path.iterdir():
        os.chown(child, account.pw_uid, account.pw_gid)


def _as_server_account(command: list) -> list[str]:
    command = [str(part) for part in command]
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return masking.mask("\n".join(path.read_text().splitlines()[-lines:]))
    except OSError:
        return ""
