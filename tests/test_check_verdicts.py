"""Each check's verdict on what its walk recorded, with no server.

A check that needs a database hands what it read (the rows found again, the
locks sampled, the sequences behind) to a verdict function; these tests feed
each verdict the defect it claims to catch, as the walk would have recorded
it (the typed records :mod:`matrix.check.survival` and
:mod:`matrix.results` define), and assert the finding and the revision
blamed. Checks that need no database at all (the history, the released
revisions, the offline scripts where no server is reached) run whole, on a
plugin written by :mod:`plugin_factory`, through the check runner.
"""

from __future__ import annotations

import json

import pytest
import recorded_walks
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import judged
from plugin_factory import PluginSpec, Revision, healthy_revisions, write_plugin

from matrix.catalogue import BY_NAME
from matrix.check import synthetic
from matrix.check.checks.base import CannotJudge, CheckOutput, run_one
from matrix.check.checks.cost import _Held, judge_cost, keep_strongest, named_locks
from matrix.check.checks.data import RowsWalk, _dropped_columns, judge_rows
from matrix.check.checks.models import _flatten, render_difference
from matrix.check.checks.offline import _expected_at, _lowest_reachable, creates_schema
from matrix.check.checks.previous_release import judge_release
from matrix.check.migrator import Step, StepFailed
from matrix.check.survival import Loss
from matrix.define.policy import Policy
from matrix.engines import engine_named
from matrix.engines.sqlscript import Statement
from matrix.protocol import PreviousRelease
from matrix.results import LockHeld, RevisionEvidence, Status

POSTGRESQL = engine_named("postgresql")


def row(table: str, revision: str, serial: int) -> synthetic.WrittenRow:
    return synthetic.WrittenRow(table, 1, revision, serial, (("id", serial),), (("name", "x"),))


def ledger_of(*rows: synthetic.WrittenRow, uncovered: dict[str, str] | None = None):
    ledger = synthetic.Ledger()
    ledger.rows.extend(rows)
    ledger.uncovered.update(uncovered or {})
    return ledger


def walk(*losses: Loss, failure: StepFailed | None = None, after=None) -> RowsWalk:
    evidence = [RevisionEvidence("a1", "upgrade", 0.1), RevisionEvidence("b2", "upgrade", 0.1)]
    return RowsWalk(evidence, failure, [], list(losses), {} if after is None else after)


@pytest.fixture
def cell(tmp_path, monkeypatch):
    found = recorded_walks.cell("healthy", tmp_path, monkeypatch)
    found.head_state = recorded_walks.states("healthy", "up")[-1][1]
    return found


# -- data_survives -----------------------------------------------------------------------


def test_rows_that_all_survive_pass_with_what_they_cover(cell):
    out = CheckOutput()
    judge_rows(cell, out, walk(), ledger_of(row("Item", "a1", 1), row("Item", "b2", 2)))
    assert out.findings == []
    assert out.covered == "2 rows in 1 tables survived to head"


def test_a_dropped_table_a_lost_row_and_a_lagging_sequence_are_each_blamed(cell):
    written = [row("Item", "a1", 1), row("Tag", "a1", 2), row("Tag", "b2", 3)]
    losses = [
        Loss("Tag", written[1:], "table", "c3", "dropped"),
        Loss("Item", written[:1], "values", "b2", "name changed"),
        Loss("Item", written[:1], "column", "c3", "dropped", column="name"),
    ]
    lagging = {"Item": ("b2", "next id 1, highest 3")}
    out = CheckOutput()
    judge_rows(cell, out, walk(*losses, after=lagging), ledger_of(*written))
    found = [(f.kind, f.revision, f.blocking) for f in out.findings]
    assert found == [
        ("table_dropped", "c3", True),
        ("values_changed", "b2", True),
        ("column_dropped", "c3", False),  # the revision meant to drop it: a note
        ("sequence_behind", "b2", True),
    ]
    assert out.findings[0].message.startswith("Tag: 2 row(s) written at a1, b2 lost at c3")


def test_rows_that_could_not_be_written_leave_the_survival_unproven(cell):
    out = CheckOutput()
    ledger = ledger_of(row("Item", "a1", 1), uncovered={"Tag": "a unique key on a boolean"})
    with pytest.raises(CannotJudge, match=r"rows could not be written into 1 tables \(Tag\)"):
        judge_rows(cell, out, walk(), ledger)
    assert out.warnings == ["no rows could be written into Tag (a unique key on a boolean)"]
    with pytest.raises(CannotJudge, match="no table of the plugin schema took a row"):
        judge_rows(cell, CheckOutput(), walk(), ledger_of())


