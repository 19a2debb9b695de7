"""A finding as a reader gets it: SQL names, said once, with what to do. Unit tier.

The errors are SQLAlchemy's own, raised for real (compiling a DROP
CONSTRAINT of a constraint without a name, as ``op.drop_constraint(None,
...)`` does in peek-plugin-chat 5.1.6); the reports are built from typed
results, as the runner builds them.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from helpers import judged, target
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import DropConstraint

from matrix.check.checks.base import describe_error, sql_name
from matrix.report.why import explain
from matrix.results import CODE_MARK, CheckResult, Finding, Status

PG = "pg15-postgis33"


def compile_error(element) -> BaseException:
    with pytest.raises(sa.exc.CompileError) as caught:
        DropConstraint(element).compile(dialect=postgresql.dialect())
    return caught.value


def test_an_unnamed_constraint_is_named_by_its_table_not_a_python_repr():
    table = sa.Table("MessageReadPayloadTuple", sa.MetaData(), schema="pl_chat")
    constraint = sa.ForeignKeyConstraint([], [], name=None)
    table.append_constraint(constraint)
    error = compile_error(constraint)
    assert "object at 0x" in str(error)  # what SQLAlchemy says
    text = describe_error(error)
    assert "foreign key without a name on pl_chat.MessageReadPayloadTuple" in text, text
    assert not re.search(r"0x[0-9a-f]+|<sqlalchemy", text), text


def test_constraints_and_indexes_read_as_their_table_columns_and_referenced_table():
    metadata = sa.MetaData(schema="pl_x")
    parent = sa.Table("Parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
    child = sa.Table(
        "Child",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parentId", sa.Integer),
        sa.ForeignKeyConstraint(["parentId"], [parent.c.id], name="fk_child_parent"),
        sa.UniqueConstraint("parentId"),
    )
    index = sa.Index("idx_child_parent", child.c.parentId)
    foreign = next(c for c in child.constraints if isinstance(c, sa.ForeignKeyConstraint))
    unique = next(c for c in child.constraints if isinstance(c, sa.UniqueConstraint))
    assert sql_name(foreign) == (
        "foreign key fk_child_parent on pl_x.Child(parentId) referencing pl_x.Parent"
    )
    assert sql_name(unique) == "unique constraint without a name on pl_x.Child(parentId)"
    assert sql_name(index) == "index idx_child_parent on pl_x.Child(parentId)"
    assert sql_name(child.c.parentId) == "pl_x.Child.parentId"


def test_no_memory_address_survives_in_any_error():
    class Thing:
        pass

    text = describe_error(ValueError(f"cannot use {Thing()!r} here"))
    assert text == "ValueError: cannot use <a Thing> here", text


# -- the account both reports print -------------------------------------------------------


def failing(name: str, *findings: Finding) -> CheckResult:
    return judged(name, *findings)


def test_a_message_is_said_once_and_the_code_once_per_revision():
    code = f"{CODE_MARK}upgrade() of r2 ---\nop.execute('TRUNCATE x')"
    lost = [Finding("rows_lost", f"T{i}: 3 rows lost at r2", "r2", detail=code) for i in range(3)]
    result = target(
        PG, with_checks=[*_passed_but("data_survives"), failing("data_survives", *lost)]
    )
    why = explain(result)
    assert why.reason == ""  # the target's reason is the first finding again
    (check,) = why.open_checks
    assert check.reason == ""  # so is the check's
    (blame,) = check.blames
    assert blame.code == code and len(blame.findings) == 3
    assert check.advice == [("rows_lost", check.advice[0][1])]
    assert check.entries == [
        '[[waive]]\ncheck = "data_survives"\nkind = "rows_lost"\nrevision = "r2"\n'
        'reason = "<why this is acceptable on every site>"'
    ]


def test_a_waiver_reason_is_counted_once_and_its_findings_still_shown():
    lost = [Finding("rows_lost", f"T{i} lost", "r2", waived="rebuilt") for i in range(4)]
    result = target(
        PG, with_checks=[*_passed_but("data_survives"), failing("data_survives", *lost)]
    )
    (check,) = explain(result).open_checks
    assert check.check.status == Status.WAIVED
    assert check.waivers == [("rebuilt", 4)]
    assert [f.message for f in check.blames[0].findings] == [f.message for f in lost]
    assert check.entries == [] and check.advice == []


def test_a_check_that_only_follows_another_is_pointed_there_not_offered_a_waiver():
    broken = failing("downgrade_stepwise", Finding("downgrade_failed", "no name", "r2"))
    follows = CheckResult(
        "reupgrade", Status.NOT_RUN, reason="no downgrade step ran", blocked_by="downgrade_stepwise"
    )
    cannot = CheckResult("offline_sql", Status.NOT_RUN, reason="env.py has no offline branch")
    checks = [*_passed_but("downgrade_stepwise", "reupgrade", "offline_sql"), broken]
    why = explain(target(PG, with_checks=[*checks, follows, cannot]))
    by_name = {c.check.name: c for c in why.open_checks}
    assert by_name["reupgrade"].entries == []
    assert "Follows downgrade_stepwise" in by_name["reupgrade"].advice[0][1]
    assert by_name["offline_sql"].entries == [
        '[[waive]]\ncheck = "offline_sql"\nkind = "not_run"\n'
        'reason = "<why this is acceptable on every site>"'
    ]


def _passed_but(*names: str) -> list[CheckResult]:
    from helpers import checks

    return checks(**dict.fromkeys(names))
