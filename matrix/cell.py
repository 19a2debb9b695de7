"""One target's checks, in a process of their own.

Alembic's ``context`` and ``op`` are module-level proxies, and a plugin's
modules are imported once per interpreter, so two targets cannot run their
migrations in one process at the same time. Each cell therefore runs in a
child process: the parent starts the database, the child imports the plugin
from where its wheel was installed and runs the checks, reporting each one
as a line on stdout. A child that crashes loses only its own target.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from matrix import masking
from matrix.errors import HarnessError
from matrix.plugin import Plugin

MARKER = "@@matrix "
SPEC_ENV = "MATRIX_CELL_SPEC"
URL_ENV = "MATRIX_CELL_URL"


def cell_environment(
    plugin: Plugin,
    url: str,
    sql_dir: Path,
    live: bool,
    benchmark: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment a child needs: the plugin first on its path, the URL hidden."""
    spec = {
        "plugin": plugin.to_dict(),
        "sql_dir": str(sql_dir),
        "live": live,
        "benchmark": benchmark,
    }
    path = os.pathsep.join(
        p for p in (str(plugin.import_root), os.environ.get("PYTHONPATH", "")) if p
    )
    return {**os.environ, SPEC_ENV: json.dumps(spec), URL_ENV: url, "PYTHONPATH": path}


def parse_event(line: str) -> dict[str, Any] | None:
    """An event the child reported, or None for any other output."""
    if not line.startswith(MARKER):
        return None
    return json.loads(line[len(MARKER) :])


def main() -> int:
    """Entry point of ``python -m matrix cell`` (for the runner, not for users)."""
    from matrix.checks import open_walk, run_checks  # imports alembic and sqlglot

    spec = json.loads(os.environ[SPEC_ENV])
    url = make_url(os.environ[URL_ENV])
    masking.register_url(url)
    plugin = Plugin.from_dict(spec["plugin"])
    try:
        walk = open_walk(plugin, url, Path(spec["sql_dir"]), spec["live"])
    except HarnessError as error:
        _emit({"fatal": masking.mask(str(error))})
        return 2
    imported_from = Path(importlib.import_module(plugin.package).__file__).resolve()
    if not imported_from.is_relative_to(plugin.import_root.resolve()):
        _emit(
            {
                "fatal": f"{plugin.package} was imported from {imported_from}, not from "
                f"{plugin.import_root}: another copy shadows the one under test. "
                "Uninstall it from the harness's environment."
            }
        )
        return 2
    _emit({"schema": walk.schema, "revisions": [r.revision for r in walk.revisions]})
    try:
        results = run_checks(
            walk,
            on_start=lambda name: _emit({"start": name}),
            on_done=lambda result: _emit({"done": asdict(result)}),
        )
        if spec["benchmark"] is not None and walk.live:
            _benchmark(walk, results, spec["benchmark"])
    finally:
        walk.close()
    return 0


def _benchmark(walk, results, settings: dict[str, Any]) -> None:
    """Measure session throughput once the checks left the database at head."""
    from matrix.bench import run_benchmark

    if any(result.status != "passed" for result in results):
        _emit({"benchmark": {"skipped": "the checks did not all pass"}})
        return
    _emit({"start": "benchmark"})
    _emit({"benchmark": run_benchmark(walk.plugin, walk.url, walk.schema, settings)})


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(event) + "\n")
    sys.stdout.flush()
