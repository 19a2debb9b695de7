"""Time to verdict: the harness against two peer stacks, side by side, on this machine.

A benchmark, not a test: nothing is asserted. The two peers are what a
plugin author would run instead, both testcontainers-python with
pytest-alembic's four default tests, the container's start included:

- the *testcontainers peer* (``scripts/speed/peer.py``): testcontainers'
  ``PostgresContainer`` with its default wait strategy, a fresh database per
  test;
- the *fast peer*, the reference (``--fast-peer``, ``scripts/speed/fast_peer.py``):
  a plain ``DockerContainer`` on the host network, a ``SELECT 1`` poll every
  0.2 s, one database for the session.

One run measures

1. a 100-revision Peek-style plugin (``scripts/make_long_plugin.py``) on one
   PostgreSQL 15 cell, every check: the harness with ``--provider docker`` and
   ``--provider native`` against both peers; with the harness's cost per
   revision and its phases;
2. the PostgreSQL 13/15/17 matrix on the tutorial plugin: the harness on its
   project folder, built into a wheel in ``dist/`` as ``nox -s
   migrate-postgres`` does (``--engine postgresql --provider docker
   --dist``, default ``-j``), against each peer's four tests run once per
   version, one container after another;
3. the harness's peak memory (its process tree) at 50, 100 and 200 revisions;
4. with ``--profile``, once, where the check process spends its time (py-spy).

The plugin environments and the peers' virtual environments are made
first, and every measured command runs once untimed before the rounds.
Rounds alternate the variants, so that drift in the machine's load falls on
all of them alike. Prints medians with min and max, the ratios harness/peer
and the commands reproduced; writes the same as JSON (``--output``).

With ``--baseline PYTHON`` (an interpreter whose ``python -m matrix`` is an
earlier harness, e.g. a checkout of main in a virtual environment of its own)
that harness runs too, docker only, alternating with the others in every
round: before and after, measured in one run. Run the script from a folder
that holds no ``matrix`` package, so that each interpreter imports its own.

    .nox/tests/bin/python scripts/harness_speed.py --rounds 3 --fast-peer ../shared/peer-stack \
        [--baseline PYTHON] [--profile] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import make_long_plugin
from speed import fast_peer, harness, peer, profile, stats
from speed.stats import Summary

ROOT = Path(__file__).resolve().parent.parent
TARGET = "pg15-postgis33"
IMAGE_15 = "peek-matrix/postgis:15-3.3"
MATRIX_IMAGES = ("peek-matrix/postgis:13-3.1", IMAGE_15, "peek-matrix/postgis:17-3.5")
TUTORIAL = ROOT / "plugin_under_test"
LONG_OPTIONS = ["--targets", TARGET]
MATRIX_OPTIONS = ["--engine", "postgresql", "--provider", "docker"]


@dataclass
class Setup:
    """Everything made before timing: plugins, wheel, environments, the peer's projects."""

    work: Path
    python: Path
    env: dict[str, str]  # the harness's environment (its own cache folder)
    revisions: int
    long_plugins: dict[int, Path]  # revisions -> package folder
    dist: Path  # where the tutorial's wheel is built, as nox's dist/
    peer_python: Path
    long_peer: tuple[Path, peer.PeerCase]
    tutorial_peer: tuple[Path, peer.PeerCase]
    fast_python: Path
    long_fast: tuple[Path, fast_peer.FastPeerCase]
    tutorial_fast: tuple[Path, fast_peer.FastPeerCase]
    fast_images: dict[str, str]  # the harness's image -> its peer/postgis tag
    baseline: Path | None = None  # an earlier harness's interpreter, measured alongside
    commands: dict[str, str] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default: 3)")
    parser.add_argument(
        "--revisions", type=int, default=100, help="the long plugin's history (default: 100)"
    )
    parser.add_argument(
        "--sizes",
        default="50,200",
        help="further histories whose memory is measured (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the harness once on the long plugin and once on the tutorial matrix",
    )
    parser.add_argument(
        "--profile-only",
        action="store_true",
        help="only the two profiles: no rounds, no peers (the figures file holds the profiles)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "reports" / "bench-matrix.json",
        help="where the figures go as JSON (default: reports/bench-matrix.json)",
    )
    parser.add_argument(
        "--work", type=Path, help="folder kept for plugins, environments and caches"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="an earlier harness's python, run alongside (docker) for before/after figures",
    )
    parser.add_argument(
        "--fast-peer",
        type=Path,
        default=ROOT.parent / "shared" / "peer-stack",
        help="the fast peer's folder: README, conftest.py, test_peer.py (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} - {args.revisions})
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-matrix-"))
    try:
        setup = prepare(work, args.revisions, sizes, args.fast_peer)
        setup.baseline = args.baseline
        describe(setup)
        results: dict[str, Any] = {"machine": machine(setup)}
        if not args.profile_only:
            warm_up(setup, sizes)
            results["long"] = measure_long(setup, args.rounds)
            results["matrix"] = measure_matrix(setup, args.rounds)
            results["memory"] = measure_memory(setup, args.rounds, sizes, results["long"])
        if args.profile or args.profile_only:
            long_plugin = setup.long_plugins[setup.revisions]
            results["profile"] = measure_profile(
                setup,
                f"{setup.revisions} revisions, docker",
                long_plugin,
                [*LONG_OPTIONS, "--provider", "docker"],
            )
            results["profile_matrix"] = measure_profile(
                setup, "tutorial matrix, pg13/15/17", TUTORIAL, matrix_options(setup)
            )
        if not args.profile_only:
            results["final"] = final(setup, results)
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        print(
            f"\nload average (1, 5, 15 min) at start {results['machine']['load_average_at_start']}"
            f", at end {results['machine']['load_average_at_end']} on {os.cpu_count()} cores"
        )
        results["commands"] = setup.commands
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(to_json(results), indent=2) + "\n")
        print(f"\nfigures written to {args.output}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# -- before timing -------------------------------------------------------------------


def prepare(work: Path, revisions: int, sizes: list[int], fast_stack: Path) -> Setup:
    """Write the long plugins, make the peers' venvs and their projects."""
    work.mkdir(parents=True, exist_ok=True)
    python = Path(sys.executable)
    env = {**os.environ, "MATRIX_CACHE_DIR": str(work / "cache")}
    env.pop("PYTHONPATH", None)
    long_plugins = {}
    for count in sorted({revisions, *sizes}):
        folder = work / f"long{count}"
        if not (folder / make_long_plugin.PACKAGE).exists():
            make_long_plugin.write(folder, count)
        long_plugins[count] = folder / make_long_plugin.PACKAGE
    peer_python = peer.make_environment(work / "peer-venv", python)
    long_case = peer.PeerCase(
        name=f"long{revisions}",
        image=IMAGE_15,
        alembic_dir=long_plugins[revisions] / "_private" / "alembic",
        metadata_module=f"{make_long_plugin.PACKAGE}._private.storage.DeclarativeBase",
        import_root=long_plugins[revisions].parent,
        postgis=False,  # the long plugin uses no PostGIS type
    )
    private = TUTORIAL / "peek_plugin_tutorial" / "_private"
    tutorial_case = peer.PeerCase(
        name="tutorial",
        image=IMAGE_15,
        alembic_dir=private / "alembic",
        metadata_module="peek_plugin_tutorial._private.storage.DeclarativeBase",
        import_root=TUTORIAL,
        postgis=True,
        alembic_ini=private / "alembic.ini",  # its env.py configures logging from it
    )
    long_fast = fast_peer.FastPeerCase(f"long{revisions}", long_plugins[revisions], adapted=False)
    tutorial_fast = fast_peer.FastPeerCase(
        "tutorial", TUTORIAL / "peek_plugin_tutorial", adapted=True
    )
    return Setup(
        work=work,
        python=python,
        env=env,
        revisions=revisions,
        long_plugins=long_plugins,
        dist=work / "dist",
        peer_python=peer_python,
        long_peer=(peer.write_project(work / "peer-long", long_case), long_case),
        tutorial_peer=(peer.write_project(work / "peer-tutorial", tutorial_case), tutorial_case),
        fast_python=fast_peer.make_environment(work / "fast-peer-venv", python),
        long_fast=(fast_peer.write_project(fast_stack, work / "fast-long", long_fast), long_fast),
        tutorial_fast=(
            fast_peer.write_project(fast_stack, work / "fast-tutorial", tutorial_fast),
            tutorial_fast,
        ),
        fast_images={image: fast_peer.tag(image) for image in MATRIX_IMAGES},
    )


def describe(setup: Setup) -> None:
    """Print and keep the exact commands every case runs."""
    cache = {"MATRIX_CACHE_DIR": setup.env["MATRIX_CACHE_DIR"]}
    long_plugin = setup.long_plugins[setup.revisions]
    for provider in ("docker", "native"):
        setup.commands[f"harness {setup.revisions} revisions, {provider}"] = harness.reproduce(
            setup.python, long_plugin, [*LONG_OPTIONS, "--provider", provider], cache
        )
    if setup.baseline:
        setup.commands[f"baseline {setup.revisions} revisions, docker"] = harness.reproduce(
            setup.baseline, long_plugin, [*LONG_OPTIONS, "--provider", "docker"], cache
        )
        setup.commands["baseline tutorial matrix"] = harness.reproduce(
            setup.baseline,
            TUTORIAL,
            [*MATRIX_OPTIONS, "--dist", str(setup.work / "dist-baseline")],
            cache,
        )
    project, case = setup.long_peer
    setup.commands[f"peer {setup.revisions} revisions"] = peer.reproduce(
        setup.peer_python, project, case
    )
    project, fast = setup.long_fast
    setup.commands[f"fast peer {setup.revisions} revisions"] = fast_peer.reproduce(
        setup.fast_python, project, fast, setup.fast_images[IMAGE_15]
    )
    setup.commands["harness tutorial matrix"] = harness.reproduce(
        setup.python, TUTORIAL, matrix_options(setup), cache
    )
    project, case = setup.tutorial_peer
    for image in MATRIX_IMAGES:
        setup.commands[f"peer tutorial {peer_id(image)}"] = peer.reproduce(
            setup.peer_python, project, case, image
        )
    project, fast = setup.tutorial_fast
    for image in MATRIX_IMAGES:
        setup.commands[f"fast peer tutorial {peer_id(image)}"] = fast_peer.reproduce(
            setup.fast_python, project, fast, setup.fast_images[image]
        )
    for count, plugin in setup.long_plugins.items():
        if count != setup.revisions:
            setup.commands[f"harness {count} revisions, docker"] = harness.reproduce(
                setup.python, plugin, [*LONG_OPTIONS, "--provider", "docker"], cache
            )
    setup.commands["long plugin"] = (
        f"{setup.python} scripts/make_long_plugin.py OUT --revisions N"
        f"  (here: {', '.join(str(p.parent) for p in setup.long_plugins.values())})"
    )
    print("Commands measured (the harness's REPORTS is a fresh folder each round):")
    for name, line in setup.commands.items():
        print(f"  {name}:\n    {line}")


def warm_up(setup: Setup, sizes: list[int]) -> None:
    """Run every measured command once, untimed: environments, page cache, bytecode."""
    print("\nwarming up (untimed): every measured command once", flush=True)
    for provider in ("docker", "native"):
        run_harness(setup, setup.long_plugins[setup.revisions], provider)
    run_peer(setup, setup.long_peer)
    run_fast(setup, setup.long_fast, IMAGE_15)
    run_matrix_case(setup)
    if setup.baseline:
        run_harness(setup, setup.long_plugins[setup.revisions], "docker", setup.baseline)
        run_matrix_case(setup, baseline=True)
    for image in MATRIX_IMAGES:
        run_peer(setup, setup.tutorial_peer, image)
        run_fast(setup, setup.tutorial_fast, image)
    for count in sizes:
        run_harness(setup, setup.long_plugins[count], "docker")


def machine(setup: Setup) -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
        "peer": peer.installed_versions(setup.peer_python),
        "fast_peer": fast_peer.installed_versions(setup.fast_python),
    }


