"""How a check is written, run and reported.

A check is one small function over the :class:`~matrix.checks.cell.Cell`
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

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from matrix import masking
from matrix.catalogue import BY_NAME, CHECKS, CheckInfo
from matrix.engines import error_text
from matrix.results import CheckResult, Finding, RevisionEvidence, Status


class CannotJudge(Exception):
    """The check cannot reach a verdict here; the message says why."""


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
            info.name, Status.NOT_RUN, reason=f"needs {', '.join(blocked)}, which did not pass"
        )
    out = CheckOutput()
    started = time.perf_counter()
    result = CheckResult(info.name, Status.PASSED)
    try:
        IMPLEMENTATIONS[info.name](cell, out)
    except CannotJudge as reason:
        result.status, result.reason = Status.NOT_RUN, masking.mask(str(reason))
    except Exception as error:  # noqa: BLE001 - reported as the harness's error, never hidden
        result.status = Status.ERROR
        result.reason = masking.mask(f"the check itself failed: {describe_error(error)}")
        result.detail = masking.mask(traceback.format_exc())
    result.duration_s = round(time.perf_counter() - started, 4)
    result.findings, result.warnings, result.evidence = out.findings, out.warnings, out.evidence
    if result.status == Status.PASSED:
        cell.waivers.apply(info.name, result.findings)
        result.settle_from_findings()
        if result.status == Status.PASSED:
            result.reason = out.covered
    elif result.status == Status.NOT_RUN:
        waived = cell.waivers.waive_not_run(info.name, result.reason)
        if waived:
            result.status, result.reason = Status.WAIVED, f"{result.reason} (waived: {waived})"
    result.detail = result.detail or "\n\n".join(
        f"[{f.kind}] {f.message}" + (f"\n{f.detail}" if f.detail else "") for f in out.findings
    )
    return result


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
    """``Type: message`` of an error, the driver's own message when wrapped."""
    if isinstance(error, str):
        return error
    original = getattr(error, "orig", None)
    text = error_text(error)
    name = type(original if original is not None else error).__name__
    return f"{name}: {text}" if text else name
