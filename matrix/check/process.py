"""The check process: ``python -m matrix.check.process``, one per target, in the plugin's
environment.

Alembic's ``context`` and ``op`` are module-level proxies, and a plugin's
modules are imported once per interpreter, so two targets cannot run their
migrations in one process. Each target's checks therefore run in a child
process of their own, in the plugin's own environment: forked from the
probe, which stays once it has loaded the plugin (:mod:`matrix.forks`), or
started with that environment's interpreter; a crash there loses only that
target. It reads its spec and
reports its events as :mod:`matrix.protocol` defines them, one per line on
stdout; anything else it prints (Peek's loggers, warnings) is kept as
context.

``--probe`` loads the plugin once before any server starts: its modules,
its migration history and its env.py (offline, connections refused). What
stops it is reported as the *first cause*: a module missing from the
environment (the user's to add), or the plugin's own code failing to load,
with the file and line.

Only the standard library is imported at module level: the site's process
imports :func:`first_cause` and :func:`probe` from here, and the heavy
imports belong to the functions that need them.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from matrix.protocol import (
    SPEC_ENV,
    URL_ENV,
    Cause,
    CellSpec,
    Done,
    Fatal,
    Plugin,
    Probed,
    ProbeSpec,
    Ready,
    Seeded,
    SeedSpec,
    Serving,
    Started,
    WaiversUsed,
    decode_spec,
    emit,
)


def first_cause(error: BaseException, roots: list[Path]) -> Cause:
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
    return Cause(
        kind=kind,
        error=f"{type(error).__name__}: {error}",
        where=where,
        raised_at=raised_at,
        module=getattr(error, "name", None),
        distribution=_distribution_of(getattr(error, "name", None) or "", str(error)),
    )


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


def roots_of(plugin: Plugin) -> list[Path]:
    """The plugin's own folders: a frame inside them is the plugin's, not the harness's."""
    return [plugin.import_root / plugin.package, plugin.alembic_dir]


def probe(spec: ProbeSpec, serve_on: int | None = None) -> int:
    """Load each plugin as the checks will, and say what it is or why it cannot load.

    With ``serve_on`` (a socket's descriptor), a probe that loaded every plugin
    stays to fork the check processes (:mod:`matrix.forks`): they start with
    all of it imported. It says so (:class:`Serving`) and ends its own output.
    """
    probed = [probe_one(plugin, spec.engines) for plugin in spec.plugins]
    for event in probed:
        emit(event)
    if serve_on is None or not all(isinstance(event, Probed) for event in probed):
        return 0
    import socket

    from matrix import forks

    emit(Serving())
    forks.stop_output()
    forks.serve(socket.socket(fileno=serve_on))
    return 0


def probe_one(plugin: Plugin, engines: tuple[str, ...]) -> Probed | Fatal:
    import importlib
    import importlib.metadata

    from matrix.check.cell import metadata_schema
    from matrix.check.migrator import Migrator, OfflineConnect
    from matrix.engines import engine_named

    roots = roots_of(plugin)
    try:
        migrator = Migrator(plugin)
        heads = sorted(migrator.script.get_heads())
        # Each engine's own load: env.py may fail under one dialect only (Peek 5.1.6's
        # passes client_encoding, which pymssql refuses), and that is that engine's verdict.
        offline: dict[str, bool] = {}
        failures: dict[str, Cause] = {}
        for name in engines:
            try:
                migrator.render(engine_named(name).offline_url, "base:base")
                offline[name] = True
            except OfflineConnect:
                offline[name] = False
            except Exception as error:  # noqa: BLE001 - the plugin's cause on this engine
                failures[name] = first_cause(error, roots)
        if len(failures) == len(engines):
            return Fatal(failures[engines[0]], package=plugin.package)
        imported = Path(importlib.import_module(plugin.package).__file__).resolve()
    except Exception as error:  # noqa: BLE001 - whatever stops the plugin is its first cause
        return Fatal(first_cause(error, roots), package=plugin.package)
    if not imported.is_relative_to(plugin.import_root.resolve()):
        return Fatal(
            Cause(
                kind="shadowed",
                error=f"{plugin.package} was imported from {imported}, not from "
                f"{plugin.import_root}: another copy shadows the one under test",
                where=str(imported),
            ),
            package=plugin.package,
        )
    return Probed(
        package=plugin.package,
        schema=migrator.env.schema or metadata_schema(plugin.package),
        revisions=[s.revision for s in migrator.revisions],
        heads=heads,
        offline=offline,
        failures=failures,
        versions={d.metadata["Name"]: d.version for d in importlib.metadata.distributions()},
    )


