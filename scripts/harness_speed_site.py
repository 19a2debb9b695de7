"""Benchmark of the site rehearsal: the example site on PostgreSQL 13, 15 and 17 at scale.

    python scripts/harness_speed_site.py [--scale 10000] [--provider docker] [--one-by-one]
                                 [--check-verdicts] [--out DIR]

1. a warm-up run (one target, no scale, untimed) builds or reuses every
   environment, so the timed run measures the rehearsal with cached
   environments;
2. the timed run: ``python -m matrix site --site site.toml`` on the three
   PostgreSQL targets at once, ``--scale N``; prints the wall time, each
   phase per target and each target's maintenance window;
3. with ``--one-by-one``: every plugin of the site through ``python -m matrix
   run`` (its previous release with ``--previous``, ``--scale N``), one after
   another on the same three targets, and the ratio of the two wall times;
4. with ``--check-verdicts``: the timed run's pg15 verdicts against
   ``tests/corpus/site_verdicts.toml``.

Not a test: figures go to stdout and ``DIR/bench-site.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = "pg13-postgis31,pg15-postgis33,pg17-postgis35"


def matrix(*args: str, timeout: float = 7200) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "matrix", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def site_run(out: Path, scale: int, provider: str) -> dict:
    reports = out / "site"
    wall, code, output = matrix(
        "site", "--site", "site.toml", "--targets", TARGETS, "--provider", provider,
        "-j", "3", "--scale", str(scale), "--reports", str(reports),
    )  # fmt: skip
    (out / "site.log").write_text(output)
    report = json.loads((reports / "compat.json").read_text())
    print(f"site rehearsal, 3 targets at --scale {scale}: {wall:.1f} s (exit {code})")
    print(f"  prepare: {report['phases']}")
    for target in report["targets"]:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in target["phases"].items())
        window = target.get("window_s")
        print(
            f"  {target['id']}: {target['status']}, {target['duration_s']:.1f} s ({phases}); "
            f"window {window if window is None else f'{window:.2f}'} s"
        )
        for row in target["plugins"]:
            print(f"    {row['name']}: {row['status']}, upgrade {row['window_s']} s")
    return {"wall_s": round(wall, 1), "exit": code, "report": str(reports / "compat.json")}


def one_by_one(out: Path, scale: int, provider: str, only: list[str] | None = None) -> float:
    """Each plugin of the site alone, with its previous release and the same scale."""
    site = tomllib.loads((ROOT / "site.toml").read_text())
    total = 0.0
    for plugin in site["plugin"]:
        if only and plugin["requirement"].split("==")[0] not in only:
            continue
        version = plugin["requirement"].split("==")[1]
        previous = plugin["previous"].split("==")[1]
        # `run` gives the previous release the same --with as this one, so an extra
        # pinned to {version} is left unpinned (each release's own pins choose it);
        # the no-deps platform package is this release's in both.
        extras = []
        for req in [*site.get("with", []), *plugin.get("with", [])]:
            extras += ["--with", req.replace("=={version}", "")]
        for req in [*site.get("with_no_deps", []), *plugin.get("with_no_deps", [])]:
            extras += ["--with-no-deps", req.replace("{version}", version)]
        name = plugin["requirement"].split("==")[0]
        wall, code, output = matrix(
            "run", "--plugin", plugin["requirement"], *extras, "--previous", plugin["previous"],
            "--targets", TARGETS, "--provider", provider, "-j", "3", "--scale", str(scale),
            "--reports", str(out / "one-by-one" / name),
        )  # fmt: skip
        (out / f"run-{name}.log").write_text(output)
        total += wall
        print(f"  python -m matrix run {name} (from {previous}): {wall:.1f} s (exit {code})")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=10000)
    parser.add_argument("--provider", default="docker")
    parser.add_argument("--one-by-one", action="store_true")
    parser.add_argument("--check-verdicts", action="store_true")
    parser.add_argument("--no-warm-up", action="store_true")
    parser.add_argument("--no-site", action="store_true", help="only the one-by-one runs")
    parser.add_argument("--only", action="append", help="one-by-one: only these plugins")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-site")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_warm_up:
        wall, code, _ = matrix(
            "site", "--site", "site.toml", "--targets", "pg15-postgis33", "--provider",
            args.provider, "--reports", str(args.out / "warm-up"),
        )  # fmt: skip
        print(f"warm-up (environments built or reused, untimed): {wall:.1f} s (exit {code})")
    figures = {} if args.no_site else site_run(args.out, args.scale, args.provider)
    if args.one_by_one:
        alone = one_by_one(args.out, args.scale, args.provider, args.only)
        figures["one_by_one_s"] = round(alone, 1)
        print(f"one by one: {alone:.1f} s")
        if "wall_s" in figures:
            figures["ratio"] = round(figures["wall_s"] / alone, 3)
            print(f"site / one by one = {figures['ratio']:.3f}")
    if args.check_verdicts:
        sys.path.insert(0, str(ROOT / "tests"))
        from test_site_corpus import wrong_verdicts

        wrong = wrong_verdicts(json.loads(Path(figures["report"]).read_text()))
        figures["wrong_verdicts"] = wrong
        print("verdicts: " + ("as established by hand" if not wrong else "\n  ".join(wrong)))
    (args.out / "bench-site.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
