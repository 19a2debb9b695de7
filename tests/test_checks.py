"""Every check fails on the defect it claims to catch, blames the right revision, and says why.

Each test writes a small Peek-style plugin with exactly one defect, runs the
matrix on it through the CLI against a live PostgreSQL + PostGIS server, and
asserts on the check's status, the revision it blames and its reason. The
tests that prove a former false verdict gone say so in their name.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from helpers import ROOT
from plugin_factory import (
    ADD_COUNT,
    CREATE_INDEX,
    CREATE_ITEM,
    DROP_COUNT,
    DROP_INDEX,
    DROP_ITEM,
    PluginSpec,
    Revision,
    healthy_revisions,
    write_plugin,
)

pytestmark = pytest.mark.live

ARGS = ("--targets", "pg15-postgis33", "--provider", "external")


def run_plugin(run_matrix_cli, tmp_path: Path, spec: PluginSpec, *extra: str):
    package_dir = write_plugin(tmp_path / "src", spec)
    return run_matrix_cli("--plugin", str(package_dir), *ARGS, *extra)


def with_revision(name: str, index: int, **changes) -> PluginSpec:
    revisions = healthy_revisions()
    current = revisions[index]
    revisions[index] = Revision(
        changes.get("revision", current.revision),
        changes.get("down_revision", current.down_revision),
        changes.get("upgrade", current.upgrade),
        changes.get("downgrade", current.downgrade),
    )
    return PluginSpec(name, revisions, env=changes.get("env", "offline"))


def three_revisions(name: str, middle_downgrade: str, env: str = "offline") -> PluginSpec:
    """a1 creates Item, b2 adds count + its index, c3 adds a column "extra"."""
    revisions = healthy_revisions()
    add = 'op.add_column("Item", sa.Column("extra", sa.String(10)), schema="{schema}")'
    drop = 'op.drop_column("Item", "extra", schema="{schema}")'
    revisions[1] = Revision("b2", "a1", revisions[1].upgrade, middle_downgrade)
    revisions.append(Revision("c3", "b2", add, drop))
    spec = PluginSpec(name, revisions, env=env)
    spec.extra_columns += "\n    extra = Column(String(10))"
    return spec


# -- a healthy plugin ------------------------------------------------------------------


def test_healthy_plugin_passes_every_check(run_matrix_cli, tmp_path):
    run = run_plugin(run_matrix_cli, tmp_path, PluginSpec("healthy", healthy_revisions()))
    assert run.exit_code == 0, run.output
    target = run.target()
    assert target["status"] == "passed"
    assert {c["status"] for c in target["checks"]} == {"passed"}
    assert run.check("offline_sql")["reason"].startswith("9 upgrade and 8 downgrade statements")
    assert (run.reports / "sql" / "pg15-postgis33" / "upgrade.sql").read_text().count("pl_healthy")


def test_peek_env_is_not_run_offline_and_warned_about_autogenerate(run_matrix_cli, tmp_path):
    """Peek's AlembicEnvBase: every live check passes, offline SQL cannot be judged."""
    spec = PluginSpec("peekenv", healthy_revisions(), env="peek")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    offline = run.check("offline_sql")
    assert offline["status"] == "not_run"
    assert "connects to the database even in --sql mode" in offline["reason"]
    assert run.target()["status"] == "not_run"
    assert run.exit_code == 1
    others = {c["name"]: c["status"] for c in run.target()["checks"] if c["name"] != "offline_sql"}
    assert set(others.values()) == {"passed"}, others
    model = run.check("model_matches_ddl")
    assert model["status"] == "passed"
    assert any("spatial_ref_sys" in w for w in model["warnings"]), model["warnings"]


# -- the history and the walk up ----------------------------------------------------------


def test_single_head_catches_two_heads(run_matrix_cli, tmp_path):
    spec = PluginSpec("twoheads", healthy_revisions())
    spec.revisions.append(Revision("c3", "a1", "pass", "pass"))
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("single_head")
    assert run.exit_code == 1
    assert check["status"] == "failed"
    assert "2 heads" in check["reason"] and "b2" in check["reason"] and "c3" in check["reason"]
    assert run.check("upgrade_stepwise")["status"] == "not_run"


