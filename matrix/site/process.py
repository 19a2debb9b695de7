"""The site's check process: ``python -m matrix.site.process``, in the site's environment.

One process holds every plugin of the site, as the logic service does, and
runs one target's rehearsal from the previous release (already installed by
the runner) to the checks. It talks to the runner as :mod:`matrix.check.process`
does: one event per line after the marker.

``--probe`` loads every plugin once (:func:`matrix.check.process.probe` each), before
any server starts.

Only the standard library is imported at module level.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matrix.check.process import SPEC_ENV, URL_ENV, emit, exit_with_parent, first_cause, probe


def probe_all(spec: dict[str, Any]) -> int:
    for plugin in spec["plugins"]:
        probe({"plugin": plugin, "engines": [spec["engine"]]})
    return 0


def rehearse(spec: dict[str, Any], url: str) -> int:
    """Baseline, fill, upgrade, fresh site, then the site checks (the rollback last)."""
    from sqlalchemy.engine import make_url

    from matrix import masking
    from matrix.check.cell import Cell
    from matrix.define.policy import Policy
    from matrix.engines import engine_named
    from matrix.protocol import Plugin
    from matrix.site.checks import run_site_checks
    from matrix.site.rehearsal import Member, Rehearsal

    db_url = make_url(url)
    masking.register_url(db_url)
    engine = engine_named(spec["engine"])
    policy = Policy.from_dict(spec.get("policy") or {})
    members, roots = [], []
    try:
        for item in spec["members"]:
            plugin = Plugin.from_dict(item["plugin"])
            roots += [plugin.import_root / plugin.package, plugin.alembic_dir]
            cell = Cell(
                plugin=plugin,
                engine=engine,
                target=spec["target"],
                url=db_url,
                sql_dir=Path(spec["sql_dir"]),
                policy=policy,
                statement_timeout_s=spec.get("statement_timeout_s", 0),
                lock_timeout_s=spec.get("lock_timeout_s", 0),
            )
            cell.schema = item["schema"]
            members.append(Member(cell, item["head"], item.get("previous"), item.get("fresh")))
        rehearsal = Rehearsal(members, db_url, int(spec.get("scale") or 0), Path(spec["sql_dir"]))
    except Exception as error:  # noqa: BLE001 - a plugin that cannot even be read
        emit({"fatal": first_cause(error, roots or [Path.cwd()])})
        return 0
    try:
        steps = (
            ("baseline", rehearsal.baseline),
            ("fill", rehearsal.fill),
            ("upgrade", rehearsal.upgrade),
            ("fresh", lambda: rehearsal.fresh_site(db_url.set(database=spec["fresh_database"]))),
        )
        for name, step in steps:
            emit({"start_phase": name})
            started = time.perf_counter()
            step()
            emit({"phase": {"name": name, "seconds": round(time.perf_counter() - started, 3)}})
        emit(
            {
                "window": {
                    "total": rehearsal.window_s,
                    "plugins": {
                        m.name: {
                            "seconds": m.outcome.seconds if m.outcome else None,
                            "timeline": [asdict(e) for e in m.timeline],
                        }
                        for m in members
                    },
                }
            }
        )
        run_site_checks(
            rehearsal,
            on_start=lambda name: emit({"start": name}),
            on_done=lambda name, results: emit(
                {"done": {"check": name, "plugins": {p: asdict(r) for p, r in results.items()}}}
            ),
        )
        emit({"finished": True})
    except Exception as error:  # noqa: BLE001 - reported as the target's first cause
        emit({"fatal": first_cause(error, roots)})
    finally:
        rehearsal.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    exit_with_parent()
    spec = json.loads(os.environ[SPEC_ENV])
    if "--probe" in argv:
        return probe_all(spec)
    return rehearse(spec, os.environ[URL_ENV])


if __name__ == "__main__":
    raise SystemExit(main())
