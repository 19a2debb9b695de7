"""The catalogue says what the checks do: every kind a check can report is listed for it.

The kinds a check can report are read from its code, not from a run: each
``out.find(KIND, ...)`` in ``matrix/check/checks``, followed through the helpers a
check calls (in its module or imported from another check module), with a
kind taken from a module-level dict (``KINDS[loss.kind]``) standing for every
value of that dict. A kind given any other way cannot be read, and fails the
test: a reader of ``python -m matrix list`` must be able to trust the table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from matrix import catalogue
from matrix.check.checks import IMPLEMENTATIONS

CHECKS_DIR = Path(__file__).resolve().parent.parent / "matrix" / "check" / "checks"


class _Module:
    """One check module: its functions, module-level dicts and imported names."""

    def __init__(self, path: Path) -> None:
        self.name = path.stem
        tree = ast.parse(path.read_text(), filename=str(path))
        self.functions = {
            node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)
        }
        self.dicts = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        self.imported = {
            alias.asname or alias.name: (node.module.rsplit(".", 1)[-1], alias.name)
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("matrix.check.checks.")
            for alias in node.names
        }


MODULES = {m.name: m for m in map(_Module, sorted(CHECKS_DIR.glob("*.py")))}


def kinds_reported(module: str, function: str, seen: set | None = None) -> set[str]:
    """The kinds ``function`` and every check-module function it calls can report."""
    seen = set() if seen is None else seen
    if (module, function) in seen:
        return set()
    seen.add((module, function))
    source = MODULES[module]
    kinds: set[str] = set()
    for call in ast.walk(source.functions[function]):
        if not isinstance(call, ast.Call):
            continue
        if (
            isinstance(call.func, ast.Attribute)
            and call.func.attr in ("find", "failed_step")
            and call.args
        ):
            kinds |= _kinds_of(source, call.args[0])
        if isinstance(call.func, ast.Name):
            name = call.func.id
            if name in source.functions:
                kinds |= kinds_reported(module, name, seen)
            elif name in source.imported:
                other, original = source.imported[name]
                if original in MODULES[other].functions:  # not a class such as CannotJudge
                    kinds |= kinds_reported(other, original, seen)
    return kinds


def _kinds_of(source: _Module, argument: ast.expr) -> set[str]:
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return {argument.value}
    if (
        isinstance(argument, ast.Subscript)
        and isinstance(argument.value, ast.Name)
        and argument.value.id in source.dicts
    ):
        return {ast.literal_eval(value) for value in source.dicts[argument.value.id].values}
    raise AssertionError(
        f"matrix/check/checks/{source.name}.py reports a kind the test cannot read: "
        f"{ast.unparse(argument)}; give it as a string or a module-level dict's value"
    )


def _module_of(check: str) -> str:
    return IMPLEMENTATIONS[check].__module__.rsplit(".", 1)[-1]


@pytest.mark.parametrize("check", [info.name for info in catalogue.CHECKS])
def test_every_kind_a_check_can_report_is_listed_for_it_and_nothing_else(check):
    reported = kinds_reported(_module_of(check), check)
    listed = {kind.kind for kind in catalogue.kinds_of(check)}
    assert reported - listed == set(), f"{check} reports kinds the catalogue does not list"
    assert listed - reported == set(), f"the catalogue lists kinds {check} cannot report"


def test_the_reading_follows_helpers_across_modules():
    """upgrade_from_release reports data_survives's losses through an imported helper."""
    assert {"table_dropped", "rows_lost", "column_dropped"} <= kinds_reported(
        "previous_release", "upgrade_from_release"
    )
    assert "lock_time" in kinds_reported("cost", "migration_cost")  # through judge_cost


def test_each_check_kind_pair_is_listed_once_and_names_a_check():
    pairs = [(k.check, k.kind) for k in catalogue.FINDING_KINDS]
    assert len(pairs) == len(set(pairs))
    assert {check for check, _ in pairs} <= set(catalogue.BY_NAME)
    assert catalogue.NOT_RUN_KIND in catalogue.KINDS


def test_list_prints_the_check_to_kinds_table(capsys):
    from matrix.cli import main

    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    assert "finding kinds, by check" in printed
    for kind in catalogue.FINDING_KINDS:
        assert kind.kind in printed and kind.check in printed


def test_the_readmes_checks_table_names_each_checks_kinds():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = {
        cells[0].strip("` "): {k.strip("` ") for k in cells[3].split(",") if k.strip()}
        for line in readme.split("| check | theory | required | finding kinds |", 1)[1]
        .split("\n\n", 1)[0]
        .splitlines()[2:]
        for cells in [line.strip("|").split("|")]
    }
    assert rows == {
        info.name: {k.kind for k in catalogue.kinds_of(info.name)} for info in catalogue.CHECKS
    }
