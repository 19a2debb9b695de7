"""Running a command while sampling the peak memory of its whole process tree.

Two measures, because each misses what the other sees:

- every ``SAMPLE_S`` the tree is walked in ``/proc`` (parent links, since
  this kernel has no ``/proc/<pid>/task/<tid>/children``) and each
  process's ``VmHWM`` (its own peak resident set) is kept with its command
  line, so the harness's parent and its check process are told apart; a
  process's last growth before it exits between two samples is missed;
- ``os.wait4`` on the command returns ``ru_maxrss``, which Linux folds up
  from every descendant that was waited for: the largest peak of the tree,
  exact, but without saying whose.

Servers are not in the tree: containers belong to the Docker engine, and
``pg_ctl`` detaches the native server from it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_S = 0.05


@dataclass
class ProcessPeak:
    """One process of the tree: its command line and the largest VmHWM seen."""

    pid: int
    command: str
    peak_kb: int
    parent: int = 0  # a check process forked from the probe has the probe's command line


@dataclass
class Sampled:
    """A finished command: exit status, output, peaks."""

    returncode: int
    output: str
    tree_peak_kb: int  # ru_maxrss from wait4: the largest process of the tree
    processes: list[ProcessPeak] = field(default_factory=list)

    def peak_of(self, *words: str, without: str | None = None) -> int:
        """The largest VmHWM among processes whose command line has all ``words``."""
        return max(
            (
                p.peak_kb
                for p in self.processes
                if all(w in p.command for w in words) and not (without and without in p.command)
            ),
            default=0,
        )

    def forked_peak(self, *words: str) -> int:
        """The largest VmHWM among processes forked from one whose command line has ``words``
        (they keep its command line: the check processes forked from the probe)."""
        parents = {p.pid for p in self.processes if all(w in p.command for w in words)}
        return max((p.peak_kb for p in self.processes if p.parent in parents), default=0)


def run_sampled(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 3600,
) -> Sampled:
    """Run ``command`` to its end, sampling its tree; output to a file, not a pipe.

    A file, so that a chatty command never blocks on a full pipe while this
    loop sleeps. Past ``timeout`` its process group is killed.
    """
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        tree = _Tree(process.pid)
        deadline = time.monotonic() + timeout
        while True:
            tree.sample()
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(SAMPLE_S)
        process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        output.seek(0)
        text = output.read()
    return Sampled(process.returncode, text, usage.ru_maxrss, tree.peaks())


class _Tree:
    """The command's descendants, found by parent links, and their peaks."""

    def __init__(self, root: int) -> None:
        self.members: set[int] = {root}
        self.others: set[int] = set()  # processes seen that are not in the tree
        self.found: dict[int, ProcessPeak] = {}
        self.parents: dict[int, int] = {}

    def sample(self) -> None:
        self._discover()
        for pid in list(self.members):
            status = _read(f"/proc/{pid}/status")
            if status is None:
                continue
            peak = _vm_hwm(status)
            command = _command_line(pid)
            known = self.found.get(pid)
            if known is None:
                self.found[pid] = ProcessPeak(pid, command, peak, self.parents.get(pid, 0))
            else:
                known.peak_kb = max(known.peak_kb, peak)
                known.command = command or known.command  # after exec, the new program

    def _discover(self) -> None:
        """Classify the processes not seen yet: in the tree when a parent is."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid in self.members or pid in self.others:
                continue
            stat = _read(f"/proc/{pid}/stat")
            if stat is not None:
                # ppid is the second field after the command, which is in parentheses
                parents[pid] = int(stat.rpartition(")")[2].split()[1])
        grew = True
        while grew:
            grew = False
            for pid, parent in list(parents.items()):
                if parent in self.members:
                    self.members.add(pid)
                    self.parents[pid] = parent
                    del parents[pid]
                    grew = True
        self.others.update(parents)  # neither in the tree nor ever to be

    def peaks(self) -> list[ProcessPeak]:
        return sorted(self.found.values(), key=lambda p: p.pid)


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:  # gone between listing and reading
        return None


def _vm_hwm(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0  # a zombie has no memory lines


def _command_line(pid: int) -> str:
    raw = _read(f"/proc/{pid}/cmdline")
    return raw.replace("\0", " ").strip() if raw else ""
