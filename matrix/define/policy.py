"""A plugin's policy: findings its maintainers acknowledge, and cost limits.

Some findings are deliberate: a revision that drops a table whose data is
obsolete, a downgrade declared impossible, an env.py that by design renders
no offline SQL. The maintainers say so in ``peek-matrix-policy.toml`` beside
the plugin (or ``--policy FILE``)::

    [[waive]]
    check = "data_survives"          # required
    revision = "4795161756fc"        # optional: only findings blamed on it
    kind = "table_dropped"           # optional: only findings of this kind
    target = "pg13-postgis31"        # optional: only on this target
    reason = "The import cache is rebuilt from the source system."   # required

    [cost]                           # limits at --scale N (migration_cost)
    max_revision_seconds = 30
    max_access_exclusive_seconds = 2.0

A matched finding is ``waived`` in every report (never ``passed``), with the
reason; ``kind = "not_run"`` acknowledges a check that cannot judge. An entry
that matches nothing in a run is reported as stale, so waivers do not outlive
the findings they were written for. Stdlib only: the check process applies
the waivers as it settles each check, so that a waived prerequisite lets the
checks after it run.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from matrix.catalogue import BY_NAME, FINDING_KINDS, KINDS, NOT_RUN_KIND, kinds_of
from matrix.documents import read_toml
from matrix.errors import HarnessError

FILE_NAME = "peek-matrix-policy.toml"
COST_LIMITS = ("max_revision_seconds", "max_access_exclusive_seconds", "max_lock_seconds")
SECTIONS = ("waive", "cost")
FIELDS = ("check", "reason", "revision", "kind", "target")
# What the reports' ready-to-paste entries say until a maintainer writes the reason.
REASON_PLACEHOLDER = "<why this is acceptable on every site>"


class PolicyError(HarnessError):
    """The policy file cannot be used."""


@dataclass(frozen=True)
class Waiver:
    check: str
    reason: str
    revision: str | None = None
    kind: str | None = None
    target: str | None = None

    def describe(self) -> str:
        scope = [f"check {self.check}"]
        scope += [f"{k} {v}" for k, v in (("revision", self.revision), ("kind", self.kind)) if v]
        scope += [f"target {self.target}"] if self.target else []
        return ", ".join(scope)


@dataclass(frozen=True)
class Policy:
    path: str | None = None
    waivers: tuple[Waiver, ...] = ()
    cost: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "waivers": [asdict(w) for w in self.waivers],
            "cost": dict(self.cost),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        return cls(
            data.get("path"),
            tuple(Waiver(**w) for w in data.get("waivers", [])),
            dict(data.get("cost", {})),
        )


class Waivers:
    """The policy's waivers as one target's checks settle, remembering which were used."""

    def __init__(self, policy: Policy, target: str) -> None:
        self.policy = policy
        self.target = target
        self.used: set[int] = set()

    def apply(self, check: str, findings: list) -> None:
        """Mark each open blocking finding that an entry matches as waived."""
        for finding in findings:
            if not finding.blocking or finding.waived:
                continue
            index = self._match(check, finding.revision, finding.kind)
            if index is not None:
                finding.waived = self.policy.waivers[index].reason

    def waive_not_run(self, check: str, reason: str) -> str | None:
        """The reason of an entry acknowledging that ``check`` cannot judge, if any."""
        index = self._match(check, None, NOT_RUN_KIND)
        return None if index is None else self.policy.waivers[index].reason

    def _match(self, check: str, revision: str | None, kind: str | None) -> int | None:
        for index, waiver in enumerate(self.policy.waivers):
            if waiver.check != check:
                continue
            if waiver.target and waiver.target != self.target:
                continue
            if waiver.revision and waiver.revision != revision:
                continue
            if kind == NOT_RUN_KIND and waiver.kind != NOT_RUN_KIND:
                continue
            if waiver.kind and waiver.kind != kind:
                continue
            self.used.add(index)
            return index
        return None


def stale(policy: Policy, used: set[int]) -> list[str]:
    """Entries that matched nothing in the run, described."""
    return [w.describe() for i, w in enumerate(policy.waivers) if i not in used]


def find_policy(explicit: Path | None, beside: Path | None) -> Path | None:
    """``--policy FILE``, else ``peek-matrix-policy.toml`` beside the plugin, else none."""
    if explicit is not None:
        return explicit
    if beside is None:
        return None
    folder = beside if beside.is_dir() else beside.parent
    for candidate in (folder / FILE_NAME, folder.parent / FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


def entry(check: str, kind: str | None = None, revision: str | None = None) -> str:
    """A ``[[waive]]`` entry acknowledging these findings, ready to paste once its reason is
    written (the placeholder is refused at load, so an entry never waives without one)."""
    lines = ["[[waive]]", f"check = {json.dumps(check)}"]
    lines += [f"kind = {json.dumps(kind)}"] if kind else []
    lines += [f"revision = {json.dumps(revision)}"] if revision else []
    return "\n".join([*lines, f"reason = {json.dumps(REASON_PLACEHOLDER)}"])


def did_you_mean(name: str, known: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` when ``name`` is close to one known name, else nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(names: list[str], known: Collection[str]) -> str:
    return ", ".join(f"{name!r}{did_you_mean(name, known)}" for name in names)


def load_policy(path: Path | None, targets: Collection[str] = ()) -> Policy:
    """Read and validate a policy file; no file is an empty policy.

    ``targets`` are the ids a waiver's ``target`` may name (every target of
    the matrix file); none given, any id is taken.
    """
    if path is None:
        return Policy()
    data = read_toml(
        path,
        "policy file",
        "Fix the syntax at the line and column given.",
        missing=f"The policy file {path} does not exist.",
        missing_fix="Check the path given to --policy.",
        error=PolicyError,
    )
    return parse_policy(path, data, targets)


def parse_policy(path: Path, data: dict[str, Any], targets: Collection[str] = ()) -> Policy:
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise PolicyError(
            f"The policy file {path} has unknown sections {_unknown(unknown, SECTIONS)}.",
            "Use [[waive]] entries and a [cost] table only.",
        )
    entries = data.get("waive", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PolicyError(
            f"The policy file {path}: waive must be a list of [[waive]] tables.",
            "Write each waiver as a [[waive]] table.",
        )
    waivers = tuple(_waiver(path, i, item, targets) for i, item in enumerate(entries, 1))
    cost = data.get("cost", {})
    if not isinstance(cost, dict):
        raise PolicyError(f"The policy file {path}: cost must be a table.", "Write it as [cost].")
    limits = {}
    for key, value in cost.items():
        if key not in COST_LIMITS:
            raise PolicyError(
                f"The policy file {path}: [cost] has an unknown limit "
                f"{_unknown([key], COST_LIMITS)}.",
                f"Use {', '.join(COST_LIMITS)}.",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise PolicyError(
                f"The policy file {path}: [cost] {key} = {value!r} is not a number of seconds.",
                "Give a number of seconds, 0 or more.",
            )
        limits[key] = float(value)
    return Policy(str(path), waivers, limits)


def _waiver(path: Path, index: int, entry: dict[str, Any], targets: Collection[str]) -> Waiver:
    where = f"The policy file {path}, [[waive]] #{index}"
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise PolicyError(
            f"{where} has unknown fields {_unknown(unknown, FIELDS)}.",
            "Use check, reason, and optionally revision, kind, target.",
        )
    for key in FIELDS:
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise PolicyError(
                f"{where}: {key} = {entry[key]!r} is not a non-empty string.",
                f"Make {key} a string.",
            )
    for key in ("check", "reason"):
        if key not in entry:
            raise PolicyError(
                f"{where} lacks {key}.",
                "Every waiver names the check and says why the finding is acceptable.",
            )
    check, kind, target = entry["check"], entry.get("kind"), entry.get("target")
    if check not in BY_NAME:
        raise PolicyError(
            f"{where}: check {_unknown([check], BY_NAME)} is not a check of the harness.",
            f"Use one of {', '.join(BY_NAME)}.",
        )
    if kind is not None and kind not in KINDS:
        raise PolicyError(
            f"{where}: kind {_unknown([kind], KINDS)} is not a finding kind, so the "
            "entry would waive nothing.",
            f"Use one of the kinds {check} reports: {', '.join(_kinds_of(check))}.",
        )
    if kind is not None and kind not in _kinds_of(check):
        reporting = [k.check for k in FINDING_KINDS if k.kind == kind]
        raise PolicyError(
            f"{where}: {check} never reports a finding of kind {kind!r} (only "
            f"{', '.join(reporting)} do), so the entry would waive nothing.",
            f"Use one of the kinds {check} reports: {', '.join(_kinds_of(check))}.",
        )
    if target is not None and targets and target not in targets:
        raise PolicyError(
            f"{where}: target {_unknown([target], targets)} is not a target of the matrix, so "
            "the entry would waive nothing.",
            f"Use one of {', '.join(targets)}, or leave target out to waive on every target.",
        )
    if entry["reason"].strip() == REASON_PLACEHOLDER:
        raise PolicyError(
            f"{where} still has the placeholder reason {REASON_PLACEHOLDER!r}.",
            "Write why the finding is acceptable on every site; the reports print it beside "
            "the waived finding.",
        )
    return Waiver(**entry)


def _kinds_of(check: str) -> list[str]:
    return [kind.kind for kind in kinds_of(check)] + [NOT_RUN_KIND]
