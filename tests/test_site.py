"""The site rehearsal on small Peek-style sites: each site check fed the defect it catches.

Every site runs through ``python -m matrix site`` on the session's real
PostgreSQL 15 + PostGIS (external provider): the previous release installed
by plain ``alembic upgrade head`` in its own environment, filled, upgraded
plugin by plugin in load order in one transaction each, then checked and
rolled back. Each test asserts the verdict, the plugin it lands on and the
revision it blames.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_factory import ADD_COUNT, CREATE_INDEX, DROP_COUNT, Revision
from site_factory import ROOT, SitePlugin, item_history, run_site, write_site

from matrix.site.environment import pin_conflicts
from matrix.site.sitefile import SiteFileError, check_load_order, parse_site

ADD = Revision("b2", "a1", ADD_COUNT, DROP_COUNT, "add count")
CHILD = Revision(
    "b2",
    "a1",
    """
    op.create_table(
        "Child",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("itemId", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["itemId"], ["pl_alpha.Item.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        schema="{schema}",
    )
    """,
    'op.drop_table("Child", schema="{schema}")',
    "a child of alpha's Item",
)


def test_a_truncate_cascading_into_another_plugins_table_is_blamed_on_its_revision(
    pg_server_url, tmp_path
):
    truncate = Revision("c3", "a1", 'op.execute(\'TRUNCATE "pl_alpha"."Item" CASCADE\')', "pass")
    site = write_site(
        tmp_path,
        [
            SitePlugin("alpha", item_history(), item_history(truncate)),
            SitePlugin("beta", item_history(CHILD), item_history(CHILD)),
        ],
    )
    run = run_site(pg_server_url, site, tmp_path / "reports")
    assert run.exit_code == 1, run.output
    (cascade,) = run.blocking("peek_plugin_alpha", "site_isolation")
    assert (cascade["kind"], cascade["revision"]) == ("cascade", "c3"), cascade
    assert "peek_plugin_beta's schema pl_beta through a CASCADE" in cascade["message"]
    assert "Child: 3 rows before, 0 after" in cascade["message"]
    assert 'TRUNCATE "pl_alpha"."Item" CASCADE' in cascade["detail"]
    (lost,) = run.blocking("peek_plugin_beta", "site_rows_kept")
    assert (lost["kind"], lost["revision"]) == ("rows_lost", "c3"), lost
    assert "by peek_plugin_alpha's upgrade at c3" in lost["message"]
    assert run.check("peek_plugin_beta", "site_isolation")["status"] == "passed"
    assert run.check("peek_plugin_alpha", "site_upgrade")["status"] == "passed"
    assert run.target()["status"] == "failed"


def test_a_failing_middle_plugin_is_named_with_what_the_site_was_left_with(pg_server_url, tmp_path):
    broken = Revision("b2", "a1", "op.execute('SELECT 1/0')", "pass", "divides by zero")
    site = write_site(
        tmp_path,
        [
            SitePlugin("alpha", item_history(), item_history(ADD)),
            SitePlugin("beta", item_history(), item_history(broken)),
            SitePlugin("gamma", item_history(), item_history(ADD)),
        ],
    )
    run = run_site(pg_server_url, site, tmp_path / "reports")
    assert run.exit_code == 1, run.output
    failed = run.check("peek_plugin_beta", "site_upgrade")
    assert (failed["status"], failed["revision"]) == ("failed", "b2"), failed
    message = failed["findings"][0]["message"]
    assert "fails at b2: DivisionByZero" in message
    assert "Already upgraded: peek_plugin_alpha;" in message
    assert "peek_plugin_beta stays at a1 (its transaction rolled back)" in message
    assert "upgraded after it, as Peek's loader goes on: peek_plugin_gamma" in message
    for healthy in ("peek_plugin_alpha", "peek_plugin_gamma"):
        assert run.check(healthy, "site_upgrade")["status"] == "passed"
        assert run.check(healthy, "site_rollback")["status"] == "passed"
    assert run.check("peek_plugin_beta", "site_rollback")["status"] == "not_run"
    assert run.check("peek_plugin_beta", "site_matches_fresh")["status"] == "not_run"


def test_a_rollback_that_loses_rows_or_leaves_a_column_is_blamed_on_its_revision(
    pg_server_url, tmp_path
):
    deleting = Revision(
        "b2", "a1", ADD_COUNT, f'op.execute(\'DELETE FROM "pl_alpha"."Item"\')\n{DROP_COUNT}'
    )
    no_op = Revision("b2", "a1", f"{ADD_COUNT}\n{CREATE_INDEX}", "pass")
    site = write_site(
        tmp_path,
        [
            SitePlugin("alpha", item_history(), item_history(deleting)),
            SitePlugin("beta", item_history(), item_history(no_op)),
        ],
    )
    run = run_site(pg_server_url, site, tmp_path / "reports")
    assert run.exit_code == 1, run.output
    (lost,) = run.blocking("peek_plugin_alpha", "site_rollback")
    assert (lost["kind"], lost["revision"]) == ("rows_lost", "b2"), lost
    assert "by peek_plugin_alpha's rollback at b2" in lost["message"]
    residue = run.check("peek_plugin_beta", "site_rollback")
    kinds = {(f["kind"], f["revision"], f["blocking"]) for f in residue["findings"]}
    assert ("residue", "b2", True) in kinds, residue
    assert ("no_op_downgrade", None, False) in kinds, residue
    assert "tables.Item.columns.count" in residue["detail"]
    for plugin in ("peek_plugin_alpha", "peek_plugin_beta"):
        for check in ("site_upgrade", "site_isolation", "site_matches_fresh", "site_rows_kept"):
            assert run.check(plugin, check)["status"] == "passed", (plugin, check)


def test_a_healthy_site_with_a_new_plugin_passes_and_the_gate_takes_its_report(
    pg_server_url, tmp_path
):
    site = write_site(
        tmp_path,
        [
            SitePlugin("alpha", item_history(), item_history(ADD)),
            SitePlugin("beta", None, item_history(ADD)),
        ],
    )
    reports = tmp_path / "reports"
    run = run_site(pg_server_url, site, reports, "--scale", "200")
    assert run.exit_code == 0, run.output
    fresh = next(p for p in run.target()["plugins"] if p["name"] == "peek_plugin_beta")
    assert fresh["status"] == "passed" and fresh["fresh"] == "a new plugin in this release"
    assert run.check("peek_plugin_beta", "site_upgrade")["status"] == "not_run"
    window = run.check("peek_plugin_alpha", "site_window")
    (step,) = window["evidence"]
    (lock,) = [lock for lock in step["locks"] if lock["exclusive"]]
    assert (lock["relation"], lock["rows"]) == ("pl_alpha.Item", 200), lock
    assert run.target()["window_s"] > 0
    assert "installed fresh: a new plugin in this release" in (reports / "compat.md").read_text()
    assert "the upgrade window" in (reports / "index.html").read_text()
    others = [t for t in ("pg13-postgis31", "pg17-postgis35", "mssql2019", "mssql2022")]
    allow = [arg for t in (*others, "mssql2025") for arg in ("--allow-missing", t)]
    gate = _gate(site, reports, *allow)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    site.write_text(site.read_text().replace("test site", "another site"))
    refused = _gate(site, reports, *allow)
    assert refused.returncode == 1
    assert "the release changed after the rehearsal" in refused.stdout


def _gate(site: Path, reports: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matrix", "site-gate", "--site", str(site), "--reports"]
        + [str(reports), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _project(root: Path, name: str, pin: str) -> Path:
    """A Peek plugin project whose wheel pins ``pin``."""
    from plugin_factory import PluginSpec, write_plugin

    project = root / name
    write_plugin(project, PluginSpec(name, revisions=item_history(), env="peek", extra_columns=""))
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "peek-plugin-{name}"
            version = "1.0.0"
            dependencies = ["{pin}"]

            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"

            [tool.setuptools.packages.find]
            include = ["peek_plugin_{name}*"]

            [tool.setuptools.package-data]
            "*" = ["*.json", "*.mako"]
            """
        )
    )
    return project