def test_upgrade_stepwise_blames_the_migration_that_raises(run_matrix_cli, tmp_path):
    spec = with_revision("raises", 1, upgrade='op.execute("ALTER TABLE nowhere ADD x int")')
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("upgrade_stepwise")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "a1 -> b2" in check["reason"]
    assert 'relation "nowhere" does not exist' in check["reason"]
    assert "ALTER TABLE nowhere ADD x int" in check["detail"]  # the SQL of the step
    assert run.target()["status"] == "failed"
    assert run.check("single_head")["status"] == "passed"  # results before are kept


def test_upgrade_failure_with_peek_env_shows_the_migration_source(run_matrix_cli, tmp_path):
    spec = with_revision(
        "raisespeek", 1, upgrade='op.execute("ALTER TABLE nowhere ADD x int")', env="peek"
    )
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("upgrade_stepwise")
    assert check["revision"] == "b2"
    assert "upgrade() of b2" in check["detail"] and "ALTER TABLE nowhere" in check["detail"]


def test_version_table_at_head_catches_version_table_in_public(run_matrix_cli, tmp_path):
    spec = PluginSpec("publicversion", healthy_revisions(), version_table_schema=None)
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("version_table_at_head")
    assert check["status"] == "failed"
    assert "pl_publicversion.alembic_version" in check["reason"]
    assert "version_table_schema" in check["reason"]


def test_model_matches_ddl_catches_a_column_only_in_the_model(run_matrix_cli, tmp_path):
    spec = PluginSpec("drift", healthy_revisions())
    spec.extra_columns += "\n    note = Column(String(20))"
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("model_matches_ddl")
    assert check["status"] == "failed"
    assert "column Item.note is in the model, not in the database" in check["reason"]
    assert check["revision"] == "b2"


def test_model_matches_ddl_blames_the_revision_that_made_an_index_the_model_lacks(
    run_matrix_cli, tmp_path
):
    spec = PluginSpec("indexdrift", healthy_revisions())
    spec.extra_columns = "count = Column(Integer)"  # the model forgot idx_Item_count
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("model_matches_ddl")
    assert check["status"] == "failed"
    assert "index idx_Item_count on Item(count) is in the database" in check["reason"]
    assert check["revision"] == "b2"


def test_model_matches_ddl_catches_a_type_difference(run_matrix_cli, tmp_path):
    spec = PluginSpec("typedrift", healthy_revisions())
    spec.extra_columns = spec.extra_columns.replace("Column(Integer)", "Column(SmallInteger)")
    spec.extra_columns = "from sqlalchemy import SmallInteger\n    " + spec.extra_columns
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("model_matches_ddl")
    assert check["status"] == "failed"
    assert (
        "column Item.count: type is INTEGER in the database, SMALLINT in the model"
        in (check["reason"])
    )


def test_model_drift_is_blamed_on_its_column_not_a_later_column_sharing_its_prefix(
    run_matrix_cli, tmp_path
):
    """c3 adds count_ext; the drift on count is b2's."""
    add_ext = 'op.add_column("Item", sa.Column("count_ext", sa.Integer()), schema="{schema}")'
    drop_ext = 'op.drop_column("Item", "count_ext", schema="{schema}")'
    spec = PluginSpec("prefix", [*healthy_revisions(), Revision("c3", "b2", add_ext, drop_ext)])
    spec.extra_columns = spec.extra_columns.replace("Column(Integer)", "Column(SmallInteger)")
    spec.extra_columns = (
        "from sqlalchemy import SmallInteger\n    "
        + spec.extra_columns
        + "\n    count_ext = Column(Integer)"
    )
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("model_matches_ddl")
    assert check["status"] == "failed"
    assert "column Item.count: type is INTEGER in the database" in check["reason"]
    assert check["revision"] == "b2"


def test_fresh_install_catches_an_index_only_create_all_makes(run_matrix_cli, tmp_path):
    """The Peek inbox case: the model has an index no migration creates."""
    spec = PluginSpec("freshdiff", healthy_revisions())
    spec.revisions[1] = Revision("b2", "a1", ADD_COUNT, DROP_COUNT)
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("fresh_install_matches_upgrade")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "+ tables.Item.indexes.idx_Item_count" in check["detail"]
    assert "DbConnection's default" in check["reason"] or "create_all" in check["reason"]


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
    assert "+public.escaped (r)" in check["reason"]
    assert run.check("model_matches_ddl")["status"] == "passed"


