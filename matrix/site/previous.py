"""Installing a release by its own scripts: plain ``alembic upgrade head``, as Peek ran it.

A site at the previous release got its schema from that release's logic
service: ``DbConnection.migrate()`` writes an Alembic ini (script location,
``sourceless``, the URL, ``spatial_ref_sys`` excluded) and runs ``alembic
upgrade head`` with the plugin's own env.py. The harness does the same with
the interpreter of that release's environment and nothing of its own on the
path, so a release whose environment cannot host the check process (Peek 3.4's
``SQLAlchemy<1.4``) installs all the same.

A failure names the revision whose file is on the traceback.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from matrix import processes
from matrix.check.checks.previous_release import revision_files
from matrix.errors import HarnessError

# peek_plugin_base/storage/DbConnection.py (5.1.6), _writeAlembicIni.
ALEMBIC_INI = """[alembic]
script_location = {alembic_dir}

sourceless = true
sqlalchemy.url = {url}

[alembic:exclude]
tables = spatial_ref_sys

[logging]
default_level = INFO
"""


@dataclass(frozen=True)
class Installed:
    """How one ``alembic upgrade head`` went."""

    seconds: float
    error: str | None = None
    revision: str | None = None  # the revision on the failure's traceback


def alembic_upgrade(
    python: Path,
    import_roots: list[Path],
    alembic_dir: Path,
    url: URL,
    ini: Path,
    timeout: float,
) -> Installed:
    """``alembic -c INI upgrade head`` in ``python``'s environment; never raises for the plugin."""
    rendered = url.render_as_string(hide_password=False).replace("%", "%%")
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(ALEMBIC_INI.format(alembic_dir=alembic_dir, url=rendered), encoding="utf-8")
    os.chmod(ini, 0o600)  # it holds the password
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if import_roots:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in import_roots)
    started = time.perf_counter()
    try:
        done = processes.run(
            [python, "-m", "alembic", "-c", ini, "upgrade", "head"],
            "alembic upgrade head",
            timeout=timeout,
            env=env,
            cwd=ini.parent,
            check=False,
        )
    except HarnessError as error:
        return Installed(round(time.perf_counter() - started, 3), str(error))
    finally:
        ini.unlink(missing_ok=True)
    seconds = round(time.perf_counter() - started, 3)
    if done.returncode == 0:
        return Installed(seconds)
    output = done.stdout + done.stderr
    return Installed(seconds, _last_error(output), failing_revision(output, alembic_dir))


def failing_revision(output: str, alembic_dir: Path) -> str | None:
    """The revision whose file is deepest on the traceback, if any."""
    by_file = {r.path.resolve(): r.revision for r in revision_files(alembic_dir).values()}
    found = None
    for path in re.findall(r'File "([^"]+)"', output):
        revision = by_file.get(Path(path).resolve())
        found = revision or found
    return found


def _last_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
