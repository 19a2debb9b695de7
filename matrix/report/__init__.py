"""Reports: one JSON per target, merged into compat.json, compat.md and junit.xml.

Every file is written atomically (a temporary file renamed into place), and
the summaries are rewritten after each target, so a run that dies keeps
every result gathered until then. The per-target files carry the plugin and
commit they are about, so that the parallel jobs of a CI pipeline can be
merged into one ``compat.json`` by ``python -m matrix report``.

One run writes a reports folder at a time: :meth:`ReportWriter.locked` holds
a lock for the whole run, and a second run is refused at once with the
first one's pid, before it starts anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matrix.documents import read_json
from matrix.errors import HarnessError
from matrix.report.junit import junit
from matrix.report.markdown import markdown
from matrix.results import REPORT_SCHEMA_VERSION, RunReport, TargetResult

LOCK_FILE = ".lock"
INDEX = "index.html"  # written from compat.json by matrix.report.html
SCREENSHOT = "index.png"


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


def check_folder(directory: Path) -> Path:
    """The reports folder, created if missing; a clear error when it cannot be written."""
    if directory.exists() and not directory.is_dir():
        raise HarnessError(
            f"The reports path {directory} is a file, not a folder.",
            "Pass --reports a folder (it is created if missing).",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as error:
        raise HarnessError(
            f"The reports folder {directory} cannot be written ({error.strerror}).",
            "Pass --reports a folder this user can write, or fix its permissions.",
        ) from None
    return directory


class ReportWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder for one run; a second run is refused, naming the first."""
        check_folder(self.directory)
        path = self.directory / LOCK_FILE
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise HarnessError(
                f"Another run (pid {owner}) is writing {self.directory}.",
                "Wait for it to end, or pass --reports another folder.",
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()

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
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                same = _build_of(data) == _build_of(_header(report))
                result = TargetResult.from_dict(data["target"]) if same else None
            except (OSError, AttributeError, ValueError, KeyError, TypeError):
                same, result = False, None  # unreadable: not evidence of anything
            if same and data.get("schema_version") == REPORT_SCHEMA_VERSION:
                kept.append(result)
            else:
                path.unlink()
        return kept

    def begin(self, report: RunReport) -> None:
        """Say at once that a run is writing this folder.

        The summaries are replaced by the new run's (``state = running``), and
        the page and its screenshot, written only at the end, are removed:
        whatever happens next, nothing left from the previous run passes for
        this one's.
        """
        self.write_summaries(report)
        for name in (INDEX, SCREENSHOT):
            (self.directory / name).unlink(missing_ok=True)

    def write_summaries(self, report: RunReport) -> None:
        write_atomic(
            self.directory / "compat.json",
            json.dumps(report.to_dict(), indent=2, default=str) + "\n",
        )
        write_atomic(self.directory / "compat.md", markdown(report))
        write_atomic(self.directory / "junit.xml", junit(report))


def _header(report: RunReport) -> dict[str, Any]:
    """What a per-target file says of its run: the build, not how far the run got."""
    data = report.to_dict()
    return {k: v for k, v in data.items() if k not in ("targets", "status", "state", "interrupted")}


def _build_of(header: dict[str, Any]) -> tuple:
    plugin = header.get("plugin", {})
    source = plugin.get("source")
    return (
        plugin.get("name"),
        plugin.get("version"),
        plugin.get("wheel_sha256"),
        source.get("commit") if isinstance(source, dict) else None,
    )


def read_report(path: Path, what: str) -> Any:
    """A JSON file the matrix wrote, or one paragraph saying why it cannot be read."""
    return read_json(
        path,
        what,
        "Regenerate it with the matrix; do not edit it by hand.",
        missing_fix="Run the matrix first (nox -s migrate-postgres) or pass the right --reports.",
    )


def load_report(path: Path) -> RunReport:
    data = read_report(path, "matrix report")
    if not isinstance(data, dict) or data.get("schema_version") != REPORT_SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else type(data).__name__
        raise HarnessError(
            f"{path} has report schema_version {found!r}; this harness reads "
            f"{REPORT_SCHEMA_VERSION}.",
            "Rerun the matrix with this harness to write a report it can verify.",
        )
    try:
        return RunReport.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise HarnessError(
            f"{path} is not a matrix report ({type(error).__name__}: {error}).",
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
        data = read_report(path, "per-target report")
        if not isinstance(data, dict) or "target" not in data:
            raise HarnessError(
                f"{path} is not a per-target report (it has no target).",
                "Pass the targets/*.json files the matrix jobs wrote.",
            )
        if data.get("schema_version") != REPORT_SCHEMA_VERSION:
            raise HarnessError(
                f"{path} has report schema_version {data.get('schema_version')!r}; this "
                f"harness merges {REPORT_SCHEMA_VERSION}.",
                "Merge reports written by the same harness version.",
            )
        try:
            target = TargetResult.from_dict(data.pop("target"))
            part = RunReport.from_dict({**data, "targets": []})
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise HarnessError(
                f"{path} is not a per-target report ({type(error).__name__}: {error}).",
                "Pass the targets/*.json files the matrix jobs wrote; do not edit them by hand.",
            ) from None
        if merged is None:
            merged = part
        elif (part.plugin.wheel_sha256, part.plugin.commit) != (
            merged.plugin.wheel_sha256,
            merged.plugin.commit,
        ):
            raise HarnessError(
                f"{path} is about another build (wheel {part.plugin.wheel_sha256}, "
                f"commit {part.plugin.commit}) than the others.",
                "Merge only the reports of one pipeline.",
            )
        merged.targets = [t for t in merged.targets if t.id != target.id] + [target]
    return merged