# -- the walk down --------------------------------------------------------------------------


def test_downgrade_stepwise_blames_a_broken_downgrade(run_matrix_cli, tmp_path):
    spec = with_revision("brokendown", 1, downgrade='op.drop_table("Missing", schema="{schema}")')
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("downgrade_stepwise")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "b2 -> a1" in check["reason"] and "Missing" in check["reason"]
    no_trace = run.check("downgrade_leaves_no_trace")
    assert no_trace["status"] == "not_run"
    assert "no downgrade step ran: the first, of b2, does not" in no_trace["reason"]
    assert run.check("data_survives")["status"] == "passed"  # its own walk needs no downgrade


def test_a_broken_downgrade_still_leaves_the_revisions_above_it_judged(run_matrix_cli, tmp_path):
    """The Peek inbox case: c3 downgrades, b2's downgrade is broken; c3 is still judged."""
    spec = three_revisions("brokenmid", 'op.drop_table("Missing", schema="{schema}")')
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    assert run.check("downgrade_stepwise")["revision"] == "b2"
    no_trace = run.check("downgrade_leaves_no_trace")
    assert no_trace["status"] == "passed"
    assert no_trace["reason"] == "the 1 revisions above b2 restore their schema"
    reupgrade = run.check("reupgrade")
    assert reupgrade["status"] == "passed" and reupgrade["reason"].startswith("b2 -> head")


def test_declared_irreversible_downgrade_ends_the_walk_and_passes(run_matrix_cli, tmp_path):
    spec = three_revisions("irreversible", 'raise NotImplementedError("Downgrade not implemented")')
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("downgrade_stepwise")
    assert check["status"] == "passed", check
    assert "down to b2" in check["reason"]
    irreversible = [f for f in check["findings"] if f["kind"] == "irreversible"]
    assert irreversible and irreversible[0]["revision"] == "b2"
    assert not irreversible[0]["blocking"]
    assert run.check("downgrade_leaves_no_trace")["status"] == "passed"
    assert "above b2" in run.check("downgrade_leaves_no_trace")["reason"]
    reupgrade = run.check("reupgrade")
    assert reupgrade["status"] == "passed" and reupgrade["reason"].startswith("b2 -> head")
    assert run.target()["status"] == "passed"


def test_not_implemented_raised_from_code_is_a_broken_downgrade(run_matrix_cli, tmp_path):
    """Only a downgrade that does nothing but raise declares itself irreversible; one
    that runs code and then meets NotImplementedError (a library's) is broken."""
    raised = f'{DROP_INDEX}\nraise NotImplementedError("batch mode cannot drop count")'
    run = run_plugin(run_matrix_cli, tmp_path, three_revisions("brokenni", raised))
    check = run.check("downgrade_stepwise")
    assert check["status"] == "failed", check
    assert check["revision"] == "b2"
    assert [f["kind"] for f in check["findings"] if f["blocking"]] == ["downgrade_failed"]
    assert "batch mode cannot drop count" in check["reason"]


def test_no_op_downgrade_is_blamed_on_itself_not_on_the_revisions_below(run_matrix_cli, tmp_path):
    """The Peek graphdb case: the residue of a `pass` downgrade is that revision's own."""
    spec = three_revisions("noopdown", "pass")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    assert run.check("downgrade_stepwise")["status"] == "passed"
    check = run.check("downgrade_leaves_no_trace")
    assert check["status"] == "failed"
    blamed = {f["revision"] for f in check["findings"] if f["blocking"]}
    assert blamed == {"b2"}, check["findings"]
    assert "no-op" in check["reason"]
    assert "tables.Item.indexes.idx_Item_count" in check["detail"]


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
    assert "+ tables.Item.indexes.idx_Item_name" in check["detail"]
    assert "DROP INDEX" in check["detail"]  # the downgrade SQL that runs instead


def test_reupgrade_catches_a_downgrade_that_leaves_a_table(run_matrix_cli, tmp_path):
    spec = with_revision("noreup", 0, downgrade="pass")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("reupgrade")
    assert check["status"] == "failed"
    assert "already exists" in check["reason"]
    assert run.check("downgrade_leaves_no_trace")["revision"] == "a1"


# -- data ---------------------------------------------------------------------------------------


