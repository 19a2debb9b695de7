"""Reports: one JSON per target, merged into compat.json, compat.md, junit.xml.

Every file is written atomically (a temporary file renamed into place), and
the summaries are rewritten after each target, so a run that dies keeps
every result gathered until then. The per-target files carry the plugin and
commit they are about, so that the parallel jobs of a CI pipeline can be
merged into one ``compat.json`` by ``python -m matrix report``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from matrix.checks import CHECKS
from matrix.errors import HarnessError
from matrix.results import RunReport, Status, TargetResult

SYMBOL = {"passed": "✅", "failed": "❌", "error": "💥", "not_run": "⏸️"}


def git_commit() -> str | None:
    """The commit under test: CI's variable when set, else the work tree's HEAD."""
    if os.environ.get("CI_COMMIT_SHA"):
        return os.environ["CI_COMMIT_SHA"]
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide CI artifacts
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ReportWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write_target(self, report: RunReport, result: TargetResult) -> Path:
        path = self.directory / "targets" / f"{result.id}.json"
        data = {**_header(report), "target": result.to_dict()}
        write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
        return path

    def earlier_results(self, report: RunReport) -> list[TargetResult]:
        """Results of earlier runs about the same build; other builds' are removed.

        The same build means the same plugin, version, wheel sha256 and commit:
        the evidence the release gate accepts. A result about another build
        would only mislead, so its file goes.
        """
        kept = []
        for path in sorted((self.directory / "targets").glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            if _build_of(data) == _build_of(_header(report)):
                kept.append(TargetResult.from_dict(data["target"]))
            else:
                path.unlink()
        return kept

    def write_summaries(self, report: RunReport) -> None:
        write_atomic(
            self.directory / "compat.json",
            json.dumps(report.to_dict(), indent=2, default=str) + "\n",
        )
        write_atomic(self.directory / "compat.md", markdown(report))
        write_atomic(self.directory / "junit.xml", junit(report))


def _header(report: RunReport) -> dict[str, Any]:
    data = report.to_dict()
    return {k: v for k, v in data.items() if k not in ("targets", "status")}


def _build_of(header: dict[str, Any]) -> tuple:
    plugin = header.get("plugin", {})
    return (
        plugin.get("name"),
        plugin.get("version"),
        plugin.get("wheel_sha256"),
        header.get("git_commit"),
    )


def load_report(path: Path) -> RunReport:
    try:
        return RunReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise HarnessError(
            f"There is no report at {path}.",
            "Run the matrix first (nox -s migrate-postgres) or pass the right --reports.",
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise HarnessError(
            f"{path} is not a matrix report ({error}).",
            "Regenerate it with the matrix; do not edit it by hand.",
        ) from None


def merge_target_files(paths: list[Path]) -> RunReport:
    """One report from the per-target files of several jobs of the same build.

    The run details (run id, start) are the first file's; a later file for
    the same target replaces an earlier one.
    """
    if not paths:
        raise HarnessError(
            "No per-target reports to merge.",
            "Pass the targets/*.json files the matrix jobs wrote.",
        )
    merged: RunReport | None = None
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        target = TargetResult.from_dict(data.pop("target"))
        part = RunReport.from_dict({**data, "targets": []})
        if merged is None:
            merged = part
        elif (part.plugin.wheel_sha256, part.git_commit) != (
            merged.plugin.wheel_sha256,
            merged.git_commit,
        ):
            raise HarnessError(
                f"{path} is about another build (wheel {part.plugin.wheel_sha256}, "
                f"commit {part.git_commit}) than the others.",
                "Merge only the reports of one pipeline.",
            )
        merged.targets = [t for t in merged.targets if t.id != target.id] + [target]
    return merged


def markdown(report: RunReport) -> str:
    names = [c.name for c in CHECKS]
    plugin = report.plugin
    lines = [
        f"# Compatibility of {plugin.name} {plugin.version}",
        "",
        f"- Overall: **{report.status}**",
        f"- Wheel: `{Path(plugin.wheel).name if plugin.wheel else plugin.source}`"
        + (f" (sha256 `{plugin.wheel_sha256}`)" if plugin.wheel_sha256 else ""),
        (
            f"- Commit: `{report.git_commit or 'unknown'}`; run `{report.run_id}` "
            f"started {report.started_at}"
        ),
        "",
        "| target | server | PostGIS | provider | status | " + " | ".join(names) + " |",
        "|" + "---|" * (5 + len(names)),
    ]
    for target in report.targets:
        by_name = {c.name: c for c in target.checks}
        cells = [SYMBOL[by_name[n].status] if n in by_name else "" for n in names]
        lines.append(
            f"| {target.id} | {target.server_version or '-'} | "
            f"{target.postgis_version or '-'} | {target.provider or '-'} | "
            f"{SYMBOL[target.status]} {target.status} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Legend: " + ", ".join(f"{s} {n}" for n, s in SYMBOL.items()), ""]
    problems = [t for t in report.targets if t.status != Status.PASSED]
    if problems:
        lines += ["## Why", ""]
    for target in problems:
        lines.append(f"### {target.id}: {target.status}")
        if target.reason:
            lines += ["", target.reason]
        for check in target.checks:
            if check.status in (Status.FAILED, Status.ERROR):
                lines += [
                    "",
                    f"**{check.name}** ({check.status}"
                    + (f", revision `{check.revision}`" if check.revision else "")
                    + ")",
                    "",
                    "```",
                    check.detail.strip()[:4000],
                    "```",
                ]
        lines.append("")
    return "\n".join(lines)


def junit(report: RunReport) -> str:
    suites = ET.Element("testsuites", name=f"matrix {report.plugin.name}")
    for target in report.targets:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=target.id,
            tests=str(len(target.checks) + 1),
            failures=str(sum(c.status == Status.FAILED for c in target.checks)),
            errors=str(sum(c.status == Status.ERROR for c in target.checks)),
            skipped=str(sum(c.status == Status.NOT_RUN for c in target.checks)),
            time=f"{target.duration_s:.3f}",
        )
        whole = ET.SubElement(
            suite,
            "testcase",
            classname=target.id,
            name="target",
            time=f"{target.duration_s:.3f}",
        )
        _outcome(whole, target.status, target.reason)
        for check in target.checks:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=target.id,
                name=check.name,
                time=f"{check.duration_s:.3f}",
            )
            _outcome(case, check.status, check.detail)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _outcome(case: ET.Element, status: Status, detail: str) -> None:
    first = (detail or str(status)).strip().splitlines()[0][:200] if detail else str(status)
    if status == Status.FAILED:
        ET.SubElement(case, "failure", message=first).text = detail
    elif status == Status.ERROR:
        ET.SubElement(case, "error", message=first).text = detail
    elif status == Status.NOT_RUN:
        ET.SubElement(case, "skipped", message=first)
