"""squawk's static view of the SQL each revision sent, beside the measured one.

``migration_cost`` keeps the statements each revision sent to the database
(``sql/<target>/cost/NNNN_<revision>.sql``); squawk, a linter for PostgreSQL
migrations, reads them without running anything and names the risky ones
(a column type change that rewrites a table, an index built without
CONCURRENTLY). Its rule hits land on the revision's evidence, so a report
shows what squawk suspects next to what the harness measured. squawk is an
extra (``pip install 'peek-plugin-matrix[lint]'``); without it the evidence
says so.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from matrix import processes
from matrix.define.targets import Target
from matrix.engines import engine_named
from matrix.errors import HarnessError
from matrix.results import TargetResult

CHECK = "migration_cost"
TIMEOUT_S = 120


def squawk() -> str | None:
    """The squawk command: on the PATH, or beside this interpreter (its extra's script)."""
    beside = Path(sys.executable).with_name("squawk")
    return shutil.which("squawk") or (str(beside) if beside.is_file() else None)


def attach(result: TargetResult, sql_dir: Path, target: Target) -> None:
    """Put squawk's rule hits on each revision's ``migration_cost`` evidence."""
    check = next((c for c in result.checks if c.name == CHECK), None)
    folder = sql_dir / "cost"
    if check is None or not check.evidence or not folder.is_dir():
        return
    if not engine_named(target.engine).lints_with_squawk:
        return
    command = squawk()
    if command is None:
        check.warnings.append(
            "squawk is not installed, so the SQL was not linted "
            "(pip install 'peek-plugin-matrix[lint]')"
        )
        return
    by_revision = {path.stem.split("_", 1)[1]: path for path in sorted(folder.glob("*.sql"))}
    for evidence in check.evidence:
        path = by_revision.get(evidence.revision)
        if path is not None and path.read_text(encoding="utf-8").strip():
            evidence.lint = hits(command, path, target.version)


def hits(command: str, path: Path, pg_version: str) -> list[str]:
    """``rule: message`` for each of squawk's findings in one file."""
    try:
        done = processes.run(
            [command, "--reporter", "json", "--pg-version", f"{pg_version}.0", path],
            "squawk",
            timeout=TIMEOUT_S,
            check=False,
        )
    except HarnessError as error:
        return [f"squawk failed: {error.cause}"]
    try:
        found = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        return [f"squawk failed: {processes.tail(done.stdout + done.stderr, 3)}"]
    return sorted({f"{hit['rule_name']}: {hit['message']}" for hit in found})