# -- the cases ---------------------------------------------------------------------


def matrix_options(setup: Setup) -> list[str]:
    """The matrix case's options: the project is built into ``setup.dist`` on every run."""
    return [*MATRIX_OPTIONS, "--dist", str(setup.dist)]


def run_harness(
    setup: Setup, plugin: Path, provider: str, python: Path | None = None
) -> harness.HarnessRun:
    options = [*LONG_OPTIONS, "--provider", provider]
    return harness.run(python or setup.python, plugin, options, setup.env)


def run_matrix_case(setup: Setup, baseline: bool = False) -> harness.HarnessRun:
    """The tutorial matrix; the baseline builds into a ``dist`` of its own, as a user's would."""
    if not baseline:
        return harness.run(setup.python, TUTORIAL, matrix_options(setup), setup.env)
    options = [*MATRIX_OPTIONS, "--dist", str(setup.work / "dist-baseline")]
    return harness.run(setup.baseline, TUTORIAL, options, setup.env)


def run_peer(
    setup: Setup, project_case: tuple[Path, peer.PeerCase], image: str | None = None
) -> peer.PeerRun:
    project, case = project_case
    return peer.run(setup.peer_python, project, case, image)


def run_fast(
    setup: Setup, project_case: tuple[Path, fast_peer.FastPeerCase], image: str
) -> fast_peer.FastPeerRun:
    project, case = project_case
    port = free_port()
    return fast_peer.run(setup.fast_python, project, case, setup.fast_images[image], port)


