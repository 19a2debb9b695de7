"""Every check fails on the defect it claims to catch, and says why.

Each test writes a small Peek-style plugin with exactly one defect, runs the
matrix on it through the CLI against a live PostgreSQL + PostGIS server, and
asserts on the check's status and its detail (revision, error, SQL or diff).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_factory import (
    ADD_COUNT,
    CREATE_INDEX,
    DROP_COUNT,
    DROP_INDEX,
    PluginSpec,
    Revision,
    healthy_revisions,
    write_plugin,
)

ARGS = ("--targets", "pg15-postgis33", "--provider", "external")


def run_plugin(run_matrix_cli, tmp_path: Path, spec: PluginSpec):
    package_dir = write_plugin(tmp_path / "src", spec)
    return run_matrix_cli("--plugin", str(package_dir), *ARGS)


def with_revision(name: str, index: int, **changes) -> PluginSpec:
    revisions = healthy_revisions()
    current = revisions[index]
    revisions[index] = Revision(
        changes.get("revision", current.revision),
        changes.get("down_revision", current.down_revision),
        changes.get("upgrade", current.upgrade),
        changes.get("downgrade", current.downgrade),
    )
    return PluginSpec(name, revisions)


def test_healthy_plugin_passes_every_check(run_matrix_cli, tmp_path):
    run = run_plugin(run_matrix_cli, tmp_path, PluginSpec("healthy", healthy_revisions()))
    assert run.exit_code == 0, run.output
    target = run.target()
    assert target["status"] == "passed"
    assert target["provider"] == "external"
    assert {c["status"] for c in target["checks"]} == {"passed"}
    assert (run.reports / "sql" / "pg15-postgis33" / "upgrade.sql").read_text().count("pl_healthy")


def test_single_head_catches_two_heads(run_matrix_cli, tmp_path):
    spec = PluginSpec("twoheads", healthy_revisions())
    spec.revisions.append(Revision("c3", "a1", "pass", "pass"))
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("single_head")
    assert run.exit_code == 1
    assert check["status"] == "failed"
    assert "2 heads" in check["detail"] and "b2" in check["detail"] and "c3" in check["detail"]
    assert run.check("upgrade_stepwise")["status"] == "not_run"


def test_upgrade_stepwise_catches_a_migration_that_raises(run_matrix_cli, tmp_path):
    spec = with_revision("raises", 1, upgrade='op.execute("ALTER TABLE nowhere ADD x int")')
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("upgrade_stepwise")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "a1 -> b2" in check["detail"]
    assert 'relation "nowhere" does not exist' in check["detail"]
    assert "ALTER TABLE nowhere ADD x int" in check["detail"]  # the SQL of the step
    assert run.target()["status"] == "failed"
    assert run.check("single_head")["status"] == "passed"  # results before are kept


def test_version_table_at_head_catches_version_table_in_public(run_matrix_cli, tmp_path):
    spec = PluginSpec("publicversion", healthy_revisions(), version_table_schema=None)
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("version_table_at_head")
    assert check["status"] == "failed"
    assert "pl_publicversion.alembic_version" in check["detail"]
    assert "version_table_schema" in check["detail"]


def test_model_matches_ddl_catches_model_drift(run_matrix_cli, tmp_path):
    spec = PluginSpec("drift", healthy_revisions())
    spec.extra_columns += "\n    note = Column(String(20))"
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("model_matches_ddl")
    assert check["status"] == "failed"
    assert "add_column" in check["detail"] and "note" in check["detail"]
    assert check["revision"] == "b2"


def test_schema_isolation_catches_a_table_in_public(run_matrix_cli, tmp_path):
    escape = 'op.execute("CREATE TABLE public.escaped (id int)")'
    spec = with_revision(
        "escape",
        1,
        upgrade=f"{ADD_COUNT}\n{CREATE_INDEX}\n{escape}",
        downgrade=f'op.execute("DROP TABLE public.escaped")\n{DROP_INDEX}\n{DROP_COUNT}',
    )
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("schema_isolation")
    assert check["status"] == "failed"
    assert "public.escaped (r)" in check["detail"]
    assert run.check("model_matches_ddl")["status"] == "passed"


def test_downgrade_stepwise_catches_a_broken_downgrade(run_matrix_cli, tmp_path):
    spec = with_revision("brokendown", 1, downgrade='op.drop_table("Missing", schema="{schema}")')
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("downgrade_stepwise")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "b2 -> a1" in check["detail"] and "Missing" in check["detail"]
    assert run.check("downgrade_leaves_no_trace")["status"] == "not_run"


def test_downgrade_leaves_no_trace_catches_a_leftover_index(run_matrix_cli, tmp_path):
    # The downgrade removes the column but "forgets" the index on another column.
    spec = with_revision(
        "leftover",
        1,
        upgrade=f'{ADD_COUNT}\nop.create_index("idx_Item_name", "Item", ["name"], '
        f'schema="{{schema}}")\n{CREATE_INDEX}',
        downgrade=f"{DROP_INDEX}\n{DROP_COUNT}",
    )
    spec.extra_columns += "\n    __table_args__ += (Index('idx_Item_name', 'name'),)"
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("downgrade_leaves_no_trace")
    assert run.check("downgrade_stepwise")["status"] == "passed"
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "idx_Item_name" in check["detail"]
    assert "DROP INDEX" in check["detail"]  # the downgrade SQL that runs instead


def test_reupgrade_catches_a_downgrade_that_leaves_a_table(run_matrix_cli, tmp_path):
    spec = with_revision("noreup", 0, downgrade="pass")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("reupgrade")
    assert check["status"] == "failed"
    assert "already exists" in check["detail"]


def test_data_survives_catches_a_migration_that_deletes_rows(run_matrix_cli, tmp_path):
    purge = 'op.execute(\'DELETE FROM "{schema}"."Item" WHERE id % 2 = 0\')'
    spec = with_revision("purge", 1, upgrade=f"{purge}\n{ADD_COUNT}\n{CREATE_INDEX}")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert run.check("upgrade_stepwise")["status"] == "passed"
    assert check["status"] == "failed"
    assert "did not survive" in check["detail"] and "written at revision a1" in check["detail"]


def test_data_survives_catches_a_migration_that_rewrites_values(run_matrix_cli, tmp_path):
    rewrite = 'op.execute(\'UPDATE "{schema}"."Item" SET name = upper(name)\')'
    spec = with_revision("rewrite", 1, upgrade=f"{rewrite}\n{ADD_COUNT}\n{CREATE_INDEX}")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert check["status"] == "failed"
    assert "name was 'm" in check["detail"] and "now 'M" in check["detail"]


def test_data_survives_catches_not_null_without_default(run_matrix_cli, tmp_path):
    add = (
        'op.add_column("Item", sa.Column("count", sa.Integer(), nullable=False), schema="{schema}")'
    )
    spec = with_revision("notnull", 1, upgrade=f"{add}\n{CREATE_INDEX}")
    spec.extra_columns = spec.extra_columns.replace(
        "Column(Integer)", "Column(Integer, nullable=False)"
    )
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert run.check("upgrade_stepwise")["status"] == "passed"  # fine on an empty table
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "contains null values" in check["detail"]


def test_offline_sql_catches_a_migration_that_needs_a_live_connection(run_matrix_cli, tmp_path):
    needs_bind = (
        'count = op.get_bind().execute(sa.text(\'SELECT count(*) FROM "{schema}"."Item"\'))'
        f".scalar()\n{ADD_COUNT}\n{CREATE_INDEX}"
    )
    spec = with_revision("onlineonly", 1, upgrade=needs_bind)
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("offline_sql")
    assert run.check("upgrade_stepwise")["status"] == "passed"
    assert check["status"] == "failed"
    assert "upgrade head --sql cannot be rendered" in check["detail"]


def test_offline_sql_catches_sql_the_dialect_cannot_parse():
    from matrix.checks import CheckFailed, parse_sql

    with pytest.raises(CheckFailed) as caught:
        parse_sql(
            "-- Running upgrade  -> a1\n\nCREATE TABLE ok (id int);\n\nCREATE TABLE ((( ;\n",
            "postgresql",
            "upgrade",
        )
    assert caught.value.revision == "a1"
    assert "CREATE TABLE (((" in caught.value.detail()


def test_sql_server_batches_are_split_on_go():
    from matrix.checks import split_statements

    sql = (
        "CREATE SCHEMA [pl_x];\n\nGO\n\n-- Running upgrade  -> a1\n\n"
        "CREATE TABLE [pl_x].[Item] (id INTEGER NOT NULL);\n\nGO\n\n"
    )
    assert split_statements(sql, "mssql") == [
        (None, "CREATE SCHEMA [pl_x];"),
        ("a1", "CREATE TABLE [pl_x].[Item] (id INTEGER NOT NULL);"),
    ]
