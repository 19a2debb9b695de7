"""Wall time of the whole PostgreSQL matrix, sequential against parallel.

Runs ``python -m matrix run --engine postgresql`` several times with
``-j 1`` and with ``-j <cores>`` (images present, the wheel built once
beforehand and reused), and prints the wall time of each whole run and the
median of each phase (install, start, checks, cleanup) per target, read from
the run's ``compat.json``. A measurement, not a test: nothing is asserted.

    python scripts/bench_matrix.py --rounds 3 [--provider docker]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_once(dist: Path) -> Path:
    """Build the plugin's wheel once, so every round installs the same file."""
    sys.path.insert(0, str(ROOT))
    from matrix.plugin import build_wheel

    return build_wheel(ROOT / "plugin_under_test", dist)


def one_run(wheel: Path, jobs: int, provider: str) -> tuple[float, dict]:
    reports = Path(tempfile.mkdtemp(prefix="bench-matrix-"))
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "matrix",
            "run",
            "--plugin",
            str(wheel),
            "--engine",
            "postgresql",
            "-j",
            str(jobs),
            "--provider",
            provider,
            "--reports",
            str(reports),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    report = json.loads((reports / "compat.json").read_text())
    if done.returncode != 0:
        raise SystemExit(f"the matrix did not pass:\n{done.stdout}\n{done.stderr}")
    return wall, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--provider", default="docker")
    args = parser.parse_args()
    wheel = build_once(Path(tempfile.mkdtemp(prefix="bench-dist-")))
    cores = os.cpu_count() or 2
    for jobs in (1, cores):
        walls, phases = [], {}
        for _ in range(args.rounds):
            wall, report = one_run(wheel, jobs, args.provider)
            walls.append(wall)
            phases.setdefault("install", []).append(report["phases"]["install"])
            for target in report["targets"]:
                for phase, seconds in target["phases"].items():
                    phases.setdefault(f"{target['id']} {phase}", []).append(seconds)
                phases.setdefault(f"{target['id']} ready", []).append(target["ready_seconds"])
        print(
            f"\n-j {jobs}: wall time of the whole matrix, {args.rounds} rounds: "
            f"median {statistics.median(walls):.1f} s "
            f"(min {min(walls):.1f}, max {max(walls):.1f})"
        )
        for phase, values in phases.items():
            print(f"  {phase:32} median {statistics.median(values):6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
