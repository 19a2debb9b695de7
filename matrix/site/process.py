"""The site's check process: ``python -m matrix.site.process``, in the site's environment.

One process holds every plugin of the site, as the logic service does, and
runs one target's rehearsal from the previous release (already installed by
the runner) to the checks. It reads a :class:`~matrix.protocol.SiteSpec`
and reports :mod:`matrix.protocol` events, as the check process does; the
site's plugins are probed by the check process itself (``--probe`` with
every plugin), before any server starts.

Only the standard library is imported at module level.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from matrix.check.process import exit_with_parent, first_cause, roots_of
from matrix.protocol import (
    SPEC_ENV,
    URL_ENV,
    Fatal,
    Finished,
    PhaseDone,
    PluginWindow,
    SiteDone,
    SiteSpec,
    Started,
    Window,
    decode_spec,
    emit,
)


def rehearse(spec: SiteSpec, url: str) -> int:
    """Baseline, fill, upgrade, fresh site, then the site checks (the rollback last)."""
    from sqlalchemy.engine import make_url

    from matrix import masking
    from matrix.check.cell import Cell
    from matrix.site.checks import run_site_checks
    from matrix.site.rehearsal import Member, Rehearsal

    db_url = make_url(url)
    masking.register_url(db_url)
    members, roots = [], []
    try:
        for item in spec.members:
            roots += roots_of(item.plugin)
            cell = Cell.on(item.plugin, spec.on, db_url)
            cell.schema = item.schema
            members.append(Member(cell, item.head, item.previous, item.fresh))
        rehearsal = Rehearsal(members, db_url, spec.scale, spec.on.sql_dir)
    except Exception as error:  # noqa: BLE001 - a plugin that cannot even be read
        emit(Fatal(first_cause(error, roots or [Path.cwd()])))
        return 0
    try:
        steps = (
            ("baseline", rehearsal.baseline),
            ("fill", rehearsal.fill),
            ("upgrade", rehearsal.upgrade),
            ("fresh", lambda: rehearsal.fresh_site(db_url.set(database=spec.fresh_database))),
        )
        for name, step in steps:
            emit(Started(name))
            started = time.perf_counter()
            step()
            emit(PhaseDone(name, round(time.perf_counter() - started, 3)))
        emit(
            Window(
                rehearsal.window_s,
                {
                    m.name: PluginWindow(m.outcome.seconds if m.outcome else None, m.timeline)
                    for m in members
                },
            )
        )
        run_site_checks(
            rehearsal,
            on_start=lambda name: emit(Started(name)),
            on_done=lambda name, results: emit(SiteDone(name, results)),
        )
        emit(Finished())
    except Exception as error:  # noqa: BLE001 - reported as the target's first cause
        emit(Fatal(first_cause(error, roots)))
    finally:
        rehearsal.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    exit_with_parent()
    return rehearse(decode_spec(SiteSpec, os.environ[SPEC_ENV]), os.environ[URL_ENV])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