def measure_long(setup: Setup, rounds: int) -> dict[str, Any]:
    """Case 1: one PostgreSQL 15 cell, the long history, harness (docker, native) and peer."""
    n = setup.revisions
    print(f"\n== {n} revisions, one PostgreSQL 15 cell, {rounds} rounds ==", flush=True)
    figures: dict[str, list[dict[str, float]]] = {
        "docker": [],
        "native": [],
        "peer": [],
        "fast": [],
    }
    if setup.baseline:
        figures["baseline"] = []
    verdicts: dict[str, set[str]] = {name: set() for name in figures}
    for number in range(1, rounds + 1):
        for provider in ("docker", "native"):
            done = run_harness(setup, setup.long_plugins[n], provider)
            figures[provider].append(done.figures)
            verdicts[provider].add(done.verdict())
            print(f"  round {number}: harness {provider:6} {done.wall_s:6.1f} s", flush=True)
        if setup.baseline:
            done = run_harness(setup, setup.long_plugins[n], "docker", setup.baseline)
            figures["baseline"].append(done.figures)
            verdicts["baseline"].add(done.verdict())
            print(f"  round {number}: baseline docker {done.wall_s:6.1f} s", flush=True)
        done_peer = run_peer(setup, setup.long_peer)
        figures["peer"].append(done_peer.figures(n))
        verdicts["peer"].add(done_peer.verdict())
        print(f"  round {number}: testcontainers peer {done_peer.wall_s:6.1f} s", flush=True)
        done_fast = run_fast(setup, setup.long_fast, IMAGE_15)
        figures["fast"].append(
            {"wall": done_fast.wall_s, "memory.tree_peak_mb": done_fast.peak_rss_kb / 1024}
        )
        verdicts["fast"].add(done_fast.verdict())
        print(f"  round {number}: fast peer      {done_fast.wall_s:6.1f} s", flush=True)
    summaries = {name: stats.summarize(rows) for name, rows in figures.items()}
    print_verdicts(verdicts)
    print()
    print(
        stats.table(
            "wall time, fork to exit",
            {
                "harness docker": pick(summaries["docker"], ["wall"]),
                "harness native": pick(summaries["native"], ["wall"]),
                "baseline docker": pick(summaries.get("baseline", {}), ["wall"]),
                "testcontainers peer": pick(summaries["peer"], ["wall"]),
                "fast peer": pick(summaries["fast"], ["wall"]),
            },
        )
    )
    harness_rows = [k for k in summaries["docker"] if not k.startswith(("wall", "memory."))]
    print()
    print(
        stats.table(
            "harness: phases and checks",
            {
                "docker": pick(summaries["docker"], harness_rows),
                "native": pick(summaries["native"], harness_rows),
                "baseline docker": pick(summaries.get("baseline", {}), harness_rows),
            },
            unit,
        )
    )
    print()
    print(
        stats.table(
            "testcontainers peer: where its time goes",
            {"peer": pick(summaries["peer"], [k for k in summaries["peer"] if k != "wall"])},
            unit,
        )
    )
    return {"summaries": summaries, "verdicts": verdicts}


