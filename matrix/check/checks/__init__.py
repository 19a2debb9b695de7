"""The checks: one small function each, registered under its catalogue name.

:mod:`matrix.catalogue` names them, states each theory in a line and fixes
their order; the modules here implement them, grouped by what they walk.
"""

from matrix.check.checks import (  # noqa: F401 - each module registers its checks
    cost,
    data,
    downgrade,
    history,
    models,
    names,
    offline,
    previous_release,
    upgrade,
)
from matrix.check.checks.base import IMPLEMENTATIONS, CannotJudge, CheckOutput, run_checks

__all__ = ["IMPLEMENTATIONS", "CannotJudge", "CheckOutput", "run_checks"]
