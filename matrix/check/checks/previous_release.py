"""Upgrades as sites live them: from the previous release, with its data.

A Peek site upgrades from whatever release it runs, when the Server service
starts. Two questions before tagging: did a released revision change (sites
that ran it never see the change), and does a database at the previous
release, with rows, come up to this release intact?

The previous release is another wheel in its own environment; the runner
lets its migrations bring ``<database>_release`` to its head and write rows
there first (``python -m matrix.check.process --seed``, with the old
plugin), and hands this check process the ledger of what was written.
"""

from __future__ import annotations

import ast
import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from matrix.check import synthetic
from matrix.check.checks.base import CannotJudge, CheckOutput, check
from matrix.check.checks.data import RowsWalk, report_losses, upgrade_with_rows
from matrix.check.snapshot import describe
from matrix.protocol import PreviousRelease


@dataclass(frozen=True)
class ReleasedRevision:
    """One revision file, read without importing it."""

    revision: str
    down_revision: object
    upgrade: str  # ast.dump of upgrade(): compared as code, not bytes
    source: str  # ast.unparse of upgrade(), for the diff
    path: Path


def revision_files(alembic_dir: Path) -> dict[str, ReleasedRevision]:
    """The revisions of an Alembic folder, parsed, by id."""
    found: dict[str, ReleasedRevision] = {}
    for path in sorted((alembic_dir / "versions").glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError):
            continue
        names = _assignments(tree)
        revision = names.get("revision")
        if not isinstance(revision, str):
            continue
        function = next(
            (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None
        )
        body = _without_docstring(function) if function else None
        found[revision] = ReleasedRevision(
            revision=revision,
            down_revision=names.get("down_revision"),
            upgrade=ast.dump(body, include_attributes=False) if body else "",
            source=ast.unparse(body) if body else "",
            path=path,
        )
    return found


def _assignments(tree: ast.Module) -> dict[str, object]:
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    values[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            try:
                values[node.target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return values


def _without_docstring(function: ast.FunctionDef) -> ast.FunctionDef:
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:] or [ast.Pass()]
    return ast.FunctionDef(
        name=function.name,
        args=function.args,
        body=body,
        decorator_list=[],
        returns=None,
        type_params=[],
        lineno=0,
        col_offset=0,
    )


def _previous(cell) -> PreviousRelease:
    previous = cell.previous
    if previous.alembic_dir is None:
        raise CannotJudge(previous.reason or "no previous release was given (--previous)")
    return previous


@check
def released_revisions_unchanged(cell, out: CheckOutput) -> None:
    """Every revision of the previous release ships unchanged in this one.

    A site that already ran a released revision never runs it again: an
    edited ``upgrade()`` (compared as code: the parsed function, not its
    bytes, so formatting and comments do not count) leaves those sites with
    another schema than new ones. A revision removed, or given another
    ``down_revision``, breaks the history those sites stand on.
    """
    previous = _previous(cell)
    old = revision_files(previous.alembic_dir)
    new = revision_files(cell.plugin.alembic_dir)
    version = previous.version or "?"
    for revision, released in old.items():
        now = new.get(revision)
        if now is None:
            out.find(
                "removed",
                f"{revision} shipped in {version} and is gone: sites at it have no way forward",
                revision=revision,
            )
        elif now.down_revision != released.down_revision:
            out.find(
                "reparented",
                f"{revision} now follows {now.down_revision!r}, in {version} it followed "
                f"{released.down_revision!r}",
                revision=revision,
            )
        elif now.upgrade != released.upgrade:
            diff = "\n".join(
                difflib.unified_diff(
                    released.source.splitlines(),
                    now.source.splitlines(),
                    f"{version}: {released.path.name}",
                    f"this build: {now.path.name}",
                    lineterm="",
                )
            )
            out.find(
                "edited",
                f"upgrade() of {revision} differs from the one released in {version}: sites "
                "that ran it will never see the change",
                revision=revision,
                detail=diff,
            )
    out.covered = f"the {len(old)} revisions of {version} ship unchanged"


@check
def upgrade_from_release(cell, out: CheckOutput) -> None:
    """A database at the previous release, with data, upgrades to this one intact.

    The previous release's own migrations (in its own environment) brought a
    fresh database to its head and wrote rows into every table, as
    ``data_survives`` does. This build's migrations then upgrade it. The
    check passes when the upgrade succeeds, every row written is still there
    and unchanged, and the schema equals a fresh upgrade from base.
    """
    previous = _previous(cell)
    if previous.seed_error:
        raise CannotJudge(
            f"the previous release {previous.version} could not be brought to its head "
            f"with data on this server: {previous.seed_error}"
        )
    if not cell.live or "release" not in cell.siblings:
        raise CannotJudge("no database at the previous release")
    url = cell.siblings["release"]
    ledger = synthetic.Ledger.from_dict(json.loads(previous.ledger.read_text()))
    walk = upgrade_with_rows(cell, url, ledger, start=cell.state, after=cell.state)
    judge_release(cell, out, previous, walk, ledger)


def judge_release(
    cell, out: CheckOutput, previous: PreviousRelease, walk: RowsWalk, ledger: synthetic.Ledger
) -> None:
    """``upgrade_from_release``'s verdict on its walk (``walk.after``: the schema at head)."""
    out.evidence = walk.evidence
    if walk.failure is not None:
        out.failed_step(
            "upgrade_failed",
            walk.failure,
            f"upgrading a {previous.version} database with data fails at {walk.failure.revision}",
        )
        return
    losses, steps, state = walk.losses, walk.steps, walk.after
    report_losses(out, losses)
    if cell.head_state is None:
        if any(finding.blocking for finding in out.findings):
            return  # rows lost: a failure, whatever the schema
        raise CannotJudge(
            "the fresh upgrade from base did not reach head (see upgrade_stepwise): there is "
            "no schema to compare the upgraded release's with",
            because="upgrade_stepwise",
        )
    if state != cell.head_state:
        out.find(
            "schema_differs",
            f"a database upgraded from {previous.version} has another schema than a fresh "
            "upgrade from base (- fresh upgrade, + upgraded from the release)",
            revision=cell.head,
            detail=describe(cell.head_state.facts, state.facts),
        )
    if any(finding.blocking for finding in out.findings):
        return
    if ledger.uncovered or not ledger.rows:
        tables = ", ".join(sorted(ledger.uncovered)) or "any table"
        raise CannotJudge(
            f"the previous release's database took no rows into {tables}, so the survival of "
            f"their data is unproven; the upgrade kept all {len(ledger.rows)} rows written"
        )
    out.covered = (
        f"{previous.version} at {previous.head} with {len(ledger.rows)} rows, "
        f"then {len(steps)} revisions of this build: every row kept, same schema"
    )
