"""Published Peek plugins, straight from the package index, give the verdicts established by hand.

For each plugin of ``tests/corpus/verdicts.toml`` the harness fetches the
pinned release, builds its own environment (cached), and runs every check on
PostgreSQL 15 + PostGIS. Each check's status, and for a failing check the
revisions it blames, must equal the table, which was established without
the harness (plain alembic and psql, the evidence beside each row); so must
the revisions of its notes, where a row lists them (``noted``). A verdict
that changes fails CI; a new one needs new evidence.

Marked ``corpus`` (and ``live``): it needs the package index and takes a few
minutes cold; ``-m "not corpus"`` leaves it out locally.
"""

from __future__ import annotations

import json
import tomllib

import pytest
from helpers import ROOT, cli

pytestmark = [pytest.mark.live, pytest.mark.corpus]
TABLE = tomllib.loads((ROOT / "tests" / "corpus" / "verdicts.toml").read_text())
PLUGINS = {plugin["requirement"]: plugin for plugin in TABLE["plugin"]}


def expected(plugin: dict) -> dict[str, dict]:
    return {**TABLE["defaults"], **plugin.get("checks", {})}


@pytest.mark.parametrize("requirement", PLUGINS, ids=[r.split("==")[0] for r in PLUGINS])
def test_a_published_plugin_gets_the_verdicts_established_by_hand(
    requirement, pg_server_url, tmp_path
):
    plugin = PLUGINS[requirement]
    environment = TABLE["environment"]
    extras = [
        arg for req in [*environment["with"], *plugin.get("with", [])] for arg in ("--with", req)
    ]
    extras += [arg for req in environment["with_no_deps"] for arg in ("--with-no-deps", req)]
    reports = tmp_path / "reports"
    done = cli(
        "run",
        "--plugin",
        requirement,
        *extras,
        "--targets",
        "pg15-postgis33",
        "--provider",
        "external",
        "--reports",
        str(reports),
        env={"MATRIX_POSTGRESQL_URL": pg_server_url.render_as_string(hide_password=False)},
        timeout=1200,
    )
    assert (reports / "compat.json").is_file(), done.stdout + done.stderr
    report = json.loads((reports / "compat.json").read_text())
    (target,) = report["targets"]
    assert report["plugin"]["version"] == requirement.split("==")[1]
    found = {check["name"]: check for check in target["checks"]}
    wrong = []
    for name, row in expected(plugin).items():
        check = found[name]
        blamed = sorted(
            {f["revision"] for f in check["findings"] if f["blocking"] and not f["waived"]}
        )
        want = sorted(row.get("blamed", []))
        if check["status"] != row["status"] or (row["status"] == "failed" and blamed != want):
            wrong.append(
                f"{name}: harness says {check['status']} blaming {blamed} ({check['reason']}); "
                f"established {row['status']} blaming {want}: {row['evidence']}"
            )
        noted = sorted({f["revision"] for f in check["findings"] if not f["blocking"]})
        if "noted" in row and noted != sorted(row["noted"]):
            wrong.append(
                f"{name}: harness notes {noted}; established {sorted(row['noted'])}: "
                f"{row['evidence']}"
            )
    assert not wrong, "\n".join(wrong)
    assert report["environment"]["Twisted"].startswith("25.")  # the environment is on record