def test_data_survives_is_not_run_when_no_table_ever_took_a_row(run_matrix_cli, tmp_path):
    """A history that creates no table proves nothing about data: not a pass."""
    spec = PluginSpec("notables", [Revision("a1", None, "pass", "pass")])
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    assert run.check("upgrade_stepwise")["status"] == "passed"
    check = run.check("data_survives")
    assert check["status"] == "not_run", check
    assert "no table of the plugin schema took a row at any revision" in check["reason"]


def test_data_survives_blames_the_migration_that_deletes_rows(run_matrix_cli, tmp_path):
    purge = 'op.execute(\'DELETE FROM "{schema}"."Item" WHERE id % 2 = 0\')'
    spec = with_revision("purge", 1, upgrade=f"{purge}\n{ADD_COUNT}\n{CREATE_INDEX}")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert run.check("upgrade_stepwise")["status"] == "passed"
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "written at a1 lost at b2" in check["reason"]


def test_data_survives_catches_a_migration_that_rewrites_values(run_matrix_cli, tmp_path):
    rewrite = 'op.execute(\'UPDATE "{schema}"."Item" SET name = upper(name)\')'
    spec = with_revision("rewrite", 1, upgrade=f"{rewrite}\n{ADD_COUNT}\n{CREATE_INDEX}")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert check["status"] == "failed"
    assert "name was 'r" in check["reason"] and "now 'R" in check["reason"]


def test_data_survives_blames_not_null_without_default(run_matrix_cli, tmp_path):
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
    assert "contains null values" in check["reason"]


def test_data_survives_notes_a_dropped_column_for_the_rows_written_before_it(
    run_matrix_cli, tmp_path
):
    """A dropped column is meant, so a note; rows written after the drop never had it."""
    revisions = healthy_revisions()
    drop = 'op.drop_column("Item", "name", schema="{schema}")'
    add = 'op.add_column("Item", sa.Column("name", sa.String(50)), schema="{schema}")'
    revisions.append(Revision("c3", "b2", drop, add))
    run = run_plugin(run_matrix_cli, tmp_path, PluginSpec("colgone", revisions))
    check = run.check("data_survives")
    (note,) = [f for f in check["findings"] if f["kind"] == "column_dropped"]
    assert check["status"] == "passed"
    assert not note["blocking"] and note["revision"] == "c3"
    assert note["message"].startswith("Item: 6 row(s) written at a1, b2 lost a value at c3")


def test_data_survives_catches_a_table_dropped_and_created_again(run_matrix_cli, tmp_path):
    """Formerly a false pass: later rows, with restarted keys, looked like the lost ones."""
    recreate = f"{DROP_ITEM}\n{CREATE_ITEM}\n{ADD_COUNT}\n{CREATE_INDEX}"
    spec = with_revision("recreate", 1, upgrade=recreate, downgrade=f"{DROP_INDEX}\n{DROP_COUNT}")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert (
        "3 row(s) written at a1 lost at b2 (Item was dropped and created again)"
        in (check["reason"])
    )


def test_data_survives_reports_a_dropped_table_and_a_waiver_acknowledges_it(
    run_matrix_cli, tmp_path
):
    create_old = CREATE_ITEM.replace('"Item"', '"Old"')
    drop_old = DROP_ITEM.replace('"Item"', '"Old"')
    revisions = [
        Revision("a1", None, f"{CREATE_ITEM}\n{create_old}", f"{drop_old}\n{DROP_ITEM}"),
        Revision(
            "b2",
            "a1",
            f"{drop_old}\n{ADD_COUNT}\n{CREATE_INDEX}",
            f"{DROP_INDEX}\n{DROP_COUNT}\n{create_old}",
        ),
    ]
    spec = PluginSpec("droptable", revisions)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[waive]]\ncheck = "data_survives"\nrevision = "b2"\nkind = "table_dropped"\n'
        'reason = "Old held a cache rebuilt at start-up"\n\n'
        '[[waive]]\ncheck = "offline_sql"\nreason = "never matches"\n'
    )
    unwaived = run_plugin(run_matrix_cli, tmp_path / "a", spec)
    check = unwaived.check("data_survives")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert "Old: 3 row(s) written at a1 lost at b2 (its table is gone)" in check["reason"]

    waived = run_plugin(run_matrix_cli, tmp_path / "b", spec, "--policy", str(policy))
    check = waived.check("data_survives")
    assert check["status"] == "waived"
    assert check["findings"][0]["waived"] == "Old held a cache rebuilt at start-up"
    assert waived.target()["status"] == "waived"
    assert waived.exit_code == 0
    assert waived.report["policy"]["stale"] == ["check offline_sql"]
    assert "stale waiver" in waived.output


