"""Upgrades as sites live them: from the previous release, at scale, with their locks.

The tutorial's previous release (0.9.0: its first two revisions) is built,
put on a real package index (pypiserver on 127.0.0.1) and found there by
``--previous auto``; a released revision edited afterwards is caught with its
diff; a revision that rewrites a filled table is measured under ``--scale``
and fails a policy limit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import ROOT, cli
from plugin_factory import PluginSpec, Revision, healthy_revisions, write_plugin

pytestmark = pytest.mark.live
PG = ("--targets", "pg15-postgis33", "--provider", "external")
PROJECT = ROOT / "plugin_under_test"
SPATIAL = "57f8be797dd0"
SETTING = "1d840cd061e3"


def previous_tutorial(tmp_path: Path, edit: str | None = None) -> Path:
    """The tutorial as 0.9.0 shipped it: without its spatial revision and model."""
    project = tmp_path / "tutorial-0.9.0"
    shutil.copytree(
        PROJECT,
        project,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"),
    )
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.0.0"', 'version = "0.9.0"'))
    versions = project / "peek_plugin_tutorial" / "_private" / "alembic" / "versions"
    next(versions.glob(f"{SPATIAL}_*.py")).unlink()
    (project / "peek_plugin_tutorial" / "_private" / "storage" / "SpatialFeatureTuple.py").unlink()
    if edit:
        revision = next(versions.glob(f"{SETTING}_*.py"))
        revision.write_text(revision.read_text().replace(*edit.split(" => ")))
    return project


def compat(reports: Path) -> dict:
    return json.loads((reports / "compat.json").read_text())


def check(report: dict, name: str) -> dict:
    return next(c for c in report["targets"][0]["checks"] if c["name"] == name)


def run(pg_server_url, reports: Path, *args: str, env: dict | None = None):
    url = pg_server_url.render_as_string(hide_password=False)
    return cli(
        "run",
        *args,
        *PG,
        "--reports",
        str(reports),
        env={"MATRIX_POSTGRESQL_URL": url, **(env or {})},
    )


def test_the_tutorial_upgrades_from_its_previous_release_found_on_the_index(
    pg_server_url, pypi, tmp_path
):
    old = previous_tutorial(tmp_path)
    built = cli("build", "--plugin", str(old), "--dist", str(tmp_path / "old-dist"))
    assert built.returncode == 0, built.stdout + built.stderr
    for wheel in (tmp_path / "old-dist").glob("*.whl"):
        shutil.copy(wheel, pypi.packages)
    reports = tmp_path / "reports"
    done = run(
        pg_server_url,
        reports,
        "--plugin",
        str(PROJECT),
        "--previous",
        "auto",
        env={"PIP_INDEX_URL": pypi.index_with_credentials, "MATRIX_CACHE_DIR": str(tmp_path / "c")},
    )
    report = compat(reports)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "previous release: peek_plugin_tutorial==0.9.0" in done.stdout + done.stderr
    unchanged = check(report, "released_revisions_unchanged")
    assert unchanged["status"] == "passed"
    assert unchanged["reason"] == "the 2 revisions of 0.9.0 ship unchanged"
    upgraded = check(report, "upgrade_from_release")
    assert upgraded["status"] == "passed", upgraded
    assert upgraded["reason"].startswith(f"0.9.0 at {SETTING} with ")
    assert "then 1 revisions of this build: every row kept, same schema" in upgraded["reason"]
    assert [e["revision"] for e in upgraded["evidence"]] == [SPATIAL]


def test_an_edited_released_revision_fails_with_its_diff(pg_server_url, tmp_path):
    old = previous_tutorial(
        tmp_path, edit='sa.Column("name", sa.String() => sa.Column("name", sa.String(length=40)'
    )
    reports = tmp_path / "reports"
    done = run(pg_server_url, reports, "--plugin", str(PROJECT), "--previous", str(old))
    report = compat(reports)
    assert done.returncode == 1
    unchanged = check(report, "released_revisions_unchanged")
    assert unchanged["status"] == "failed"
    assert unchanged["revision"] == SETTING
    assert f"upgrade() of {SETTING} differs from the one released in 0.9.0" in unchanged["reason"]
    detail = unchanged["findings"][0]["detail"]
    assert "-    op.create_table('Setting'" in detail and "sa.String(length=40)" in detail
    assert "+    op.create_table('Setting'" in detail
    upgraded = check(report, "upgrade_from_release")
    assert upgraded["status"] == "failed"
    assert '+ tables.Setting.columns.name.type = "character varying(40)"' in upgraded["detail"]


@pytest.mark.parametrize(
    ("kind", "changed"),
    [
        # b2 is gone; its work now ships as z9
        ("removed", lambda a1, b2: [a1, Revision("z9", "a1", b2.upgrade, b2.downgrade)]),
        # a new c3 slipped in under the released b2
        (
            "reparented",
            lambda a1, b2: [
                a1,
                Revision("c3", "a1", "pass", "pass"),
                Revision("b2", "c3", b2.upgrade, b2.downgrade),
            ],
        ),
    ],
)
def test_a_removed_or_reparented_released_revision_is_caught(
    pg_server_url, tmp_path, kind, changed
):
    a1, b2 = healthy_revisions()
    old = write_plugin(tmp_path / "old", PluginSpec("history", [a1, b2]))
    new = write_plugin(tmp_path / "new", PluginSpec("history", changed(a1, b2)))
    reports = tmp_path / "reports"
    run(pg_server_url, reports, "--plugin", str(new), "--previous", str(old))
    unchanged = check(compat(reports), "released_revisions_unchanged")
    assert unchanged["status"] == "failed"
    assert [(f["kind"], f["revision"]) for f in unchanged["findings"]] == [(kind, "b2")]


def test_what_the_previous_release_itself_lost_is_not_blamed_on_the_upgrade(
    pg_server_url, tmp_path
):
    """A site at the release never held those rows or that column: not this build's doing."""
    a1, b2 = healthy_revisions()
    purge = """op.execute('DELETE FROM "{schema}"."Item" WHERE id % 2 = 0')"""
    drop = 'op.drop_column("Item", "name", schema="{schema}")'
    add = 'op.add_column("Item", sa.Column("name", sa.String(50)), schema="{schema}")'
    c3 = Revision("c3", "b2", f"{purge}\n{drop}", add)
    extra = 'op.add_column("Item", sa.Column("extra", sa.Integer()), schema="{schema}")'
    d4 = Revision("d4", "c3", extra, 'op.drop_column("Item", "extra", schema="{schema}")')
    old = write_plugin(tmp_path / "old", PluginSpec("lossy", [a1, b2, c3]))
    new = write_plugin(tmp_path / "new", PluginSpec("lossy", [a1, b2, c3, d4]))
    reports = tmp_path / "reports"
    run(pg_server_url, reports, "--plugin", str(new), "--previous", str(old))
    report = compat(reports)
    assert check(report, "data_survives")["status"] == "failed"  # c3 loses rows from base
    upgrade = check(report, "upgrade_from_release")
    assert upgrade["status"] == "passed", upgrade["reason"]
    assert upgrade["findings"] == []
    assert "then 1 revisions of this build" in upgrade["reason"]