def test_an_upgrade_that_fails_only_with_rows_is_blamed_and_one_that_always_fails_is_not(cell):
    error = RuntimeError("null value in column count violates not-null constraint")
    failed = walk(failure=StepFailed("b2", True, error, [Step("a1", "a1", True, 0.1)]))
    out = CheckOutput()
    judge_rows(cell, out, failed, ledger_of(row("Item", "a1", 1)))
    (finding,) = out.findings
    assert (finding.kind, finding.revision) == ("fails_with_data", "b2")
    assert "upgrade of b2 fails once the tables hold rows: RuntimeError: null value" in (
        finding.message
    )
    cell.up_failed_at = "b2"  # upgrade_stepwise stopped there too, without rows
    with pytest.raises(CannotJudge) as caught:
        judge_rows(cell, CheckOutput(), failed, ledger_of())
    assert caught.value.because == "upgrade_stepwise"


def test_a_change_that_removes_every_fact_of_a_column_drops_it():
    (_, as_at_b2), (_, as_at_a1) = recorded_walks.states("healthy", "down")[:2]
    assert _dropped_columns(as_at_b2.changes_to(as_at_a1)) == {("Item", "count")}
    up = recorded_walks.states("healthy", "up")
    assert _dropped_columns(up[0][1].changes_to(up[1][1])) == set()  # b2 adds, drops nothing


# -- upgrade_from_release ----------------------------------------------------------------


PREVIOUS = PreviousRelease("0.9.0 on the index", version="0.9.0", head="b2")


def test_an_upgraded_release_with_another_schema_is_blamed_on_the_head(cell):
    _, at_b2 = recorded_walks.states("healthy", "up")[1]
    out = CheckOutput()
    judge_release(cell, out, PREVIOUS, walk(after=at_b2), ledger_of(row("Item", "a1", 1)))
    (finding,) = out.findings
    assert (finding.kind, finding.revision) == ("schema_differs", "c3")
    assert "- tables.Note.columns.text.type" in finding.detail

    same = CheckOutput()
    judge_release(
        cell, same, PREVIOUS, walk(after=cell.head_state), ledger_of(row("Item", "a1", 1))
    )
    assert same.findings == []
    assert same.covered.startswith("0.9.0 at b2 with 1 rows, then 0 revisions of this build")


def test_an_upgraded_release_is_unproven_without_rows_or_a_fresh_head(cell):
    with pytest.raises(CannotJudge, match="took no rows into any table"):
        judge_release(cell, CheckOutput(), PREVIOUS, walk(after=cell.head_state), ledger_of())
    cell.head_state = None  # the fresh upgrade from base never reached head
    with pytest.raises(CannotJudge) as caught:
        judge_release(cell, CheckOutput(), PREVIOUS, walk(after=None), ledger_of())
    assert caught.value.because == "upgrade_stepwise"
    lost = CheckOutput()  # rows lost are a failure, whatever the schema
    loss = Loss("Item", [row("Item", "a1", 1)], "rows", "c3", "deleted")
    judge_release(cell, lost, PREVIOUS, walk(loss), ledger_of(row("Item", "a1", 1)))
    assert [(f.kind, f.revision) for f in lost.findings] == [("rows_lost", "c3")]


def test_released_revisions_edited_removed_or_reparented_are_each_blamed(tmp_path, monkeypatch):
    released = write_plugin(tmp_path / "old", PluginSpec("released", healthy_revisions()))
    revisions = healthy_revisions()
    revisions[0] = Revision("a1", None, revisions[0].upgrade + "\nop.execute('SELECT 1')", "")
    revisions[1] = Revision("b2", "zz", revisions[1].upgrade, revisions[1].downgrade)
    revisions.append(Revision("zz", "a1", "pass", "pass"))
    previous = PreviousRelease(
        "given", version="0.9.0", alembic_dir=released / "_private" / "alembic"
    )
    cell = recorded_walks.cell_of(
        PluginSpec("released", revisions), tmp_path / "new", monkeypatch, previous=previous
    )
    result = run_one(BY_NAME["released_revisions_unchanged"], cell, {})
    assert result.status == Status.FAILED
    found = {(f.kind, f.revision) for f in result.findings}
    assert found == {("edited", "a1"), ("reparented", "b2")}
    edited = next(f for f in result.findings if f.kind == "edited")
    assert "+    op.execute('SELECT 1')" in edited.detail  # the diff, as code

    (released / "_private" / "alembic" / "versions" / "gone.py").write_text(
        "revision = 'gone'\ndown_revision = 'b2'\ndef upgrade():\n    pass\n"
    )
    result = run_one(BY_NAME["released_revisions_unchanged"], cell, {})
    assert ("removed", "gone") in {(f.kind, f.revision) for f in result.findings}


