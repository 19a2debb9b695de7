"""Helpers shared by the tests: the CLI as a user runs it, and reports built from typed results.

Targets are settled by the runner's own rule (:meth:`TargetResult.settle`),
so a report built here is one the matrix could have written; a test that
wants a forged one edits it afterwards, as a hand would edit compat.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from matrix import catalogue
from matrix.define.targets import load_matrix
from matrix.gate import Build, Evidence
from matrix.results import (
    CheckResult,
    Finding,
    PluginInfo,
    Provenance,
    RunReport,
    Status,
    TargetResult,
)

ROOT = Path(__file__).resolve().parent.parent
MATRIX = load_matrix()
SHA = "a" * 64
COMMIT = "c0ffee" * 6 + "c0ff"
BUILD = Build(Path("dist/peek_plugin_tutorial-1.0.0-py3-none-any.whl"), SHA, COMMIT)
TREE = "plugin_under_test"
# A published plugin, as a requirement: fetched from an index, built from no tree here.
PUBLISHED = Provenance(
    "requirement",
    requirement="peek-plugin-chat==5.1.6",
    index="http://127.0.0.1:3141/simple/",
    file="peek-plugin-chat-5.1.6.tar.gz",
    sha256="e" * 64,
)


def judged(name: str, *findings: Finding) -> CheckResult:
    """A check that ran, its status settled from its findings (passed when it has none)."""
    check = CheckResult(name, Status.PASSED, findings=list(findings))
    check.settle_from_findings()
    return check


def checks(**replaced: CheckResult | None) -> list[CheckResult]:
    """Every required check, passed, except those ``replaced`` (None leaves one out)."""
    found = [replaced.get(name, judged(name)) for name in catalogue.REQUIRED]
    return [check for check in found if check is not None]


def target(
    target_id: str,
    *,
    reached: bool = True,
    with_checks: list[CheckResult] | None = None,
    fatal: dict[str, str] | None = None,
    reason: str = "",
) -> TargetResult:
    """A target of the real matrix with these checks (all passed by default), settled."""
    spec = next(t for t in MATRIX.targets if t.id == target_id)
    result = TargetResult(
        spec.id,
        spec.engine,
        spec.label,
        spec.required,
        reason=reason,
        reached=reached,
        fatal=fatal,
        checks=checks() if with_checks is None else with_checks,
    )
    result.settle()
    return result


def unreached(target_id: str, reason: str = "no server could serve it") -> TargetResult:
    """A target no server answered: ``not_run``, as the runner leaves it."""
    return target(target_id, reached=False, with_checks=[], reason=reason)


def report(
    *replaced: TargetResult,
    absent: tuple[str, ...] = (),
    sha: str | None = SHA,
    commit: str | None = COMMIT,
    source: Provenance | None = None,
    run_options: tuple[str, ...] = (),
) -> RunReport:
    """A run of the real matrix: every target passed, except those replaced or absent.

    By default the plugin is the tutorial's wheel built from ``TREE`` at ``commit``.
    """
    given = {t.id: t for t in replaced}
    targets = [given.get(t.id) or target(t.id) for t in MATRIX.targets if t.id not in absent]
    wheel = str(BUILD.wheel) if sha else None
    source = source or Provenance(
        "wheel" if sha else "in-place",
        file=wheel or TREE,
        sha256=sha,
        commit=commit,
        tree=TREE if commit else None,
    )
    plugin = PluginInfo("peek_plugin_tutorial", "1.0.0", source, wheel, sha)
    run = RunReport(plugin, "run1", "2026-01-01T00:00:00+00:00", "targets.toml", targets)
    run.run_options = list(run_options)
    return run


def evidence(run: RunReport, files: dict[Path, RunReport] | None = None) -> Evidence:
    """The report as compat.json holds it: with the overall status it states."""
    return Evidence(run, str(run.status), files or {})


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900):
    """``python -m matrix ARGS`` from the repository, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "matrix", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def assert_clear_error(done: subprocess.CompletedProcess, *phrases: str) -> None:
    """Exit 2, one paragraph with every phrase, no traceback."""
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "error:" in output
    flat = " ".join(output.split())
    for phrase in phrases:
        assert phrase in flat, output


@dataclass
class PyPI:
    url: str
    username: str
    password: str
    packages: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "TWINE_REPOSITORY_URL": self.url,
            "TWINE_USERNAME": self.username,
            "TWINE_PASSWORD": self.password,
        }

    @property
    def index_with_credentials(self) -> str:
        return self.url.replace("://", f"://{self.username}:{self.password}@") + "simple/"

    def files(self) -> list[str]:
        return sorted(p.name for p in self.packages.iterdir())


# -- parsing SQL with sqlglot, for real --------------------------------------------------

# Statements sqlglot keeps as an opaque Command, each written out exactly as the harness sends
# it and checked by hand against the vendor's documented syntax, on the page named beside it.
OPAQUE = {
    # "ALTER DATABASE SET options (Transact-SQL)": SINGLE_USER, <termination> ROLLBACK IMMEDIATE
    "ALTER DATABASE [matrix_1] SET SINGLE_USER WITH ROLLBACK IMMEDIATE",
    # "UPDATE STATISTICS (Transact-SQL)": UPDATE STATISTICS table_or_indexed_view_name
    "UPDATE STATISTICS pl_tutorial.[SpatialFeature]",
    # "CREATE SPATIAL INDEX (Transact-SQL)": a geometry column's index needs its BOUNDING_BOX
    "CREATE SPATIAL INDEX [idx_SpatialFeature_geom] ON [pl_tutorial].[SpatialFeature] ([geom]) "
    "WITH (BOUNDING_BOX = (-180, -90, 180, 90))",
}


def parsed(sql: str, dialect: str) -> list:
    """sqlglot's tree of every statement in ``sql``, each one it understood.

    sqlglot does not raise on a statement it cannot parse: it warns and keeps
    it as a generic ``Command``, which proves nothing about it. A Command is
    refused here unless its text is one of :data:`OPAQUE`.
    """
    import sqlglot
    from sqlglot import exp

    trees = [tree for tree in sqlglot.parse(sql, read=dialect) if tree is not None]
    assert trees, f"no statement in {sql!r}"
    opaque = [node.sql(dialect=dialect) for tree in trees for node in tree.find_all(exp.Command)]
    assert set(opaque) <= OPAQUE, f"sqlglot could not parse, and kept as text: {opaque}"
    return trees