def measure_matrix(setup: Setup, rounds: int) -> dict[str, Any]:
    """Case 2: the tutorial on PostgreSQL 13, 15 and 17; the peer one version after another."""
    print(f"\n== tutorial plugin, PostgreSQL 13/15/17 matrix, {rounds} rounds ==", flush=True)
    figures: dict[str, list[dict[str, float]]] = {"harness": [], "peer": [], "fast": []}
    if setup.baseline:
        figures["baseline"] = []
    verdicts: dict[str, set[str]] = {name: set() for name in figures}
    for number in range(1, rounds + 1):
        done = run_matrix_case(setup)
        figures["harness"].append(done.figures)
        verdicts["harness"].add(done.verdict())
        print(f"  round {number}: harness        {done.wall_s:6.1f} s", flush=True)
        if setup.baseline:
            done = run_matrix_case(setup, baseline=True)
            figures["baseline"].append(done.figures)
            verdicts["baseline"].add(done.verdict())
            print(f"  round {number}: baseline       {done.wall_s:6.1f} s", flush=True)
        row: dict[str, float] = {"wall": 0.0}
        for image in MATRIX_IMAGES:
            done_peer = run_peer(setup, setup.tutorial_peer, image)
            row["wall"] += done_peer.wall_s
            name = peer_id(image)
            for key, value in done_peer.figures(3).items():
                row[f"{name}.{key}"] = value
            verdicts["peer"].add(f"{name}: {done_peer.verdict()}")
        figures["peer"].append(row)
        print(f"  round {number}: testcontainers peer (3 runs) {row['wall']:6.1f} s", flush=True)
        fast: dict[str, float] = {"wall": 0.0}
        for image in MATRIX_IMAGES:
            done_fast = run_fast(setup, setup.tutorial_fast, image)
            fast["wall"] += done_fast.wall_s
            fast[f"{peer_id(image)}.wall"] = done_fast.wall_s
            verdicts["fast"].add(f"{peer_id(image)}: {done_fast.verdict()}")
        figures["fast"].append(fast)
        print(f"  round {number}: fast peer (3 runs) {fast['wall']:6.1f} s", flush=True)
    summaries = {name: stats.summarize(rows) for name, rows in figures.items()}
    print_verdicts(verdicts)
    print()
    print(
        stats.table(
            "wall time of the whole matrix",
            {
                "harness": pick(summaries["harness"], ["wall"]),
                "baseline": pick(summaries.get("baseline", {}), ["wall"]),
                "testcontainers peer (sequential)": pick(summaries["peer"], ["wall"]),
                "fast peer (sequential)": pick(summaries["fast"], ["wall"]),
            },
        )
    )
    keep = (
        "run.",
        "target.start",
        "target.ready",
        "target.unphased",
        "target.checks",
        "target.cleanup",
    )
    print()
    print(
        stats.table(
            "harness: phases per target",
            {
                name: pick(
                    summaries[name],
                    [k for k in summaries[name] if any(part in k for part in keep)],
                )
                for name in ("harness", "baseline")
                if name in summaries
            },
        )
    )
    peer_rows = [
        k
        for k in summaries["peer"]
        if k.endswith((".wall", ".container.start", ".fixtures.databases", ".outside_tests"))
    ]
    print()
    print(
        stats.table(
            "peers: per version",
            {
                "testcontainers peer": pick(summaries["peer"], peer_rows),
                "fast peer": summaries["fast"],
            },
        )
    )
    return {"summaries": summaries, "verdicts": verdicts}


