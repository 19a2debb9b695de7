"""The example site's published plugins get the site verdicts established by hand.

``tests/corpus/site_verdicts.toml`` holds, for every plugin of ``site.toml``,
each site check's verdict on PostgreSQL 15 + PostGIS 3.3, established without
the harness (plain ``alembic`` in hand-built environments of the two
releases, ``psql`` and ``pg_dump``; the evidence beside each row). CI runs a
part of the site (:data:`IN_CI`: three plugins, one whose rollback fails and
two that pass) from ``site.toml`` itself, to keep the cold run to a few
minutes; ``scripts/harness_speed_site.py --check-verdicts`` holds the whole site to
the table.

Marked ``corpus`` (and ``live``): it needs the package index.
"""

from __future__ import annotations

import tomllib

import pytest
from site_factory import ROOT, run_site

pytestmark = [pytest.mark.live, pytest.mark.corpus]
TABLE = tomllib.loads((ROOT / "tests" / "corpus" / "site_verdicts.toml").read_text())
IN_CI = ("peek-core-user==5.1.6", "peek-core-docdb==5.1.6", "peek-plugin-graphdb==5.1.6")


def part_of_the_site(path, keep: tuple[str, ...]) -> str:
    """``site.toml`` with only the ``[[plugin]]`` tables of ``keep``, in its own order."""
    head, *tables = (ROOT / "site.toml").read_text().split("[[plugin]]")
    kept = [t for t in tables if any(f'requirement = "{r}"' in t for r in keep)]
    assert len(kept) == len(keep), "a plugin of IN_CI is not in site.toml"
    path.write_text(head + "".join(f"[[plugin]]{t}" for t in kept))
    return path


def wrong_verdicts(report: dict, target: str = "pg15-postgis33") -> list[str]:
    """Every site check whose status or blame differs from the table."""
    (result,) = [t for t in report["targets"] if t["id"] == target]
    rows = {row["name"]: row for row in result["plugins"]}
    wrong = []
    for plugin, row in rows.items():
        expected = {**TABLE["defaults"], **TABLE.get("plugin", {}).get(plugin, {})}
        for check in row["checks"]:
            want = expected[check["name"]]
            blamed = sorted(
                {f["revision"] for f in check["findings"] if f["blocking"] and not f["waived"]}
            )
            if check["status"] != want["status"] or sorted(want.get("blamed", [])) != blamed:
                wrong.append(
                    f"{plugin} {check['name']}: harness says {check['status']} blaming {blamed} "
                    f"({check['reason']}); established {want['status']} blaming "
                    f"{want.get('blamed', [])}: {want['evidence']}"
                )
    return wrong


def test_published_plugins_get_the_site_verdicts_established_by_hand(pg_server_url, tmp_path):
    site = part_of_the_site(tmp_path / "site.toml", IN_CI)
    run = run_site(pg_server_url, site, tmp_path / "reports", timeout=2400)
    report = run.report
    assert [p["name"] for p in report["plugins"]] == [
        "peek_core_user",
        "peek_core_docdb",
        "peek_plugin_graphdb",
    ], run.output
    assert all(p["previous"]["version"] == "4.1.9" for p in report["plugins"])
    assert not wrong_verdicts(report), "\n".join(wrong_verdicts(report))