def run(spec: CellSpec, url: str | None, after: Callable | None = None) -> int:
    """Run the requested checks on one target and report each as it ends.

    ``after(cell, spec)`` runs once the checks have reported (the
    benchmark, in :mod:`matrix.bench.process`), on the database they left at
    head.
    """
    from sqlalchemy.engine import make_url

    from matrix import masking
    from matrix.check.cell import Cell
    from matrix.check.checks import run_checks

    db_url = make_url(url) if url else None
    if db_url is not None:
        masking.register_url(db_url)
    try:
        cell = Cell.on(spec.plugin, spec.on, db_url, scale=spec.scale, previous=spec.previous)
    except Exception as error:  # noqa: BLE001 - the plugin cannot even be read
        emit(Fatal(first_cause(error, roots_of(spec.plugin))))
        return 0
    try:
        cell.prepare_siblings(spec.checks)
        cell.discover()
    except Exception as error:  # noqa: BLE001 - env.py failing before any check
        emit(Fatal(first_cause(error, roots_of(spec.plugin))))
        cell.close()
        return 0
    emit(Ready(cell.schema, cell.revisions, cell.head))
    try:
        run_checks(
            cell,
            spec.checks,
            on_start=lambda name: emit(Started(name)),
            on_done=lambda result: emit(Done(result)),
        )
        emit(WaiversUsed(sorted(cell.waivers.used)))
        if after is not None and cell.live:
            after(cell, spec)
    finally:
        cell.close()
    return 0


def seed(spec: SeedSpec, url: str) -> int:
    """Bring a database to the plugin's head with rows written at every revision.

    Run with the *previous* release's plugin in its own environment; the
    ledger of the rows written goes to ``spec.ledger`` for the check process
    of this release (``upgrade_from_release``).
    """
    from sqlalchemy.engine import make_url

    from matrix import masking
    from matrix.check import synthetic
    from matrix.check.cell import Cell
    from matrix.check.checks.data import upgrade_with_rows

    db_url = make_url(url)
    masking.register_url(db_url)
    try:
        cell = Cell.on(spec.plugin, spec.on, db_url)
        cell.discover()
    except Exception as error:  # noqa: BLE001 - reported as the seed's failure
        emit(Seeded(error=masking.mask(f"{type(error).__name__}: {error}")))
        return 0
    ledger = synthetic.Ledger()
    try:
        walk = upgrade_with_rows(cell, db_url, ledger)
    finally:
        cell.close()
    if walk.failure is not None:
        emit(Seeded(error=masking.mask(str(walk.failure))))
        return 0
    # Only what a site at this release holds is on trial for the upgrade: rows
    # the release's own history lost or rewrote are that release's findings.
    ledger.forget({id(row) for loss in walk.losses if loss.kind != "column" for row in loss.rows})
    for loss in walk.losses:
        if loss.kind == "column":
            ledger.forget_column(loss.table, loss.column)
    spec.ledger.write_text(json.dumps(ledger.to_dict()), encoding="utf-8")
    emit(Seeded(head=cell.head, rows=len(ledger.rows)))
    return 0


def exit_with_parent() -> None:
    """End when the parent is gone (the harness, killed with SIGKILL; or the probe a check
    process was forked from, which ends with the harness in turn).

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


def main(argv: list[str] | None = None, after: Callable | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    exit_with_parent()
    text = os.environ[SPEC_ENV]
    if "--probe" in argv:
        serve_on = int(argv[argv.index("--serve") + 1]) if "--serve" in argv else None
        return probe(decode_spec(ProbeSpec, text), serve_on)
    if "--seed" in argv:
        return seed(decode_spec(SeedSpec, text), os.environ[URL_ENV])
    return run(decode_spec(CellSpec, text), os.environ.get(URL_ENV) or None, after)


if __name__ == "__main__":
    raise SystemExit(main())