def measure_memory(
    setup: Setup, rounds: int, sizes: list[int], long: dict[str, Any]
) -> dict[str, Any]:
    """Case 3: the harness's peak memory and per-revision cost as the history grows (docker)."""
    print(f"\n== harness memory and cost per revision, docker, {rounds} rounds ==", flush=True)
    by_size: dict[int, dict[str, Summary]] = {setup.revisions: long["summaries"]["docker"]}
    for count in sizes:
        rows = []
        for number in range(1, rounds + 1):
            done = run_harness(setup, setup.long_plugins[count], "docker")
            rows.append(done.figures)
            print(f"  round {number}: {count} revisions {done.wall_s:6.1f} s", flush=True)
        by_size[count] = stats.summarize(rows)
    keys = [
        "memory.tree_peak_mb",
        "memory.parent_mb",
        "memory.check_process_mb",
        "memory.probe_mb",
        "per_revision.upgrade_stepwise_ms",
        "per_revision.upgrade_stepwise_own_ms",
        "per_revision.downgrade_stepwise_ms",
        "per_revision.downgrade_stepwise_own_ms",
        "target.checks",
        "wall",
    ]
    print()
    print(
        stats.table(
            "revisions",
            {f"{count} revisions": pick(by_size[count], keys) for count in sorted(by_size)},
            unit,
        )
    )
    growth = memory_growth(by_size)
    span = f"{min(by_size)} to {max(by_size)} revisions"
    for process, per_hundred in growth.items():
        print(f"  {process}: {per_hundred:+.1f} MB per 100 revisions ({span})")
    return {"summaries": {str(k): v for k, v in sorted(by_size.items())}, "growth": growth}


