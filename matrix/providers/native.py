"""A throwaway PostgreSQL server from the local binaries.

For machines without a Docker engine: ``initdb`` into a temporary folder,
``pg_ctl start`` on a free port bound to 127.0.0.1 only, and everything
removed afterwards. PostgreSQL refuses to run as root, so as root the server
runs as the ``postgres`` account the Debian packages create.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from matrix import databases, masking
from matrix.definition import Target
from matrix.errors import HarnessError
from matrix.providers.base import Database, Log, Provider, free_port, retry_once

PG_ROOT = Path(os.environ.get("MATRIX_PG_ROOT", "/usr/lib/postgresql"))
SUPERUSER = "peek"


class NativeProvider(Provider):
    name = "native"

    def __init__(self) -> None:
        self._running: dict[Path, Path] = {}  # data folder -> its pg_ctl
        self._lock = threading.Lock()

    def bindir(self, target: Target) -> Path:
        return PG_ROOT / target.version / "bin"

    def unavailable_reason(self, target: Target) -> str | None:
        if target.engine != "postgresql":
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
        password = masking.generate_password()
        datadir, port, ready = retry_once(
            lambda attempt: self._start(target, password, log, attempt),
            log,
            f"PostgreSQL {target.version}",
        )
        server_url = databases.with_driver(
            f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        ).set(password=password)
        try:
            url = databases.create_database(server_url, databases.throwaway_name())
            yield Database(target, url, self.name, ready)
        finally:
            self._stop(datadir)

    def close(self) -> None:
        with self._lock:
            running = list(self._running)
        for datadir in running:
            self._stop(datadir)

    def _start(
        self, target: Target, password: str, log: Log, attempt: int
    ) -> tuple[Path, int, float]:
        bindir = self.bindir(target)
        datadir = Path(tempfile.mkdtemp(prefix=f"matrix-{target.id}-"))
        with self._lock:
            self._running[datadir] = bindir / "pg_ctl"
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
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -k {datadir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log(f"native PostgreSQL {target.version} starting on 127.0.0.1:{port}")
        try:
            self._run(
                [
                    bindir / "pg_ctl",
                    "-D",
                    pgdata,
                    "-l",
                    datadir / "server.log",
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(target.settings.ready_timeout)),
                    "start",
                ],
                "pg_ctl start",
            )
            server_url = databases.with_driver(
                f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
            ).set(password=password)
            ready = databases.wait_until_ready(
                server_url,
                target.settings.ready_timeout,
                postgis=bool(target.postgis),
                log_tail=lambda: _tail(datadir / "server.log"),
            )
        except HarnessError:
            self._stop(datadir)
            raise
        return datadir, port, ready

    def _stop(self, datadir: Path) -> None:
        with self._lock:
            pg_ctl = self._running.pop(datadir, None)
        if pg_ctl is None:
            return
        pgdata = datadir / "data"
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                _as_server_account([pg_ctl, "-D", pgdata, "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(datadir, ignore_errors=True)

    def _run(self, command: list, what: str) -> None:
        done = subprocess.run(
            _as_server_account(command), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            output = masking.mask((done.stdout + done.stderr).strip())
            raise HarnessError(
                f"{what} failed with exit code {done.returncode}: {output}",
                "Check the local PostgreSQL installation, or use another provider "
                "(--provider docker or external).",
            )


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
