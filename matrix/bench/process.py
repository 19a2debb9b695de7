"""The check process with the benchmark after its checks: ``python -m matrix.bench.process``.

The runner starts this program instead of :mod:`matrix.check.process` when a
run measures throughput: the same checks, then the benchmark on the database
they left at head, in the same process (the plugin is imported once). The
check stage knows nothing of the benchmark; this stage runs after it.
"""

from __future__ import annotations

import sys

from matrix.check import process
from matrix.protocol import Benchmarked, CellSpec, Started, emit


def benchmark_after_checks(cell, spec: CellSpec) -> None:
    """Measure session throughput on the database the checks left at head."""
    from matrix.bench.measure import run_benchmark

    if spec.benchmark is None:
        return
    emit(Started("benchmark"))
    emit(Benchmarked(run_benchmark(cell.plugin, cell.url, cell.schema, spec.benchmark)))


def main(argv: list[str] | None = None) -> int:
    return process.main(sys.argv[1:] if argv is None else argv, after=benchmark_after_checks)


if __name__ == "__main__":
    raise SystemExit(main())