def memory_growth(by_size: dict[int, dict[str, Summary]]) -> dict[str, float]:
    """MB per 100 revisions between the shortest and the longest history, per process.

    The probe loads the plugin and its history and nothing else, so its growth
    is the plugin's own; what the check process grows beyond it is the harness's.
    """
    small, large = min(by_size), max(by_size)
    if small == large:
        return {}
    found = {}
    for key, name in (
        ("memory.check_process_mb", "check process"),
        ("memory.probe_mb", "probe (the plugin and its history alone)"),
        ("memory.parent_mb", "harness parent"),
        ("memory.tree_peak_mb", "tree peak (wait4)"),
    ):
        if key in by_size[small] and key in by_size[large]:
            change = by_size[large][key].median - by_size[small][key].median
            found[name] = round(100 * change / (large - small), 2)
    return found


def measure_profile(setup: Setup, name: str, plugin: Path, options: list[str]) -> dict[str, Any]:
    """Case 4: one harness run under py-spy; where the check processes' main threads go.

    With several targets the check processes' samples add up: a stage's
    seconds are then the sum over the cells.
    """
    print(f"\n== profile: {name}, under py-spy ==", flush=True)
    py_spy = profile.find_py_spy(setup.peer_python.parent.parent)
    slug = "".join(c if c.isalnum() else "-" for c in name)
    raw = setup.work / f"profile-{slug}.raw"
    reports = setup.work / f"profile-reports-{slug}"
    shutil.rmtree(reports, ignore_errors=True)
    command = harness.command(setup.python, plugin, reports, options)
    profile.record(py_spy, raw, command, setup.env)
    setup.commands[f"profile {name}"] = " ".join(profile.command(py_spy, raw, command))
    found = profile.parse(raw.read_text(), top=15)
    seconds = found.main_samples / profile.RATE
    print(f"  {setup.commands[f'profile {name}']}")
    print(
        f"  check processes, main threads: {seconds:.1f} s sampled; waiting on PostgreSQL "
        f"(innermost frame in psycopg): {found.waiting / max(found.main_samples, 1):.0%}"
    )
    print("\n  by stage (each check, and the cell's work around them):")
    for stage, samples in found.stages.items():
        print(f"    {samples / profile.RATE:6.2f} s {samples / found.main_samples:6.1%}  {stage}")
    print("\n  the harness process's main thread (run_matrix waits for the cells):")
    for stage, samples in found.parent.items():
        print(f"    {samples / profile.RATE:6.2f} s  {stage}")
    print("\n  top inclusive functions:")
    for spot in found.hotspots:
        print(f"    {spot.seconds:6.2f} s {spot.share:6.1%}  {spot.function}")
    return {
        "main_thread_s": seconds,
        "waiting_share": found.waiting / max(found.main_samples, 1),
        "stages_s": {k: v / profile.RATE for k, v in found.stages.items()},
        "harness_main_thread_s": {k: v / profile.RATE for k, v in found.parent.items()},
        "hotspots": [
            {"function": s.function, "seconds": s.seconds, "share": round(s.share, 4)}
            for s in found.hotspots
        ],
        "processes_samples": found.processes,
    }


# -- the closing table ----------------------------------------------------------------