DATA_TYPES_MODEL = """
import datetime
from sqlalchemy import JSON, Column, DateTime, Double, Float, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB, REAL, UUID

from {package}._private.storage.DeclarativeBase import DeclarativeBase


class Typed(DeclarativeBase):
    __tablename__ = "Typed"
    id = Column(Integer, primary_key=True, autoincrement=True)
    title = Column(String(5), nullable=False, unique=True)
    seen = Column(DateTime(timezone=True))
    ratio = Column(Float)
    precise = Column(Double)
    small = Column(REAL)
    money = Column(Numeric(8, 2))
    doc = Column(JSON)
    docb = Column(JSONB)
    ident = Column(UUID(as_uuid=True))
"""

CREATE_TYPED = """
from sqlalchemy.dialects import postgresql
op.create_table(
    "Typed",
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("title", sa.String(length=5), nullable=False),
    sa.Column("seen", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ratio", sa.Float(), nullable=True),
    sa.Column("precise", sa.Double(), nullable=True),
    sa.Column("small", postgresql.REAL(), nullable=True),
    sa.Column("money", sa.Numeric(8, 2), nullable=True),
    sa.Column("doc", sa.JSON(), nullable=True),
    sa.Column("docb", postgresql.JSONB(), nullable=True),
    sa.Column("ident", postgresql.UUID(as_uuid=True), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("title"),
    schema="{schema}",
)
"""


def test_data_survives_handles_time_zones_floats_json_and_unique_short_strings(
    run_matrix_cli, tmp_path
):
    """Formerly false failures and crashes: tz-aware timestamps, Double, unique columns."""
    revisions = healthy_revisions()
    revisions.append(
        Revision("c3", "b2", CREATE_TYPED, 'op.drop_table("Typed", schema="{schema}")')
    )
    spec = PluginSpec("typed", revisions, models={"Typed": DATA_TYPES_MODEL})
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert check["status"] == "passed", check
    assert "in 2 tables survived" in check["reason"]


def test_data_survives_follows_a_key_column_that_changes_type(run_matrix_cli, tmp_path):
    """The core-search case: an integer key becomes a string, values kept."""
    alter = (
        'op.alter_column("Item", "id", type_=sa.String(20), schema="{schema}", '
        "server_default=None, existing_type=sa.Integer())"
    )
    revisions = healthy_revisions()
    revisions.append(Revision("c3", "b2", alter, "pass"))
    spec = PluginSpec("keytype", revisions)  # the model keeps Integer: drift is not on trial
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("data_survives")
    assert check["status"] == "passed", check


# -- offline SQL ----------------------------------------------------------------------------------


def test_offline_sql_says_not_run_when_a_migration_needs_a_live_connection(
    run_matrix_cli, tmp_path
):
    needs_bind = (
        'count = op.get_bind().execute(sa.text(\'SELECT count(*) FROM "{schema}"."Item"\'))'
        f".scalar()\n{ADD_COUNT}\n{CREATE_INDEX}"
    )
    spec = with_revision("onlineonly", 1, upgrade=needs_bind)
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("offline_sql")
    assert run.check("upgrade_stepwise")["status"] == "passed"
    assert check["status"] == "not_run"
    assert "revision b2 cannot be rendered without a database" in check["reason"]


def test_offline_sql_applies_a_script_that_leaves_its_schema_to_peek_with_a_note(
    run_matrix_cli, tmp_path
):
    """Formerly a false failure: Peek creates the schema (ensureSchemaExists) before migrating,
    so a script that relies on it applies on every Peek database."""
    spec = PluginSpec("noschema", healthy_revisions(), offline_schema=False)
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    check = run.check("offline_sql")
    assert check["status"] == "passed", check
    assert run.target()["status"] == "passed"
    (note,) = check["findings"]
    assert note["kind"] == "schema_from_platform" and not note["blocking"]
    assert "does not create the schema pl_noschema" in note["message"]
    sql = (run.reports / "sql" / "pg15-postgis33" / "upgrade.sql").read_text()
    assert "CREATE SCHEMA" not in sql  # the script as rendered, not edited
    text = (run.reports / "compat.md").read_text()
    assert "`schema_from_platform` (note): the upgrade script does not create" in text


