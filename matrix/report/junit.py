"""``junit.xml``: one testcase per target and check, as GitLab's test report reads it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from matrix.results import RunReport, Status


def junit(report: RunReport) -> str:
    suites = ET.Element("testsuites", name=f"matrix {report.plugin.name}")
    for target in report.targets:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{target.id} ({target.label})",
            tests=str(len(target.checks) + 1),
            failures=str(sum(c.status == Status.FAILED for c in target.checks)),
            errors=str(sum(c.status == Status.ERROR for c in target.checks)),
            skipped=str(sum(c.status == Status.NOT_RUN for c in target.checks)),
            time=f"{target.duration_s:.3f}",
        )
        _properties(suite, report)
        whole = ET.SubElement(
            suite, "testcase", classname=target.id, name="target", time=f"{target.duration_s:.3f}"
        )
        _outcome(whole, target.status, target.reason, "")
        for check in target.checks:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=target.id,
                name=check.name,
                time=f"{check.duration_s:.3f}",
            )
            _outcome(case, check.status, check.reason, check.detail)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _outcome(case: ET.Element, status: Status, reason: str, detail: str) -> None:
    message = " ".join((reason or str(status)).split())[:200]
    if status == Status.FAILED:
        ET.SubElement(case, "failure", message=message).text = detail or reason
    elif status == Status.ERROR:
        ET.SubElement(case, "error", message=message).text = detail or reason
    elif status == Status.NOT_RUN:
        ET.SubElement(case, "skipped", message=message)
    elif status == Status.WAIVED:
        ET.SubElement(case, "system-out").text = f"waived: {reason}"


def _properties(suite: ET.Element, report: RunReport) -> None:
    """Which plugin build the suite is about: its provenance, and the wheel tested."""
    source, plugin = report.plugin.source, report.plugin
    found = {
        "plugin.source": source.describe(),
        "plugin.kind": source.kind,
        "plugin.requirement": source.requirement,
        "plugin.index": source.index,
        "plugin.sha256": source.sha256,
        "plugin.commit": source.commit,
        "plugin.wheel": plugin.wheel and Path(plugin.wheel).name,
        "plugin.wheel_sha256": plugin.wheel_sha256,
        # Written by a passing gate: the required targets released without, on purpose.
        "gate.allowed_missing": ",".join(report.allowed_missing),
    }
    properties = ET.SubElement(suite, "properties")
    for name, value in found.items():
        if value:
            ET.SubElement(properties, "property", name=name, value=value)