def test_released_revisions_cannot_be_judged_without_a_previous_release(cell):
    result = run_one(BY_NAME["released_revisions_unchanged"], cell, {})
    assert (result.status, result.reason) == (Status.NOT_RUN, "none given")


# -- migration_cost ----------------------------------------------------------------------


def test_the_strongest_lock_seen_is_kept_from_its_first_to_its_last_sample():
    held: dict[int, _Held] = {}
    keep_strongest(POSTGRESQL, held, [(7, "AccessShareLock")], 1.0)
    keep_strongest(POSTGRESQL, held, [(7, "AccessExclusiveLock"), (8, "RowShareLock")], 1.5)
    keep_strongest(POSTGRESQL, held, [(7, "RowExclusiveLock")], 2.0)
    assert held[7] == _Held("AccessExclusiveLock", 1.0, 2.0)
    assert held[8] == _Held("RowShareLock", 1.5, 1.5)
    exclusive = POSTGRESQL.exclusive_modes()
    locks = named_locks(held, {7: "Item"}, exclusive, {"Item": 1000})  # 8 is not the plugin's
    assert [(lock.relation, lock.mode, lock.rows, lock.exclusive) for lock in locks] == [
        ("Item", "AccessExclusiveLock", 1000, True)
    ]


def cost_of(cell, **limits) -> CheckOutput:
    cell.policy = Policy(cost=limits)
    out = CheckOutput()
    out.evidence = [
        RevisionEvidence("a1", "upgrade", 0.2, locks=[]),
        RevisionEvidence(
            "b2",
            "upgrade",
            3.5,
            rows=1000,
            locks=[LockHeld("Item", "AccessExclusiveLock", 3.2, 1000, True)],
            rewrites=["Item"],
        ),
    ]
    judge_cost(cell, out, 1000, "assumed")
    return out


def test_an_exclusive_lock_on_a_filled_table_is_a_note_until_the_policy_limits_it(cell):
    free = cost_of(cell)
    (note,) = free.findings
    assert (note.kind, note.revision, note.blocking) == ("exclusive_lock", "b2", False)
    assert "held AccessExclusiveLock on Item (1000 rows) for 3.200 s and rewrote it" in (
        note.message
    )
    assert "no [cost] limits in the policy, so nothing fails" in free.covered

    limited = cost_of(
        cell, max_access_exclusive_seconds=1, max_lock_seconds=2, max_revision_seconds=3
    )
    found = [(f.kind, f.revision, f.blocking) for f in limited.findings]
    assert found == [
        ("exclusive_lock", "b2", True),
        ("lock_time", "b2", True),
        ("slow_revision", "b2", True),
    ]
    assert cost_of(cell, max_revision_seconds=4).findings[0].blocking is False  # within it


# -- the history, and the offline scripts without a server ------------------------------


def test_two_heads_fail_the_history_naming_both(tmp_path, monkeypatch):
    spec = PluginSpec("twoheads", healthy_revisions())
    spec.revisions.append(Revision("c3", "a1", "pass", "pass"))
    cell = recorded_walks.cell_of(spec, tmp_path, monkeypatch)
    result = run_one(BY_NAME["single_head"], cell, {})
    assert (result.status, result.revision) == (Status.FAILED, "b2,c3")
    assert result.reason.startswith("2 heads: b2, c3.")
    healthy = recorded_walks.cell_of(
        PluginSpec("onehead", healthy_revisions()), tmp_path / "h", monkeypatch
    )
    assert run_one(BY_NAME["single_head"], healthy, {}).reason == "2 revisions, head b2"


def test_offline_scripts_render_and_parse_without_a_server_but_prove_nothing(tmp_path, monkeypatch):
    cell = recorded_walks.cell_of(PluginSpec("offline", healthy_revisions()), tmp_path, monkeypatch)
    cell.url = None  # no server was reached
    result = run_one(BY_NAME["offline_sql"], cell, {"single_head": judged("single_head")})
    assert result.status == Status.NOT_RUN
    assert result.reason.startswith("the scripts render and parse (")
    assert "applying them needs a live server" in result.reason
    upgrade = (tmp_path / "sql" / "upgrade.sql").read_text()
    assert 'CREATE SCHEMA IF NOT EXISTS "pl_offline"' in upgrade


