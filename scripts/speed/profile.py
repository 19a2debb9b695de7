"""Where the check process spends its time: py-spy over one harness run.

``py-spy record --subprocesses --idle --format raw`` samples the harness and
every process it starts; each raw line is one stack (``process PID:"command"``
frames first, then the Python frames, root first) and its sample count.
``--idle`` keeps the samples where a thread waits (on the database, mostly):
without it, a check that waits on PostgreSQL would look free.

Only the check process's main thread is counted (stacks through
``matrix/check/process.py``'s ``main`` and its ``run``, not its ``probe`` or
``seed``): its other thread sleeps until the harness goes away and would
double every figure. The frames say which process it is, not the command
line py-spy shows: py-spy may read a child's command line before its
``exec``, and name the check process after the harness that forked it. A
function's inclusive share is the share of those samples whose stack holds
it anywhere, once per stack.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RATE = 100  # samples per second
_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Hotspot:
    """A function, and the samples of the check process's main thread that hold it."""

    function: str
    samples: int
    share: float  # of the main thread's samples

    @property
    def seconds(self) -> float:
        return self.samples / RATE


@dataclass
class Profile:
    """The parsed record: samples per process and the check process's hot spots."""

    processes: dict[str, int]  # command line -> samples (all threads)
    main_samples: int  # the check process's main thread
    hotspots: list[Hotspot]
    stages: dict[str, int]  # each check, and the work before and after them -> samples
    waiting: int  # samples whose innermost frame waits on the server (psycopg)
    parent: dict[str, int]  # the harness process's main thread: run_matrix and around it


def find_py_spy(fallback_env: Path | None) -> Path:
    """py-spy beside this interpreter or on the PATH; else installed into ``fallback_env``."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return beside
    found = shutil.which("py-spy")
    if found:
        return Path(found)
    if fallback_env is None:
        raise SystemExit("py-spy is not installed and there is no environment to install it in")
    target = fallback_env / "bin" / "py-spy"
    if not target.exists():
        python = fallback_env / "bin" / "python"
        uv = shutil.which("uv")
        install = (
            [uv, "pip", "install", "--quiet", "--python", str(python), "py-spy"]
            if uv
            else [str(python), "-m", "pip", "install", "--quiet", "py-spy"]
        )
        subprocess.run(install, check=True)
    return target


def command(py_spy: Path, output: Path, harness: list[str]) -> list[str]:
    return [
        str(py_spy),
        "record",
        "--subprocesses",
        "--idle",
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--output",
        str(output),
        "--",
        *harness,
    ]


def record(py_spy: Path, output: Path, harness: list[str], env: dict[str, str]) -> None:
    """Run the harness under py-spy; the raw stacks go to ``output``."""
    done = subprocess.run(
        command(py_spy, output, harness), env=env, capture_output=True, text=True, check=False
    )
    if not output.is_file():
        raise SystemExit(f"py-spy wrote nothing:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def parse(raw: str, top: int = 15) -> Profile:
    """Samples per process, and the check process's hot spots, stages and waits."""
    processes: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    parent: collections.Counter[str] = collections.Counter()
    main = waiting = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        owners = [f for f in frames if f.startswith("process ")]
        owner = owners[-1].partition(":")[2].strip('"') if owners else "?"
        processes[owner] += count
        python = [_LINE.sub(")", f) for f in frames if not f.startswith("process ")]
        forked = [i for i, f in enumerate(python) if f.startswith("_become (matrix/forks.py")]
        if forked:  # a check process forked from the probe: its own frames start there
            python, owner = python[forked[-1] + 1 :], "forked from the probe"
        if len(owners) == 1 and not any("Thread._bootstrap " in f for f in python):
            parent[_parent_stage(python)] += count
        if not _is_check_process(owner, python):
            continue
        main += count
        stages[_stage(python)] += count
        if python[-1].endswith("(psycopg/connection.py)"):
            waiting += count
        for function in set(python):
            inclusive[function] += count
    hotspots = [
        Hotspot(function, samples, samples / main if main else 0.0)
        for function, samples in inclusive.most_common()
        if not _plumbing(function)
    ][:top]
    return Profile(
        dict(processes),
        main,
        hotspots,
        dict(stages.most_common()),
        waiting,
        dict(parent.most_common()),
    )


def _stage(frames: list[str]) -> str:
    """The check a stack is in (the frame under ``run_one``), or the step of the cell around."""
    names = [f.partition(" (")[0] for f in frames]
    if "run_one" in names and names.index("run_one") + 1 < len(names):
        return names[names.index("run_one") + 1]
    after = names[names.index("run") + 1] if "run" in names[:-1] else ""
    if after.startswith("__create_fn__"):  # the dataclass's __init__: Migrator(plugin)
        return "(cell) Cell(): reading the history"
    if not after or after.startswith("_"):  # importlib's frames
        return "(cell) imports"
    return f"(cell) {after}"


def _parent_stage(frames: list[str]) -> str:
    """Where the harness's own main thread is: the run, the reports after it, imports."""
    names = [f.partition(" (")[0] for f in frames]
    if not names:
        return "(interpreter start and exit)"
    if "run_command" in names and names.index("run_command") + 1 < len(names):
        step = names[names.index("run_command") + 1]
        return "imports" if step.startswith("_") else step
    if "_find_and_load" in names:
        return "imports"
    return names[min(3, len(names) - 1)]


def _is_check_process(command_line: str, frames: list[str]) -> bool:
    """A stack of the check process: through its ``main``, neither probe nor seed."""
    if "--probe" in command_line or "--seed" in command_line:
        return False
    return "main (matrix/check/process.py)" in frames and not any(
        f.startswith(("probe (matrix/check/process.py", "seed (matrix/check/process.py"))
        for f in frames
    )


def _plumbing(function: str) -> bool:
    """Frames that only carry others: the interpreter's, the cell's entry, the check loop."""
    return "(<frozen " in function or function.startswith(
        (
            "<module> (matrix/check/process",
            "main (matrix/check/process",
            "run (matrix/check/process",
            "run_checks ",
            "run_one ",
        )
    )