def final(setup: Setup, results: dict[str, Any]) -> dict[str, Any]:
    """The ratios harness/peer against each peer and the per-revision cost, as one table.

    The fast peer is the reference (issue 23's goals: at most 0.6 on the
    matrix, 1.0 on the long plugin); the testcontainers peer is the one
    this benchmark had before it.
    """
    long, matrix = results["long"]["summaries"], results["matrix"]["summaries"]
    n = setup.revisions
    rows = {}
    for peer_name, key in (("fast peer", "fast"), ("testcontainers peer", "peer")):
        rows[f"{n} revisions, pg15, harness docker / {peer_name}"] = (
            long["docker"].get("wall"),
            long[key].get("wall"),
        )
        rows[f"{n} revisions, pg15, harness native (fsync off) / {peer_name}"] = (
            long["native"].get("wall"),
            long[key].get("wall"),
        )
        rows[f"tutorial, pg13/15/17, harness / {peer_name} (sequential)"] = (
            matrix["harness"].get("wall"),
            matrix[key].get("wall"),
        )
        if "baseline" in long:
            rows[f"{n} revisions, pg15, baseline docker / {peer_name}"] = (
                long["baseline"].get("wall"),
                long[key].get("wall"),
            )
            rows[f"tutorial, pg13/15/17, baseline / {peer_name} (sequential)"] = (
                matrix["baseline"].get("wall"),
                matrix[key].get("wall"),
            )
    found: dict[str, Any] = {}
    print("\n== summary ==")
    width = max(len(name) for name in rows) + 2
    print(f"{'':{width}}{'harness':>12}{'peer':>12}{'ratio':>8}")
    for name, (ours, theirs) in rows.items():
        value = stats.ratio(ours, theirs)
        found[name] = {
            "harness_s": ours.median if ours else None,
            "peer_s": theirs.median if theirs else None,
            "ratio": round(value, 3) if value is not None else None,
        }
        shown = f"{value:8.2f}" if value is not None else f"{'-':>8}"
        print(f"{name:{width}}{_median(ours):>12}{_median(theirs):>12}{shown}")
    docker = long["docker"]
    print(f"\nper revision, harness docker ({n} revisions):")
    for walk in harness.WALKS:
        whole, own = (
            docker.get(f"per_revision.{walk}_ms"),
            docker.get(f"per_revision.{walk}_own_ms"),
        )
        if whole and own:
            found[f"per_revision.{walk}_ms"] = round(whole.median, 2)
            found[f"per_revision.{walk}_own_ms"] = round(own.median, 2)
            print(
                f"  {walk:20} {whole.median:6.1f} ms, of which the migration step itself "
                f"(commit included) {own.median:5.1f} ms"
            )
    step = long["peer"].get("per_step_ms")
    if step:
        found["peer_per_step_ms"] = round(step.median, 2)
        print(f"  peer, test_up_down_consistency per step: {step.median:6.1f} ms")
    memory = results["memory"]["summaries"]
    print("\npeak memory, harness docker (median; parent, check process, tree by wait4):")
    for size, summaries in memory.items():
        parts = [
            f"{summaries[key].median:6.1f} MB"
            for key in ("memory.parent_mb", "memory.check_process_mb", "memory.tree_peak_mb")
            if key in summaries
        ]
        print(f"  {size:>4} revisions: {', '.join(parts)}")
    found["memory_growth_mb_per_100_revisions"] = results["memory"]["growth"]
    return found


def _median(summary: Summary | None) -> str:
    return f"{summary.median:.1f} s" if summary else "-"


# -- helpers ----------------------------------------------------------------------------


def pick(summaries: dict[str, Summary], keys: list[str]) -> dict[str, Summary]:
    return {k: summaries[k] for k in keys if k in summaries}


def unit(key: str) -> str:
    if key.endswith("_ms"):
        return "ms"
    if key.endswith("_mb"):
        return "MB"
    return "s"


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on, for the fast peer's server (host network)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peer_id(image: str) -> str:
    """``pg15`` for ``peek-matrix/postgis:15-3.3``."""
    return "pg" + image.rpartition(":")[2].split("-")[0]


def print_verdicts(verdicts: dict[str, set[str]]) -> None:
    """What each side concluded: a timing only compares runs that did the same work."""
    print("  verdicts:")
    for name, found in verdicts.items():
        for verdict in sorted(found):
            print(f"    {name}: {verdict}")


def to_json(value: Any) -> Any:
    if isinstance(value, Summary):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json(v) for v in (sorted(value) if isinstance(value, set) else value)]
    if isinstance(value, Path):
        return str(value)
    return value


if __name__ == "__main__":
    raise SystemExit(main())