def test_a_release_table_that_took_no_rows_leaves_the_upgrade_unproven(pg_server_url, tmp_path):
    """Rows kept says nothing about a table that held none: not_run, not passed."""
    a1, b2 = healthy_revisions()
    strict = (
        'op.execute("""CREATE TABLE "{schema}"."Strict" (id serial PRIMARY KEY, '
        'code varchar(5) NOT NULL CHECK (code = \'fixed\'))""")'
    )
    a1 = Revision("a1", None, f"{a1.upgrade}\n{strict}", a1.downgrade)
    extra = 'op.add_column("Item", sa.Column("extra", sa.Integer()), schema="{schema}")'
    c3 = Revision("c3", "b2", extra, 'op.drop_column("Item", "extra", schema="{schema}")')
    old = write_plugin(tmp_path / "old", PluginSpec("strict", [a1, b2]))
    new = write_plugin(tmp_path / "new", PluginSpec("strict", [a1, b2, c3]))
    reports = tmp_path / "reports"
    run(pg_server_url, reports, "--plugin", str(new), "--previous", str(old))
    upgrade = check(compat(reports), "upgrade_from_release")
    assert upgrade["status"] == "not_run", upgrade
    assert "the previous release's database took no rows into Strict" in upgrade["reason"]


def test_a_revision_that_fails_at_scale_is_blamed_not_an_error(pg_server_url, tmp_path):
    a1, b2 = healthy_revisions()
    add = (
        'op.add_column("Item", sa.Column("count", sa.Integer(), nullable=False), schema="{schema}")'
    )
    index = 'op.create_index("idx_Item_count", "Item", ["count"], schema="{schema}")'
    spec = PluginSpec("atscale", [a1, Revision("b2", "a1", f"{add}\n{index}", b2.downgrade)])
    spec.extra_columns = spec.extra_columns.replace(
        "Column(Integer)", "Column(Integer, nullable=False)"
    )
    plugin = write_plugin(tmp_path / "src", spec)
    reports = tmp_path / "reports"
    run(pg_server_url, reports, "--plugin", str(plugin), "--scale", "10")
    cost = check(compat(reports), "migration_cost")
    assert cost["status"] == "failed", cost
    assert cost["revision"] == "b2"
    assert [f["kind"] for f in cost["findings"]] == ["fails_at_scale"]
    assert "fails with 10 rows per table" in cost["reason"]


