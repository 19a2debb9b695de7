"""The walk checks judge recorded walks: no server, the states PostgreSQL 15 really gave.

``recorded_walks`` holds a plugin's walk up and down as the catalogue showed
it after every step (recorded on a live server, and checked against it in the
live tier). Here the checks' own observers and verdicts take those states in
the order a walk delivers them, on the check process's real
:class:`~matrix.check.cell.Cell`, and each defect is fed to the check that
claims it: a downgrade that leaves a column, one that raises, a walk down
that never ran, a fresh install that differs.
"""

from __future__ import annotations

import py_compile

import pytest
import recorded_walks
from helpers import judged

from matrix.catalogue import BY_NAME
from matrix.check.cell import Cell
from matrix.check.checks.base import CheckOutput, run_one
from matrix.check.checks.downgrade import _DownObserver, judge_stop
from matrix.check.checks.models import blame, judge_fresh
from matrix.check.checks.upgrade import _UpObserver
from matrix.check.migrator import BASE, Step, StepFailed
from matrix.define.policy import Policy
from matrix.results import CheckResult, Status

UPGRADED = {"single_head": judged("single_head"), "upgrade_stepwise": judged("upgrade_stepwise")}


def step(revision: str, upgrade: bool) -> Step:
    return Step(revision, revision, upgrade, 0.01)


def walked_up(walk: str, cell, out: CheckOutput | None = None) -> CheckOutput:
    """``upgrade_stepwise``'s observer fed the recorded walk up, as the migrator calls it."""
    out = out or CheckOutput()
    cell.base_state = recorded_walks.base_state(walk)
    observer = _UpObserver(cell, out)
    for revision, state in recorded_walks.states(walk, "up"):
        observer.record(step(revision, True), state)
    cell.head_state = observer.state
    return out


def walked_down(walk: str, cell) -> CheckOutput:
    """``downgrade_stepwise``'s observer fed the recorded walk down, to base."""
    out = CheckOutput()
    observer = _DownObserver(cell, out)
    for revision, state in recorded_walks.states(walk, "down"):
        observer.record(step(revision, False), state)
    cell.down_reached, cell.down_steps = BASE, len(out.evidence)
    return out


@pytest.fixture
def healthy(tmp_path, monkeypatch):
    return recorded_walks.cell("healthy", tmp_path, monkeypatch)


@pytest.fixture
def leftover(tmp_path, monkeypatch):
    return recorded_walks.cell("leftover", tmp_path, monkeypatch)


# -- the walk up --------------------------------------------------------------------


def test_the_walk_up_keeps_each_revisions_change_and_says_it_in_one_line_per_object(healthy):
    out = walked_up("healthy", healthy)
    assert [(e.revision, e.action, e.changes) for e in out.evidence] == [
        ("a1", "upgrade", ["+ sequence Item_id_seq", "+ table Item"]),
        ("b2", "upgrade", ["+ column Item.count", "+ index Item.idx_Item_count"]),
        ("c3", "upgrade", ["+ sequence Note_id_seq", "+ table Note"]),
    ]
    assert list(healthy.up_changes) == ["a1", "b2", "c3"]
    assert healthy.head_state == recorded_walks.states("healthy", "up")[-1][1]


# -- the walk down: what each downgrade leaves --------------------------------------------


def test_what_each_downgrade_leaves_is_blamed_once_on_that_downgrade(leftover):
    """c3's no-op downgrade leaves the table Note, through every downgrade below it; b2's
    drops the index but not the column. Each is blamed for its own leftover only, and a1,
    whose downgrade is right, for nothing."""
    walked_up("leftover", leftover)
    walked_down("leftover", leftover)
    assert [r.revision for r in leftover.residues] == ["c3", "b2"]
    note, count = leftover.residues
    assert note.expected == count.expected == frozenset()
    assert {fact.split(".")[1] for fact in note.actual} == {"Note", "Note_id_seq"}
    assert 'tables.Item.columns.count.type = "integer"' in count.actual
    assert not any("Note" in fact or "idx_Item_count" in fact for fact in count.actual)

    result = run_one(BY_NAME["downgrade_leaves_no_trace"], leftover, UPGRADED)
    assert result.status == Status.FAILED
    found = [(f.kind, f.revision, f.blocking) for f in result.findings]
    assert found == [("residue", "c3", True), ("residue", "b2", True)]
    assert "(its downgrade() is a no-op: pass)" in result.findings[0].message
    assert "no-op" not in result.findings[1].message
    assert "+ tables.Item.columns.count.type" in result.findings[1].detail
    assert "downgrade() of b2" in result.findings[1].detail  # the code of the step to blame


def test_downgrades_that_restore_their_schema_leave_nothing_to_blame(healthy):
    walked_up("healthy", healthy)
    out = walked_down("healthy", healthy)
    assert healthy.residues == []
    assert [e.changes for e in out.evidence] == [[], [], []]  # nothing differs from expected
    result = run_one(BY_NAME["downgrade_leaves_no_trace"], healthy, UPGRADED)
    assert (result.status, result.reason) == (
        Status.PASSED,
        "every revision's downgrade restores its schema",
    )


def test_the_healthy_walk_down_gives_back_each_state_of_the_walk_up():
    """What the residue judgement rests on: PostgreSQL describes a schema the same way
    whether a revision's upgrade or the downgrade above it left it."""
    up = [recorded_walks.base_state("healthy")] + [
        s for _, s in recorded_walks.states("healthy", "up")
    ]
    down = [s for _, s in recorded_walks.states("healthy", "down")]
    assert down == list(reversed(up[:-1]))
    changes = [up[n].changes_to(up[n + 1]) for n in range(len(up) - 1)]
    assert [up[n + 1].revert(change) for n, change in enumerate(changes)] == up[:-1]


