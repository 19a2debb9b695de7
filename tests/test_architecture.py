"""The layout's bars, held: no import cycle, no stage importing a later one, no long module.

The import graph is read from the source (``ast``), imports inside functions
and under ``TYPE_CHECKING`` included: a cycle hidden in a function is still
a cycle. The pipeline's stages are packages, in order (define, provide,
install, check, bench, run, report, gate, publish); the foundations below
them may be used by every stage; ``cli`` is the edge and may import
everything. The site's modules mirror the stages inside ``matrix/site``, each
ranked as the stage it belongs to (docs/development.md says why).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "matrix"
MAX_LINES = 600
STAGES = ("define", "provide", "install", "check", "bench", "run", "report", "gate", "publish")
FOUNDATIONS = frozenset(
    {
        "matrix",
        "matrix.bytecode",
        "matrix.catalogue",
        "matrix.child",
        "matrix.documents",
        "matrix.engines",
        "matrix.forks",
        "matrix.errors",
        "matrix.masking",
        "matrix.processes",
        "matrix.protocol",
        "matrix.results",
        "matrix.settings",
        "matrix.site",
    }
)
EDGE = ("matrix.cli", "matrix.__main__")
SITE = {  # each site module as the stage it is the site's version of
    "catalogue": None,  # the site's vocabulary, as matrix.catalogue
    "results": None,  # the site's typed results, as matrix.results
    "sitefile": "define",
    "environment": "install",
    "previous": "check",  # the previous release installed in the site's database
    "rehearsal": "check",
    "checks": "check",
    "process": "check",
    "runner": "run",
    "reports": "report",
    "gate": "gate",
}


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph(found: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the harness modules it imports anywhere in its file."""
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in found:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def rank(module: str) -> int:
    """0 for a foundation, 1 to 9 for the stages in order, 10 for the edge."""
    if module.startswith(EDGE):
        return len(STAGES) + 1
    parts = module.split(".")
    if len(parts) > 2 and parts[1] == "site":
        stage = SITE[parts[2]]
        return 0 if stage is None else STAGES.index(stage) + 1
    if len(parts) > 1 and parts[1] in STAGES:
        return STAGES.index(parts[1]) + 1
    top = ".".join(parts[:2])
    if top in FOUNDATIONS:
        return 0
    raise AssertionError(
        f"{module} is in no stage: move it into one of matrix/{{{','.join(STAGES)}}}/, "
        "or add it to FOUNDATIONS (or SITE) here and to docs/development.md"
    )


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if rank(target) > rank(module)
    )


def test_the_harness_has_no_import_cycle():
    assert cycles(import_graph(modules())) == []


def test_no_stage_imports_a_later_stage():
    assert upward(import_graph(modules())) == []


@pytest.mark.parametrize(
    "path", sorted(modules().values()), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_is_over_600_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines: split it by concern"


def test_the_bars_catch_what_they_are_for(tmp_path):
    """A cycle through a function-level import, an upward import and an unplaced module."""
    root = tmp_path / "matrix"
    (root / "define").mkdir(parents=True)
    (root / "gate").mkdir()
    (root / "__init__.py").write_text("")
    (root / "define" / "__init__.py").write_text("")
    (root / "gate" / "__init__.py").write_text("")
    (root / "define" / "targets.py").write_text("def late():\n    from matrix.gate import x\n")
    (root / "gate" / "verdict.py").write_text("from matrix.define import targets\n")
    (root / "gate" / "__init__.py").write_text("from matrix.gate import verdict\n")
    (root / "stray.py").write_text("from matrix.define import targets\n")
    graph = import_graph(modules(root))
    assert cycles(graph) == [["matrix.define.targets", "matrix.gate", "matrix.gate.verdict"]]
    del graph["matrix.stray"]
    assert upward(graph) == ["matrix.define.targets imports matrix.gate"]
    with pytest.raises(AssertionError, match="matrix.stray is in no stage"):
        rank("matrix.stray")