def test_a_rewrite_of_a_filled_table_is_measured_and_fails_a_policy_limit(pg_server_url, tmp_path):
    revisions = healthy_revisions()
    widen = (
        'op.alter_column("Item", "count", type_=sa.BigInteger(), existing_type=sa.Integer(), '
        'schema="{schema}")'
    )
    narrow = widen.replace("sa.BigInteger()", "sa.Integer()", 1).replace(
        "existing_type=sa.Integer()", "existing_type=sa.BigInteger()"
    )
    revisions.append(Revision("c3", "b2", widen, narrow))
    spec = PluginSpec("rewrite", revisions)
    spec.extra_columns = spec.extra_columns.replace("Column(Integer)", "Column(BigInteger)")
    spec.extra_columns = "from sqlalchemy import BigInteger\n    " + spec.extra_columns
    plugin = write_plugin(tmp_path / "src", spec)
    reports = tmp_path / "reports"
    done = run(pg_server_url, reports, "--plugin", str(plugin), "--scale", "50000")
    cost = check(compat(reports), "migration_cost")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cost["status"] == "passed"  # no policy: information only
    (c3,) = [e for e in cost["evidence"] if e["revision"] == "c3"]
    assert c3["rows"] == 50000 and c3["rewrites"] == ["Item"]
    lock = next(lock for lock in c3["locks"] if lock["relation"] == "Item")
    assert lock["mode"] == "AccessExclusiveLock" and lock["exclusive"] and lock["rows"] == 50000
    assert any(hit.startswith("changing-column-type") for hit in c3["lint"])
    assert "| c3 |" in (reports / "compat.md").read_text()

    policy = tmp_path / "policy.toml"
    policy.write_text(f"[cost]\nmax_access_exclusive_seconds = {lock['seconds'] / 4:.4f}\n")
    reports = tmp_path / "strict"
    done = run(
        pg_server_url, reports, "--plugin", str(plugin), "--scale", "50000", "--policy", str(policy)
    )
    cost = check(compat(reports), "migration_cost")
    assert done.returncode == 1
    assert cost["status"] == "failed"
    assert cost["revision"] in ("b2", "c3")
    assert "over the policy's" in cost["reason"]


def test_a_bulk_fill_the_driver_refuses_is_a_warning_not_a_harness_error(pg_server_url, tmp_path):
    """COPY (and pymssql's executemany on SQL Server) raise the driver's own errors, which are not
    SQLAlchemy's: a table the generator cannot fill must still be said, not crash the check."""
    a1, b2 = healthy_revisions()
    strict = (
        'op.create_table("Strict", sa.Column("id", sa.Integer(), primary_key=True), '
        'sa.Column("count", sa.Integer(), sa.CheckConstraint("count < 0")), schema="{schema}")'
    )
    c3 = Revision("c3", "b2", strict, 'op.drop_table("Strict", schema="{schema}")')
    d4 = Revision(
        "d4",
        "c3",
        'op.add_column("Item", sa.Column("extra", sa.Integer()), schema="{schema}")',
        'op.drop_column("Item", "extra", schema="{schema}")',
    )
    plugin = write_plugin(tmp_path / "src", PluginSpec("unfillable", [a1, b2, c3, d4]))
    reports = tmp_path / "reports"
    run(pg_server_url, reports, "--plugin", str(plugin), "--scale", "10")
    cost = check(compat(reports), "migration_cost")
    assert cost["status"] == "passed", cost
    assert any("Strict could not be filled to 10 rows" in w for w in cost["warnings"]), cost
