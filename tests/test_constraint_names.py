"""constraints_named: a constraint dropped by a name no engine promised, blamed where dropped.

Each test writes a Peek-style plugin with exactly that defect (``plugin_factory``) and runs
the check on it in this process, without any server: the check follows the DDL Alembic would
execute, offline, for the target's dialect. The same defect blocks on SQL Server, whose
unnamed constraints get a different name on every site, and is a note on PostgreSQL, whose
names are the same everywhere. The tutorial, whose unnamed constraints no revision drops, gets
nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT
from plugin_factory import CREATE_ITEM, DROP_ITEM, PluginSpec, Revision, write_plugin

from matrix.catalogue import BY_NAME
from matrix.check.cell import Cell
from matrix.check.checks.base import run_one
from matrix.engines import engine_named
from matrix.protocol import Plugin

CREATE_TAG = """
op.create_table(
    "Tag",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("itemId", sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(["itemId"], ["{schema}.Item.id"]),
    sa.PrimaryKeyConstraint("id"),
    schema="{schema}",
)
"""
DROP_TAG = 'op.drop_table("Tag", schema="{schema}")'
# The shape of peek-plugin-chat 5.1.6's 52f3163b45de: its upgrade drops the foreign key by the
# name PostgreSQL gave it and creates it again without a name; its downgrade drops that by None.
RECREATE_FK = """
op.drop_constraint("Tag_itemId_fkey", "Tag", schema="{schema}", type_="foreignkey")
op.create_foreign_key(
    None, "Tag", "Item", ["itemId"], ["id"],
    source_schema="{schema}", referent_schema="{schema}", ondelete="CASCADE",
)
"""
RESTORE_FK = """
op.drop_constraint(None, "Tag", schema="{schema}", type_="foreignkey")
op.create_foreign_key(
    "Tag_itemId_fkey", "Tag", "Item", ["itemId"], ["id"],
    source_schema="{schema}", referent_schema="{schema}",
)
"""
TAG_MODEL = """
from sqlalchemy import Column, ForeignKey, Integer

from {package}._private.storage.DeclarativeBase import DeclarativeBase


class Tag(DeclarativeBase):
    __tablename__ = "Tag"
    id = Column(Integer, primary_key=True)
    itemId = Column(Integer, ForeignKey("Item.id", ondelete="CASCADE"))
"""


def chat_shaped(name: str, **spec) -> PluginSpec:
    return PluginSpec(
        name,
        [
            Revision("a1", None, CREATE_ITEM, DROP_ITEM, "create Item"),
            Revision("b2", "a1", CREATE_TAG, DROP_TAG, "create Tag"),
            Revision("c3", "b2", RECREATE_FK, RESTORE_FK, "cascade Tag's key"),
        ],
        extra_columns="",
        models={"Tag": TAG_MODEL},
        **spec,
    )


def check(tmp_path: Path, monkeypatch, spec: PluginSpec, engine: str = "mssql"):
    package_dir = write_plugin(tmp_path / "src", spec)
    return run_on(package_dir, monkeypatch, engine, tmp_path)


def run_on(package_dir: Path, monkeypatch, engine: str, tmp_path: Path):
    monkeypatch.syspath_prepend(str(package_dir.parent))
    plugin = Plugin(
        package=package_dir.name,
        version="0.0.1",
        import_root=package_dir.parent,
        alembic_dir=package_dir / "_private" / "alembic",
        source="in-place",
    )
    cell = Cell(plugin, engine_named(engine), f"{engine}-test", None, tmp_path / "sql")
    cell.discover()
    head = run_one(BY_NAME["single_head"], cell, {})
    return run_one(BY_NAME["constraints_named"], cell, {"single_head": head})


def test_a_key_dropped_by_postgresqls_name_and_then_by_none_is_blamed_on_the_dropper(
    tmp_path, monkeypatch
):
    result = check(tmp_path, monkeypatch, chat_shaped("chatlike"))
    assert result.status == "failed", result.reason
    guessed, unnamed = sorted(result.findings, key=lambda f: "None" in f.message)
    assert (guessed.kind, guessed.revision, guessed.blocking) == ("unpromised_name", "c3", True)
    assert "c3 (its upgrade()) drops 'Tag_itemId_fkey'" in guessed.message
    assert "foreign key Tag(itemId), created without a name by b2" in guessed.message
    assert (unnamed.revision, unnamed.blocking) == ("c3", True)
    assert "c3 (its downgrade()) drops a constraint by None" in unnamed.message
    assert "created without a name by c3" in unnamed.message  # its own upgrade created it
    assert "naming_convention" in guessed.detail


def test_the_same_defect_is_a_portability_note_on_postgresql(tmp_path, monkeypatch):
    result = check(tmp_path, monkeypatch, chat_shaped("chatpg"), engine="postgresql")
    assert result.status == "passed"
    assert sorted(f.revision for f in result.findings) == ["c3", "c3"]
    assert not any(f.blocking for f in result.findings)


def test_a_unique_constraint_dropped_by_none_names_the_revision_that_created_it(
    tmp_path, monkeypatch
):
    """The shape of peek-plugin-livedb 5.1.6's b0b08aff8542."""
    spec = PluginSpec(
        "livelike",
        [
            Revision("a1", None, CREATE_ITEM, DROP_ITEM, "create Item"),
            Revision(
                "b2",
                "a1",
                'op.create_unique_constraint(None, "Item", ["name"], schema="{schema}")',
                'op.drop_constraint(None, "Item", schema="{schema}", type_="unique")',
            ),
        ],
        extra_columns="",
    )
    result = check(tmp_path, monkeypatch, spec)
    (finding,) = result.findings
    assert (finding.revision, finding.blocking) == ("b2", True)
    assert "unique Item(name), created without a name by b2" in finding.message


def test_a_primary_key_dropped_by_its_postgresql_name_names_its_creator(tmp_path, monkeypatch):
    spec = PluginSpec(
        "pkguess",
        [
            Revision("a1", None, CREATE_ITEM, DROP_ITEM, "create Item"),
            Revision(
                "b2",
                "a1",
                'op.drop_constraint("Item_pkey", "Item", schema="{schema}", type_="primary")\n'
                'op.create_primary_key("pk_Item", "Item", ["id"], schema="{schema}")',
                'op.drop_constraint("pk_Item", "Item", schema="{schema}", type_="primary")\n'
                'op.create_primary_key("Item_pkey", "Item", ["id"], schema="{schema}")',
            ),
        ],
        extra_columns="",
    )
    result = check(tmp_path, monkeypatch, spec)
    (finding,) = result.findings
    assert finding.revision == "b2"
    assert "drops 'Item_pkey'" in finding.message
    assert "primary key Item(id), created without a name by a1" in finding.message


def test_names_given_by_a_naming_convention_are_promised_on_every_engine(tmp_path, monkeypatch):
    """The fix the finding points at: MetaData(naming_convention=...) names what Alembic creates."""
    spec = chat_shaped(
        "convention",
        naming_convention={
            "pk": "pk_%(table_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        },
    )
    spec.revisions[2] = Revision(
        "c3",
        "b2",
        'op.drop_constraint("fk_Tag_itemId_Item", "Tag", schema="{schema}", type_="foreignkey")',
        'op.create_foreign_key(None, "Tag", "Item", ["itemId"], ["id"], '
        'source_schema="{schema}", referent_schema="{schema}")',
    )
    result = check(tmp_path, monkeypatch, spec)
    assert result.status == "passed", [f.message for f in result.findings]
    assert result.findings == []


def test_an_unnamed_constraint_no_revision_drops_is_no_finding(tmp_path, monkeypatch):
    spec = chat_shaped("untouched")
    spec.revisions = spec.revisions[:2]  # a1 and b2 create unnamed keys; nothing drops them
    result = check(tmp_path, monkeypatch, spec)
    assert (result.status, result.findings) == ("passed", [])


def test_the_tutorial_gets_nothing(tmp_path, monkeypatch):
    package_dir = ROOT / "plugin_under_test" / "peek_plugin_tutorial"
    for engine in ("mssql", "postgresql"):
        result = run_on(package_dir, monkeypatch, engine, tmp_path)
        assert (result.status, result.findings) == ("passed", []), result.findings
        assert "constraint drops in 3 revisions" in result.reason


@pytest.mark.parametrize("engine", ["mssql", "postgresql"])
def test_a_target_no_server_reached_is_still_judged(tmp_path, monkeypatch, engine):
    """The DDL is followed offline, so the verdict does not wait for a server."""
    assert BY_NAME["constraints_named"].live is False
    result = check(tmp_path, monkeypatch, chat_shaped(f"offline{engine}"), engine=engine)
    assert result.status in ("failed", "passed") and len(result.findings) == 2


def test_a_declared_irreversible_downgrade_ends_the_walk_without_a_warning(tmp_path, monkeypatch):
    spec = chat_shaped("irreversible")
    spec.revisions[2] = Revision("c3", "b2", RECREATE_FK, 'raise NotImplementedError("no")')
    result = check(tmp_path, monkeypatch, spec)
    assert [f.revision for f in result.findings] == ["c3"]  # the upgrade's guess only
    assert result.warnings == []
    spec = chat_shaped("broken")
    spec.revisions[2] = Revision("c3", "b2", RECREATE_FK, 'op.drop_column("Tag")')
    (warning,) = check(tmp_path / "b", monkeypatch, spec).warnings
    assert warning.startswith("the downgrade() of c3 raised when followed offline (TypeError")
