"""What the checks of one target share, before any server: the schema, the code to show.

The check process's :class:`~matrix.check.cell.Cell` on plugins written by
:mod:`plugin_factory`, with no database: where the plugin's schema is found
(env.py's options offline, or the loaded MetaData when env.py connects even
in ``--sql`` mode, as Peek's does), the refusal of a plugin without one, the
code shown beside a finding, and how a migration function reads.
"""

from __future__ import annotations

import pytest
import recorded_walks
from plugin_factory import PluginSpec, healthy_revisions

from matrix.check.cell import function_kind
from matrix.errors import PluginError


@pytest.mark.parametrize("env", ["offline", "peek"])
def test_the_schema_is_found_offline_whether_or_not_env_py_renders(env, tmp_path, monkeypatch):
    spec = PluginSpec(f"found{env}", healthy_revisions(), env=env)
    cell = recorded_walks.cell_of(spec, tmp_path, monkeypatch)
    cell.url, cell.schema = None, ""
    cell.discover()
    assert cell.schema == f"pl_found{env}"
    assert (cell.revisions, cell.head) == (["a1", "b2"], "b2")


def test_a_plugin_without_a_schema_is_refused_before_any_check(tmp_path, monkeypatch):
    """With no schema every state would be empty and every comparison trivially equal."""
    spec = PluginSpec("noschema", healthy_revisions(), env="peek", version_table_schema=None)
    cell = recorded_walks.cell_of(spec, tmp_path, monkeypatch)
    base = tmp_path / spec.package / "_private" / "storage" / "DeclarativeBase.py"
    base.write_text(base.read_text().replace('MetaData(schema="pl_noschema", ', "MetaData("))
    cell.url = None
    with pytest.raises(PluginError, match="The plugin's schema cannot be found") as caught:
        cell.discover()
    assert "MetaData(schema='pl_<name>')" in caught.value.fix


@pytest.mark.parametrize(
    ("env", "rendered"), [("offline", True), ("peek", False)], ids=["offline", "peek"]
)
def test_the_code_beside_a_finding_is_the_functions_source_and_its_sql(
    env, rendered, tmp_path, monkeypatch
):
    cell = recorded_walks.cell_of(
        PluginSpec(f"code{env}", healthy_revisions(), env=env), tmp_path, monkeypatch
    )
    code = cell.step_code("b2", upgrade=False)
    assert code.startswith("--- downgrade() of b2 ---\ndef downgrade():")
    assert 'op.drop_index("idx_Item_count"' in code
    assert ("--- SQL of the step ---" in code) is rendered
    if rendered:
        assert f'DROP INDEX pl_code{env}."idx_Item_count"' in code


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("def downgrade():\n    pass\n", "no-op"),
        ('def downgrade():\n    """Nothing to undo."""\n', "no-op"),
        ("def downgrade():\n    ...\n", "no-op"),
        ("def downgrade():\n    raise NotImplementedError()\n", "irreversible"),
        (
            'def downgrade():\n    """Lossy."""\n    raise RuntimeError("no way back")\n',
            "irreversible",
        ),
        ("def downgrade():\n    if True:\n        raise NotImplementedError()\n", "code"),
        ("def downgrade():\n    op.drop_table('t')\n    raise NotImplementedError()\n", "code"),
        ("    def downgrade():\n        pass\n", "no-op"),  # indented, as inside a class
        ("def downgrade(:\n", "code"),  # unreadable: judged by running it
    ],
)
def test_a_migration_function_reads_as_a_no_op_a_declared_stop_or_code(source, kind):
    assert function_kind(source) == kind
