"""The check process: ``python -m matrix.check.process``, one per target, in the plugin's
environment.

Alembic's ``context`` and ``op`` are module-level proxies, and a plugin's
modules are imported once per interpreter, so two targets cannot run their
migrations in one process. Each target's checks therefore run in a child
process of their own, started with the interpreter of the plugin's own
environment; a crash there loses only that target. The child reports on
stdout, one event per line after :data:`MARKER`; anything else it prints
(Peek's loggers, warnings) is kept as context.

``--probe`` loads the plugin once before any server starts: its modules,
its migration history and its env.py (offline, connections refused). What
stops it is reported as the *first cause*: a module missing from the
environment (the user's to add), or the plugin's own code failing to load,
with the file and line.

Only the standard library is imported at module level: the runner imports
this module for the protocol, and the heavy imports belong to the child.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

MARKER = "@@matrix "
SPEC_ENV = "MATRIX_CELL_SPEC"
URL_ENV = "MATRIX_CELL_URL"


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def parse_event(line: str) -> dict[str, Any] | None:
    """An event the child reported, or None for any other output."""
    if not line.startswith(MARKER):
        return None
    try:
        return json.loads(line[len(MARKER) :])
    except json.JSONDecodeError:
        return None


def first_cause(error: BaseException, roots: list[Path]) -> dict[str, Any]:
    """What stopped the plugin from loading: kind, message, and where in its files.

    ``where`` is the innermost frame inside the plugin (its package or its
    Alembic folder); ``raised_at`` the frame that raised, when it is outside
    the plugin (``peek_platform`` missing from inside peek-plugin-base still
    names the plugin line that reached it).
    """
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "<frozen" not in f.filename]
    inside = [f for f in frames if any(_under(f.filename, r) for r in roots)]
    base = roots[0].parent
    where = _short(inside[-1].filename, inside[-1].lineno, base) if inside else None
    if isinstance(error, SyntaxError) and error.filename:
        where = _short(error.filename, error.lineno, base)
    raised_at = None
    if frames and frames[-1] not in inside:
        raised_at = _short(frames[-1].filename, frames[-1].lineno, base)
    from matrix.errors import PluginError

    if isinstance(error, ModuleNotFoundError):
        kind = "missing_module"
    elif isinstance(error, ImportError):
        kind = "import"
    elif where or isinstance(error, PluginError):
        kind = "plugin"  # raised in the plugin's own files, or its history is unreadable
    else:
        kind = "harness"  # nothing of the plugin on the stack: the harness's own fault
        where = raised_at
    provider = _distribution_of(getattr(error, "name", None) or "", str(error))
    return {
        "kind": kind,
        "distribution": provider,
        "error": f"{type(error).__name__}: {error}",
        "module": getattr(error, "name", None),
        "where": where,
        "raised_at": raised_at,
    }


def _short(filename: str, line: int | None, base: Path) -> str:
    """``package/module.py:line``, relative to the plugin's folder or its site-packages."""
    path = Path(filename)
    if _under(filename, base):
        path = path.resolve().relative_to(base.resolve())
    else:
        for parent in path.parents:
            if parent.name in ("site-packages", "dist-packages"):
                path = path.relative_to(parent)
                break
    return f"{path}:{line}"


def _distribution_of(module: str, message: str) -> str | None:
    """``Name version`` of the installed distribution behind a failing import, if any.

    For ``cannot import name 'x' from 'twisted.y'`` the module is the one named
    after ``from``: it is installed, but not the release the plugin needs.
    """
    import importlib.metadata
    import re

    match = re.search(r"from '([\w.]+)'", message)
    top = (match.group(1) if match else module).split(".")[0]
    names = importlib.metadata.packages_distributions().get(top) or []
    if not names:
        return None
    return f"{names[0]} {importlib.metadata.version(names[0])}"


def _under(filename: str, root: Path) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(root.resolve())
    except (OSError, ValueError):
        return False


def probe(spec: dict[str, Any]) -> int:
    """Load the plugin as the checks will, and say what it is or why it cannot load."""
    import importlib.metadata

    from matrix.check.cell import metadata_schema
    from matrix.check.migrator import Migrator, OfflineConnect
    from matrix.engines import engine_named
    from matrix.protocol import Plugin

    plugin = Plugin.from_dict(spec["plugin"])
    roots = [plugin.import_root / plugin.package, plugin.alembic_dir]
    engines: list[str] = spec["engines"]
    try:
        migrator = Migrator(plugin)
        heads = sorted(migrator.script.get_heads())
        # Each engine's own load: env.py may fail under one dialect only (Peek 5.1.6's
        # passes client_encoding, which pymssql refuses), and that is that engine's verdict.
        offline: dict[str, bool] = {}
        failures: dict[str, dict[str, Any]] = {}
        for name in engines:
            try:
                migrator.render(engine_named(name).offline_url, "base:base")
                offline[name] = True
            except OfflineConnect:
                offline[name] = False
            except Exception as error:  # noqa: BLE001 - the plugin's cause on this engine
                failures[name] = first_cause(error, roots)
        if len(failures) == len(engines):
            emit({"fatal": failures[engines[0]]})
            return 0
        import importlib

        imported = Path(importlib.import_module(plugin.package).__file__).resolve()
    except Exception as error:  # noqa: BLE001 - whatever stops the plugin is its first cause
        emit({"fatal": first_cause(error, roots), "package": plugin.package})
        return 0
    if not imported.is_relative_to(plugin.import_root.resolve()):
        emit(
            {
                "package": plugin.package,
                "fatal": {
                    "kind": "shadowed",
                    "error": f"{plugin.package} was imported from {imported}, not from "
                    f"{plugin.import_root}: another copy shadows the one under test",
                    "where": str(imported),
                },
            }
        )
        return 0
    versions = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()}
    emit(
        {
            "package": plugin.package,
            "probe": {
                "schema": migrator.env.schema or metadata_schema(plugin.package),
                "revisions": [s.revision for s in migrator.revisions],
                "heads": heads,
                "offline": offline,
                "failures": failures,
                "versions": versions,
            },
        }
    )
    return 0


