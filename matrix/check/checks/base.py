"""How a check is written, run and reported.

A check is one small function over the :class:`~matrix.check.cell.Cell`
whose docstring states its theory at length (the one-line theory lives in
:mod:`matrix.catalogue`). It reports through a :class:`CheckOutput`:

- ``out.find(...)`` records a finding: blocking ones fail the check (unless
  the plugin's policy acknowledges them later), the others are notes;
- ``out.warn(...)`` adds a warning shown beside the verdict;
- ``out.evidence`` collects what each revision did and cost;
- raising :class:`CannotJudge` makes the check ``not_run`` with the reason:
  a check that cannot judge never passes.

Any other exception is a harness error: ``error``, with its cause in one
sentence (the traceback goes to the detail, shown with ``-v``).
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from matrix import masking
from matrix.catalogue import ADVICE, BY_NAME, CHECKS, CheckInfo
from matrix.check.migrator import StepFailed
from matrix.engines import error_text
from matrix.results import CODE_MARK, CheckResult, Finding, RevisionEvidence, Status


class CannotJudge(Exception):
    """The check cannot reach a verdict here; the message says why.

    ``because`` names the earlier check whose finding took away what this
    one judges (the walk down stopped at its first step): when the policy
    waives that finding, its waiver covers this check too.
    """

    def __init__(self, reason: str, because: str | None = None) -> None:
        super().__init__(reason)
        self.because = because


@dataclass
class CheckOutput:
    """What a check reports while it runs."""

    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evidence: list[RevisionEvidence] = field(default_factory=list)
    covered: str = ""  # one line on what a pass covered, when that is less than everything

    def find(
        self,
        kind: str,
        message: str,
        *,
        revision: str | None = None,
        detail: str = "",
        blocking: bool = True,
    ) -> None:
        self.findings.append(
            Finding(kind, masking.mask(message), revision, masking.mask(detail), blocking)
        )

    def failed_step(self, kind: str, failure: StepFailed, said: str) -> None:
        """A migration step that raised: what was tried, the error, blamed on its revision."""
        self.find(kind, f"{said}: {describe_error(failure.error)}", revision=failure.revision)

    def warn(self, message: str) -> None:
        self.warnings.append(masking.mask(message))


CheckFunction = Callable[..., None]
IMPLEMENTATIONS: dict[str, CheckFunction] = {}


def check(function: CheckFunction) -> CheckFunction:
    """Register a check under its function's name, which the catalogue must know."""
    if function.__name__ not in BY_NAME:
        raise LookupError(f"check {function.__name__} is not in matrix.catalogue")
    IMPLEMENTATIONS[function.__name__] = function
    return function


def run_one(info: CheckInfo, cell, results: dict[str, CheckResult]) -> CheckResult:
    """Run one check, unless it needs a live server or a check that did not pass."""
    if info.live and not cell.live:
        return CheckResult(info.name, Status.NOT_RUN, reason="no live server was reached")
    blocked = [
        n
        for n in info.needs
        if results.get(n) is None or results[n].status not in (Status.PASSED, Status.WAIVED)
    ]
    if blocked:
        return CheckResult(
            info.name,
            Status.NOT_RUN,
            reason=f"needs {', '.join(blocked)}, which did not pass",
            blocked_by=blocked[0],
        )
    out = CheckOutput()
    started = time.perf_counter()
    result = CheckResult(info.name, Status.PASSED)
    try:
        IMPLEMENTATIONS[info.name](cell, out)
    except CannotJudge as reason:
        result.status, result.reason = Status.NOT_RUN, masking.mask(str(reason))
        result.blocked_by = reason.because
    except Exception as error:  # noqa: BLE001 - reported as the harness's error, never hidden
        result.status = Status.ERROR
        result.reason = masking.mask(f"the check itself failed: {describe_error(error)}")
        result.detail = masking.mask(traceback.format_exc())
    result.duration_s = round(time.perf_counter() - started, 4)
    result.findings, result.warnings, result.evidence = out.findings, out.warnings, out.evidence
    _attach_code(cell, result.findings)
    if result.status == Status.PASSED:
        cell.waivers.apply(info.name, result.findings)
        result.settle_from_findings()
        if result.status == Status.PASSED:
            result.reason = out.covered
    elif result.status == Status.NOT_RUN:
        waived = cell.waivers.waive_not_run(info.name, result.reason) or _covered(
            result.blocked_by, results
        )
        if waived:
            result.status, result.reason = Status.WAIVED, f"{result.reason} (waived: {waived})"
    # Every finding in one text, for readers of one field (JUnit's failure message).
    result.detail = result.detail or "\n\n".join(
        f"[{f.kind}] {f.message}" + (f"\n{f.detail}" if f.detail else "") for f in out.findings
    )
    return result