def test_offline_scripts_that_cannot_be_parsed_are_blamed_on_their_revision(tmp_path, monkeypatch):
    revisions = healthy_revisions()
    revisions[1] = Revision("b2", "a1", 'op.execute("UPDATE x SET = 1")', "pass")
    cell = recorded_walks.cell_of(PluginSpec("unparsable", revisions), tmp_path, monkeypatch)
    cell.url = None
    result = run_one(BY_NAME["offline_sql"], cell, {"single_head": judged("single_head")})
    assert result.status == Status.FAILED
    (finding,) = result.findings
    assert (finding.kind, finding.revision) == ("unparsable", "b2")
    assert "UPDATE x SET = 1" in finding.detail


def test_a_downgrade_script_ends_at_the_highest_irreversible_revision(cell, tmp_path, monkeypatch):
    assert _lowest_reachable(cell) == "base"
    walk_spec = recorded_walks.spec("healthy")
    walk_spec.revisions[1].downgrade = "raise NotImplementedError()"
    stopping = recorded_walks.cell_of(walk_spec, tmp_path / "stops", monkeypatch)
    assert _lowest_reachable(stopping) == "b2"


def test_the_state_a_downgrade_script_must_reach_is_head_with_the_changes_above_undone(cell):
    up = recorded_walks.states("healthy", "up")
    previous = recorded_walks.base_state("healthy")
    for revision, state in up:
        cell.up_changes[revision] = previous.changes_to(state)
        previous = state
    assert _expected_at(cell, "b2") == up[1][1]
    assert _expected_at(cell, "a1") == up[0][1]
    assert _expected_at(cell, "base") == cell.base_state
    del cell.up_changes["c3"]  # a revision whose change was never recorded: nothing to expect
    assert _expected_at(cell, "b2") is None


@pytest.mark.parametrize(
    ("sql", "creates"),
    [
        ("CREATE SCHEMA pl_x", True),
        ('CREATE SCHEMA IF NOT EXISTS "pl_x"', True),
        ("EXEC('CREATE SCHEMA [pl_x]')", True),
        ("CREATE SCHEMA pl_x_archive", False),
        ("CREATE TABLE pl_x.t (id int)", False),
    ],
)
def test_a_script_creates_its_schema_only_by_that_exact_name(sql, creates):
    assert creates_schema([Statement(sql, 1, None)], "pl_x") is creates


def test_the_seeds_ledger_crosses_processes_unchanged():
    """The seed's ledger crosses processes as JSON: what goes out comes back the same."""
    ledger = ledger_of(row("Item", "a1", 1), uncovered={"Tag": "why"})
    again = synthetic.Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert again.rows == ledger.rows and again.uncovered == ledger.uncovered


# -- model_matches_ddl: Alembic's comparison, said in one sentence each ---------------------


def test_each_difference_alembic_finds_is_one_sentence_naming_its_object(tmp_path):
    """Alembic's own comparison of a model with a real (SQLite) database: every kind of
    difference it reports reads as a sentence, with the table, kind and name blame needs."""
    database = sa.create_engine(f"sqlite:///{tmp_path / 'drift.db'}")
    with database.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE item (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(20), n INT)")
        )
        conn.execute(sa.text("CREATE INDEX idx_item_n ON item (n)"))
        conn.execute(sa.text("CREATE TABLE gone (id INTEGER NOT NULL PRIMARY KEY)"))
    model = sa.MetaData()
    sa.Table(
        "item",
        model,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
        sa.Column("note", sa.Text),
    )
    sa.Table("new", model, sa.Column("id", sa.Integer, primary_key=True))
    with database.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        rendered = {
            render_difference(d, conn.dialect) for d in _flatten(compare_metadata(context, model))
        }
    database.dispose()
    assert rendered == {
        ("table new is in the model, not in the database", "new", None, None),
        ("table gone is in the database, not in the model", "gone", None, None),
        ("column item.note is in the model, not in the database", "item", "columns", "note"),
        ("column item.n is in the database, not in the model", "item", "columns", "n"),
        (
            "index idx_item_n on item(n) is in the database (from a migration), not in the model",
            "item",
            "indexes",
            "idx_item_n",
        ),
        (
            "column item.name: type is VARCHAR(20) in the database, VARCHAR(50) in the model",
            "item",
            "columns",
            "name",
        ),
    }
