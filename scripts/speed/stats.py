"""Rounds into figures: median, min and max of each number, and the tables that show them.

Medians, because a 2-core machine shared with other work has outliers that
a mean would carry; min and max beside them, so a reader sees the spread
instead of trusting one number.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    """One figure over the rounds."""

    median: float
    min: float
    max: float
    values: tuple[float, ...]

    def to_dict(self) -> dict:
        found = asdict(self)
        found["values"] = [round(v, 4) for v in self.values]
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in found.items()}


def summarize(rounds: list[dict[str, float]]) -> dict[str, Summary]:
    """Key by key over the rounds, in the first round's order; keys some rounds lack too."""
    keys: list[str] = []
    for figures in rounds:
        keys += [k for k in figures if k not in keys]
    found = {}
    for key in keys:
        values = tuple(r[key] for r in rounds if key in r)
        found[key] = Summary(statistics.median(values), min(values), max(values), values)
    return found


def ratio(numerator: Summary | None, denominator: Summary | None) -> float | None:
    """The ratio of two medians; None when either is missing or zero."""
    if numerator is None or denominator is None or not denominator.median:
        return None
    return numerator.median / denominator.median


def table(title: str, columns: dict[str, dict[str, Summary]], unit_of=lambda key: "s") -> str:
    """A plain-text table: one row per figure, median (min-max) per column.

    Plain text, not rich: the output is meant to be pasted into an issue.
    """
    keys: list[str] = []
    for summaries in columns.values():
        keys += [k for k in summaries if k not in keys]
    width = max([len(k) for k in keys] + [len(title)]) + 2
    wide = max([26] + [len(name) + 2 for name in columns])
    lines = [title.ljust(width) + "".join(f"{name:>{wide}}" for name in columns)]
    for key in keys:
        cells = []
        for summaries in columns.values():
            found = summaries.get(key)
            cells.append(f"{show(found, unit_of(key)):>{wide}}" if found else f"{'-':>{wide}}")
        lines.append(key.ljust(width) + "".join(cells))
    return "\n".join(lines)


def show(summary: Summary, unit: str = "s") -> str:
    """``12.3 (11.9-13.0) s``: the median, then the range."""
    digits = 1 if abs(summary.median) >= 10 else 2
    return f"{summary.median:.{digits}f} ({summary.min:.{digits}f}-{summary.max:.{digits}f}) {unit}"