def test_offline_sql_takes_a_long_history_that_leaves_its_schema_to_peek(run_matrix_cli, tmp_path):
    """The second plugin of the report: 100 revisions, an offline branch, no CREATE SCHEMA."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_long_plugin
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    package = make_long_plugin.write(tmp_path / "src", 100, offline_branch=True)
    run = run_matrix_cli("--plugin", str(package), *ARGS)
    check = run.check("offline_sql")
    assert check["status"] == "passed", check
    assert [f["kind"] for f in check["findings"]] == ["schema_from_platform"]
    upgrade, downgrade = re.match(r"(\d+) upgrade and (\d+) downgrade", check["reason"]).groups()
    assert int(upgrade) > 300 and int(downgrade) > 200, check  # 100 x (table, index, version)
    assert run.exit_code == 0, run.output


def test_offline_sql_still_fails_a_script_that_breaks_on_a_database_peek_prepared(
    run_matrix_cli, tmp_path
):
    """The schema is there, as Peek leaves it; a statement only the script sends still fails."""
    offline_only = (
        "from alembic import context\n"
        f"{ADD_COUNT}\n{CREATE_INDEX}\n"
        "if context.is_offline_mode():\n"
        '    op.execute(\'CREATE INDEX bad ON "{schema}"."Item" (nosuchcolumn)\')'
    )
    spec = with_revision("badoffline", 1, upgrade=offline_only)
    spec.offline_schema = False
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    assert run.check("upgrade_stepwise")["status"] == "passed"
    check = run.check("offline_sql")
    assert check["status"] == "failed", check
    assert check["revision"] == "b2"
    assert 'column "nosuchcolumn" does not exist' in check["reason"]
    assert "(revision b2)" in check["reason"]
    assert run.target()["status"] == "failed"


def test_offline_sql_does_not_claim_the_online_schema_when_the_online_upgrade_failed(
    run_matrix_cli, tmp_path
):
    """The script applies, but with no online head there is nothing to compare it with."""
    online_only = (
        "from alembic import context\n"
        "if not context.is_offline_mode():\n"
        '    raise RuntimeError("breaks online only")\n'
        f"{ADD_COUNT}\n{CREATE_INDEX}"
    )
    run = run_plugin(run_matrix_cli, tmp_path, with_revision("onlinefail", 1, upgrade=online_only))
    assert run.check("upgrade_stepwise")["status"] == "failed"
    check = run.check("offline_sql")
    assert check["status"] == "not_run", check
    assert "the online upgrade did not reach head" in check["reason"]


def test_offline_sql_applies_dollar_quoted_blocks_whole(run_matrix_cli, tmp_path):
    """The graphdb case: ';' inside DO $$ ... $$ is not a statement separator."""
    block = (
        "op.execute('''DO $$ BEGIN\n"
        "    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'x') THEN\n"
        "        PERFORM 1;\n"
        "        PERFORM 2;\n"
        "    END IF;\n"
        "END $$;''')"
    )
    spec = with_revision("dollar", 1, upgrade=f"{ADD_COUNT}\n{CREATE_INDEX}\n{block}")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    assert run.check("offline_sql")["status"] == "passed", run.check("offline_sql")


def test_offline_sql_blames_the_statement_that_fails_to_apply(run_matrix_cli, tmp_path):
    bad = 'op.execute("CREATE INDEX bad ON \\"{schema}\\".\\"Item\\" (nosuchcolumn)")'
    spec = with_revision("badapply", 1, upgrade=f"{ADD_COUNT}\n{CREATE_INDEX}\n{bad}")
    run = run_plugin(run_matrix_cli, tmp_path, spec)
    upgrade = run.check("upgrade_stepwise")
    assert upgrade["status"] == "failed" and upgrade["revision"] == "b2"
    check = run.check("offline_sql")
    assert check["status"] == "failed"
    assert check["revision"] == "b2"
    assert 'column "nosuchcolumn" does not exist' in check["reason"]