def _covered(because: str | None, results: dict[str, CheckResult]) -> str | None:
    """The waiver that covers a check left without anything to judge by a waived finding.

    When the finding that stopped an earlier walk is acknowledged (a downgrade
    the maintainers know is broken), the checks that judge what that walk
    would have reached have nothing left to judge: the same waiver covers them.
    """
    earlier = results.get(because) if because else None
    if earlier is None or earlier.status != Status.WAIVED:
        return None
    reasons = sorted({f.waived for f in earlier.findings if f.blocking and f.waived})
    if not reasons:
        return None
    return f"covered by the waiver of {because}: {'; '.join(reasons)}"


def _attach_code(cell, findings: list[Finding]) -> None:
    """Give every finding blamed on one revision the code and SQL of the step that caused it:
    the downgrade for what a downgrade did, the upgrade for the rest."""
    for finding in findings:
        kind = ADVICE.get(finding.kind)
        if kind is None or finding.revision not in cell.revisions or CODE_MARK in finding.detail:
            continue
        code = cell.step_code(finding.revision, upgrade=kind.step == "upgrade")
        finding.detail = masking.mask(f"{finding.detail.rstrip()}\n{code}".strip())


def run_checks(
    cell,
    names: tuple[str, ...],
    on_start: Callable[[str], None],
    on_done: Callable[[CheckResult], None],
) -> list[CheckResult]:
    """Run the named checks in catalogue order; a failure never stops the others."""
    results: dict[str, CheckResult] = {}
    for info in CHECKS:
        if info.name not in names:
            continue
        on_start(info.name)
        results[info.name] = run_one(info, cell, results)
        on_done(results[info.name])
    return list(results.values())


def describe_error(error: BaseException | str) -> str:
    """``Type: message`` of an error, the driver's own message when wrapped.

    Python's own spelling of SQLAlchemy's schema objects (``ForeignKeyConstraint(<...
    object at 0x7f...>, ...)``) is replaced by their SQL names, read from the
    objects on the error's stack; no memory address is left.
    """
    if isinstance(error, str):
        return error
    original = getattr(error, "orig", None)
    text = error_text(error)
    name = type(original if original is not None else error).__name__
    for spelled, sql in _schema_objects(error).items():
        text = text.replace(spelled, sql)
    text = _ADDRESS.sub(lambda m: f"<a {m.group(1).rsplit('.', 1)[-1]}>", text)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    return f"{name}: {text}" if text else name


_ADDRESS = re.compile(r"<(\S+?) object at 0x[0-9a-fA-F]+>")
_SCHEMA_ITEMS = (sa.Table, sa.Column, sa.Index, sa.Constraint)


def _schema_objects(error: BaseException) -> dict[str, str]:
    """``repr`` -> SQL name of each table, column, index and constraint on the error's stack."""
    found: dict[str, str] = {}
    trace = error.__traceback__
    while trace is not None:
        for value in list(trace.tb_frame.f_locals.values()):
            for item in (value, getattr(value, "element", None)):  # DDL elements wrap theirs
                if isinstance(item, _SCHEMA_ITEMS):
                    try:
                        found.setdefault(repr(item), sql_name(item))
                    except Exception:  # noqa: BLE001, S112 - a half-built object: keep its repr
                        continue
        trace = trace.tb_next
    return found


def sql_name(item) -> str:
    """A table, column, index or constraint as SQL names it: table, columns, referenced table."""
    if isinstance(item, sa.Table):
        return f"{item.schema}.{item.name}" if item.schema else item.name
    if isinstance(item, sa.Column):
        table = getattr(item, "table", None)
        return f"{sql_name(table)}.{item.name}" if table is not None else item.name
    table = getattr(item, "table", None)
    on = f" on {sql_name(table)}" if isinstance(table, sa.Table) else ""
    columns = [c.name for c in getattr(item, "columns", [])] or getattr(item, "column_keys", [])
    listed = f"({', '.join(columns)})" if columns else " (no columns given)"
    name = item.name if isinstance(item.name, str) else None
    called = f"{name}" if name else "without a name"
    if isinstance(item, sa.Index):
        return f"index {called}{on}{listed}"
    if isinstance(item, sa.ForeignKeyConstraint):
        referred = sorted({e.target_fullname.rsplit(".", 1)[0] for e in item.elements})
        to = f" referencing {', '.join(referred)}" if referred else ""
        return f"foreign key {called}{on}{listed}{to}"
    kind = {
        sa.PrimaryKeyConstraint: "primary key",
        sa.UniqueConstraint: "unique constraint",
        sa.CheckConstraint: "check constraint",
    }.get(type(item), "constraint")
    return f"{kind} {called}{on}{listed}"
