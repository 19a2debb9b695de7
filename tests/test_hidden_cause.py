"""Which error a failed revision is blamed with, when cleaning up after it failed too.

Recorded, not live: SQL Server ends a transaction that a statement dooms
(XACT_ABORT ON, or an uncommittable error), and the ROLLBACK that follows
fails with error 3903, "The ROLLBACK TRANSACTION request has no corresponding
BEGIN TRANSACTION" (https://learn.microsoft.com/en-us/sql/relational-databases/
errors-events/database-engine-events-and-errors-3000-to-3999). Babelfish does
the same for every error it maps to no SQL Server number; that case runs live
in test_babelfish.py (the tutorial's geometry revision, the benchmark).
"""

from __future__ import annotations

import pymssql
import pytest

from matrix.engines import hidden_cause


def _raised_while_handling(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except type(inner):
            raise outer  # noqa: B904 - the implicit context is what is under test
    except type(outer) as caught:
        return caught


def test_a_failed_rollback_does_not_hide_the_statement_that_failed():
    statement = pymssql.exceptions.OperationalError(8134, b"Divide by zero error encountered.")
    rollback = pymssql.exceptions.OperationalError(
        3903, b"The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION."
    )
    assert hidden_cause(_raised_while_handling(statement, rollback)) is statement


@pytest.mark.parametrize(
    "outer",
    [
        ValueError("the plugin's own message, raised on purpose"),
        pymssql.exceptions.OperationalError(3903, b"no corresponding BEGIN TRANSACTION"),
    ],
)
def test_only_a_database_error_raised_over_another_is_unwrapped(outer):
    plugin_error = KeyError("setting")
    assert hidden_cause(_raised_while_handling(plugin_error, outer)) is outer
    assert hidden_cause(outer) is outer  # nothing hidden: itself