def test_two_plugins_pinning_one_distribution_differently_fail_the_site(pg_server_url, tmp_path):
    alpha = _project(tmp_path, "alpha", "packaging==23.2")
    beta = _project(tmp_path, "beta", "packaging==24.1")
    site = tmp_path / "site.toml"
    site.write_text(
        "schema_version = 1\n"
        + "".join(f'[[plugin]]\nrequirement = "{p}"\nfresh = "new"\n' for p in (alpha, beta))
    )
    run = run_site(pg_server_url, site, tmp_path / "reports")
    assert run.exit_code == 1, run.output
    failure = run.report["failure"]
    assert "peek-plugin-alpha pins packaging==23.2 but peek-plugin-beta requires" in failure
    assert "packaging==24.1" in failure
    assert run.report["status"] == "failed"
    assert run.target()["status"] == "failed"
    assert "site-level failure" in run.output


# -- the site file and the pins, without a server ------------------------------------------


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ('requirement = "a==1"\nprevious = "a==0"\nfresh = "x"', "has both previous and fresh"),
        ('requirement = "a==1"', "has neither previous and fresh"),
        ('requirement = "a>1"\nfresh = "x"\nwith = ["b=={version}"]', "pins no version"),
        ('requirement = "a==1"\nfresh = "x"\nwith = ["not a requirement!"]', "not a requirement"),
    ],
)
def test_a_site_file_that_cannot_be_used_is_refused_naming_the_field(body, phrase):
    with pytest.raises(SiteFileError) as raised:
        parse_site(Path("site.toml"), _toml(body))
    assert phrase in str(raised.value)


def test_core_plugins_out_of_peeks_order_are_refused():
    site = parse_site(Path("site.toml"), _toml('requirement = "a==1"\nfresh = "x"'))
    check_load_order(site, ["peek_core_device", "peek_core_user", "peek_plugin_inbox"])
    with pytest.raises(SiteFileError, match="loads the core plugins first"):
        check_load_order(site, ["peek_core_user", "peek_core_device"])
    with pytest.raises(SiteFileError, match="peek_core_user after an optional plugin"):
        check_load_order(site, ["peek_plugin_inbox", "peek_core_user"])


def test_version_placeholders_follow_each_release():
    site = parse_site(
        Path("site.toml"),
        {
            **_toml('requirement = "p==5.1.6"\nprevious = "p==4.1.9"'),
            "with_no_deps": ["peek-platform=={version}"],
        },
    )
    (plugin,) = site.plugins
    assert plugin.release.without_dependencies == ("peek-platform==5.1.6",)
    assert plugin.previous.without_dependencies == ("peek-platform==4.1.9",)


def test_pins_are_checked_against_every_other_plugins_requirements():
    from packaging.requirements import Requirement

    found = pin_conflicts(
        {
            "a": [Requirement("SQLAlchemy==2.0.30"), Requirement("Twisted<26")],
            "b": [Requirement("sqlalchemy>=2.0.35")],
            "c": [Requirement("twisted==25.5.0")],
        }
    )
    assert [c.describe() for c in found] == [
        "a pins SQLAlchemy==2.0.30 but b requires sqlalchemy>=2.0.35"
    ]


def _toml(plugin: str) -> dict:
    import tomllib

    return tomllib.loads(f"schema_version = 1\n[[plugin]]\n{plugin}\n")
