"""The unit tier holds no test that needs a server, and no fixture that reaches one hides.

A fixture that starts or reaches something real (a database server, a Docker
engine, a package index, a tool run as a process) asks for the ``live``
fixture; ``conftest.py`` marks every test whose fixtures reach it ``live``, and
``-m "not live"`` leaves those out. Two things hold that together: what a
unit-tier run selects holds no test whose fixtures reach ``live``; and no
fixture of the suite that starts a process, a provider or a Docker client
does so without reaching ``live``.
"""

from __future__ import annotations

import ast
import functools
import os

import pytest
from helpers import ROOT

TESTS = ROOT / "tests"
# What a fixture calls to start or reach something real (processes, servers, engines).
REACHES = {
    "Popen",
    "run",  # subprocess.run
    "cli",
    "matrix_cli",
    "bench_cli",
    "NativeProvider",
    "DockerProvider",
    "docker_client",
}


def test_a_unit_tier_selection_holds_no_test_that_reaches_a_live_fixture(request):
    """``-m "not live"`` selects the tests without the mark: none of them may reach ``live``.

    Read from this very run's collection (every worker of a parallel run
    collects the whole suite): the tests ``-m "not live"`` keeps are those the
    collection left unmarked.
    """
    items = request.session.items
    unit = [item for item in items if item.get_closest_marker("live") is None]
    reaching = [item.nodeid for item in unit if "live" in getattr(item, "fixturenames", ())]
    assert reaching == []


def test_every_fixture_that_starts_or_reaches_something_real_asks_for_live():
    fixtures = suite_fixtures()
    assert {"pg_server_url", "pypi", "postgres_url"} <= {name for _, name in fixtures}
    hiding = sorted(
        f"{module}::{name}"
        for (module, name), (_, calls) in fixtures.items()
        if calls & REACHES and "live" not in closure(module, name, fixtures)
    )
    assert hiding == [], f"these fixtures reach something real without asking for live: {hiding}"


@pytest.mark.parametrize("fixture", ["pg_server_url", "pypi", "public_index", "postgres_url"])
def test_the_suites_roots_reach_live(fixture):
    assert "live" in closure("conftest", fixture, suite_fixtures())


@functools.cache
def suite_fixtures() -> dict[tuple[str, str], tuple[list[str], set[str]]]:
    """(module, fixture) -> (the fixtures it asks for, the names it calls), read from the code."""
    found = {}
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.FunctionDef) and any(map(_is_fixture, node.decorator_list)):
                arguments = [a.arg for a in node.args.args]
                found[(path.stem, node.name)] = (arguments, _calls(node))
    return found


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def _calls(function: ast.FunctionDef) -> set[str]:
    """The names a function calls (``f(...)``, ``x.f(...)``), nested functions included."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def closure(module: str, name: str, fixtures: dict, seen: set[str] | None = None) -> set[str]:
    """Every fixture ``name`` asks for, however indirectly: its module's, else conftest's."""
    seen = set() if seen is None else seen
    own = (module, name) if (module, name) in fixtures else ("conftest", name)
    for argument in fixtures.get(own, ([], set()))[0]:
        if argument not in seen:
            seen.add(argument)
            closure(own[0], argument, fixtures, seen)
    return seen


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