def run(spec: dict[str, Any], url: str | None) -> int:
    """Run the requested checks on one target and report each as it ends."""
    from dataclasses import asdict

    from sqlalchemy.engine import make_url

    from matrix import masking
    from matrix.check.checks import run_checks
    from matrix.protocol import Plugin

    plugin = Plugin.from_dict(spec["plugin"])
    db_url = make_url(url) if url else None
    if db_url is not None:
        masking.register_url(db_url)
    roots = [plugin.import_root / plugin.package, plugin.alembic_dir]
    checks = tuple(spec["checks"])
    try:
        cell = _cell(spec, plugin, db_url)
    except Exception as error:  # noqa: BLE001 - the plugin cannot even be read
        emit({"fatal": first_cause(error, roots)})
        return 0
    try:
        cell.prepare_siblings(checks)
        cell.discover()
    except Exception as error:  # noqa: BLE001 - env.py failing before any check
        emit({"fatal": first_cause(error, roots)})
        cell.close()
        return 0
    emit({"ready": {"schema": cell.schema, "revisions": cell.revisions, "head": cell.head}})
    try:
        run_checks(
            cell,
            checks,
            on_start=lambda name: emit({"start": name}),
            on_done=lambda result: emit({"done": asdict(result)}),
        )
        emit({"waivers_used": sorted(cell.waivers.used)})
        if spec.get("benchmark") is not None and cell.live:
            _benchmark(cell, spec["benchmark"])
    finally:
        cell.close()
    return 0


def seed(spec: dict[str, Any], url: str) -> int:
    """Bring a database to the plugin's head with rows written at every revision.

    Run with the *previous* release's plugin in its own environment; the
    ledger of the rows written goes to ``spec["ledger"]`` for the check
    process of this release (``upgrade_from_release``).
    """
    from sqlalchemy.engine import make_url

    from matrix import masking
    from matrix.check import synthetic
    from matrix.check.checks.data import DataObserver, server_timezone
    from matrix.check.migrator import StepFailed
    from matrix.protocol import Plugin

    plugin = Plugin.from_dict(spec["plugin"])
    db_url = make_url(url)
    masking.register_url(db_url)
    try:
        cell = _cell(spec, plugin, db_url)
        cell.discover()
    except Exception as error:  # noqa: BLE001 - reported as the seed's failure
        emit({"seeded": {"error": masking.mask(f"{type(error).__name__}: {error}")}})
        return 0
    conn = cell.open(db_url)
    ledger = synthetic.Ledger()
    try:
        cell.migrator.upgrade(db_url, "heads", DataObserver(cell, conn, ledger))
        # Only what a site at this release holds is on trial for the upgrade: rows
        # the release's own history lost or rewrote are that release's findings.
        timezone = server_timezone(conn, cell.engine.name)
        gone = synthetic.verify(conn, cell.engine, cell.schema, ledger, timezone)
        ledger.forget({id(row) for loss in gone if loss.kind != "column" for row in loss.rows})
        for loss in gone:
            if loss.kind == "column":
                ledger.forget_column(loss.table, loss.column)
    except StepFailed as failure:
        emit({"seeded": {"error": masking.mask(str(failure))}})
        return 0
    finally:
        engine = conn.engine
        conn.close()
        engine.dispose()
        cell.close()
    Path(spec["ledger"]).write_text(json.dumps(ledger.to_dict()), encoding="utf-8")
    emit({"seeded": {"head": cell.head, "rows": len(ledger.rows)}})
    return 0


def _cell(spec: dict[str, Any], plugin, url):
    """The checks' view of one target, from the spec the runner wrote."""
    from matrix.check.cell import Cell
    from matrix.define.policy import Policy
    from matrix.engines import engine_named

    return Cell(
        plugin=plugin,
        engine=engine_named(spec["engine"]),
        target=spec["target"],
        url=url,
        sql_dir=Path(spec["sql_dir"]),
        policy=Policy.from_dict(spec.get("policy") or {}),
        statement_timeout_s=spec.get("statement_timeout_s", 0),
        lock_timeout_s=spec.get("lock_timeout_s", 0),
        options=spec.get("options") or {},
    )


def _benchmark(cell, settings: dict[str, Any]) -> None:
    """Measure session throughput on the database the checks left at head."""
    from matrix.bench.measure import run_benchmark

    emit({"start": "benchmark"})
    result = run_benchmark(cell.plugin, cell.url, cell.schema, settings)
    emit({"benchmark": result})


def exit_with_parent() -> None:
    """End when the harness that started this process is gone (killed with SIGKILL).

    The check process runs in a session of its own, so no signal reaches it
    when the harness dies; without this it would go on migrating a database
    nobody reads.
    """
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    exit_with_parent()
    spec = json.loads(os.environ[SPEC_ENV])
    if "--probe" in argv:
        return probe(spec)
    if "--seed" in argv:
        return seed(spec, os.environ[URL_ENV])
    return run(spec, os.environ.get(URL_ENV) or None)


if __name__ == "__main__":
    raise SystemExit(main())