# -- a walk down that stopped ------------------------------------------------------------


def stopped_at(cell, revision: str, error: BaseException) -> CheckOutput:
    out = CheckOutput()
    done = [step(r, False) for r in reversed(cell.revisions) if r > revision]
    judge_stop(cell, out, StepFailed(revision, False, error, done))
    return out


@pytest.mark.parametrize(
    ("downgrade", "kind"),
    [
        ("raise NotImplementedError()", "irreversible"),
        ('op.execute("SELECT 1")\nraise NotImplementedError("halfway")', "downgrade_failed"),
    ],
    ids=["declared", "raised-from-code"],
)
def test_a_downgrade_that_raises_is_declared_only_when_it_does_nothing_else(
    tmp_path, monkeypatch, downgrade, kind
):
    walk = recorded_walks.spec("healthy")
    walk.revisions[1].downgrade = downgrade
    cell = recorded_walks.cell_of(walk, tmp_path, monkeypatch)
    out = stopped_at(cell, "b2", NotImplementedError("halfway"))
    (finding,) = out.findings
    assert (finding.kind, finding.revision) == (kind, "b2")
    assert (cell.down_reached, cell.down_steps) == ("b2", 1)  # c3 went down before it
    if kind == "irreversible":
        assert not finding.blocking
        assert out.covered == "1 revisions down to b2, which declares its downgrade irreversible"
    else:
        assert finding.blocking
        assert finding.message.startswith("downgrade b2 -> a1 failed: NotImplementedError")


@pytest.mark.parametrize(
    ("error", "kind"),
    [(NotImplementedError(), "irreversible"), (RuntimeError("broken"), "downgrade_failed")],
    ids=["not-implemented", "other-error"],
)
def test_a_revision_shipped_as_bytecode_is_judged_by_what_it_raised(
    tmp_path, monkeypatch, error, kind
):
    """No source to read: only NotImplementedError declares the downgrade irreversible."""
    cell = recorded_walks.cell("healthy", tmp_path, monkeypatch)
    versions = cell.plugin.alembic_dir / "versions"
    py_compile.compile(str(versions / "b2.py"), cfile=str(versions / "b2.pyc"), doraise=True)
    (versions / "b2.py").unlink()
    cell = Cell(cell.plugin, cell.engine, cell.target, cell.url, cell.sql_dir)  # read anew
    assert cell.downgrade_kind("b2") == "unknown"
    (finding,) = stopped_at(cell, "b2", error).findings
    assert (finding.kind, finding.revision) == (kind, "b2")


def test_a_walk_down_that_never_ran_or_never_stepped_leaves_nothing_to_judge(healthy):
    for name in ("downgrade_leaves_no_trace", "reupgrade"):
        result = run_one(BY_NAME[name], healthy, UPGRADED)
        assert (result.status, result.reason) == (Status.NOT_RUN, "the walk down did not run")

    stopped_at(healthy, "c3", RuntimeError("broken"))
    results = {**UPGRADED, "downgrade_stepwise": judged("downgrade_stepwise")}
    result = run_one(BY_NAME["reupgrade"], healthy, results)
    assert result.status == Status.NOT_RUN
    assert result.blocked_by == "downgrade_stepwise"
    assert "no downgrade step ran: the first, of c3, does not" in result.reason


def test_the_waiver_of_a_broken_first_downgrade_covers_the_checks_it_left_without_input(
    tmp_path, monkeypatch
):
    policy = Policy.from_dict(
        {"waivers": [{"check": "downgrade_stepwise", "reason": "c3 is rolled back by hand"}]}
    )
    cell = recorded_walks.cell("healthy", tmp_path, monkeypatch, policy=policy)
    out = stopped_at(cell, "c3", RuntimeError("broken"))
    down = CheckResult("downgrade_stepwise", Status.PASSED, findings=out.findings)
    cell.waivers.apply("downgrade_stepwise", down.findings)
    down.settle_from_findings()
    assert down.status == Status.WAIVED
    result = run_one(BY_NAME["downgrade_leaves_no_trace"], cell, {**UPGRADED, down.name: down})
    assert result.status == Status.WAIVED
    assert "covered by the waiver of downgrade_stepwise: c3 is rolled back by hand" in (
        result.reason
    )


# -- the models and the fresh install --------------------------------------------------


def test_drift_is_blamed_on_the_last_revision_that_touched_the_object(healthy):
    walked_up("healthy", healthy)
    assert blame(healthy, "Item", "columns", "count") == "b2"
    assert blame(healthy, "Item", "indexes", "idx_Item_count") == "b2"
    assert blame(healthy, "Note", "columns", "text") == "c3"
    assert blame(healthy, "Item", None, None) == "b2"  # the table: b2 changed it last
    assert blame(healthy, "Item", "columns", "coun") is None  # not a prefix of count
    assert blame(healthy, "Tag", None, None) is None


@pytest.mark.parametrize("blocking", [True, False], ids=["create_all", "migrations"])
def test_a_fresh_install_that_differs_fails_only_where_peek_installs_that_way(healthy, blocking):
    walked_up("healthy", healthy)
    _, without_note = recorded_walks.states("healthy", "up")[1]  # as at b2: no table Note
    out = CheckOutput()
    judge_fresh(healthy, out, without_note, blocking, "why")
    (finding,) = out.findings
    assert (finding.kind, finding.revision, finding.blocking) == (
        "fresh_install_differs",
        "c3",
        blocking,
    )
    assert "- tables.Note.columns.text.type" in finding.detail

    same = CheckOutput()
    judge_fresh(healthy, same, healthy.head_state, blocking, "why")
    assert same.findings == []
    assert same.covered == "why; create_all + stamp head gives the migrated schema"
