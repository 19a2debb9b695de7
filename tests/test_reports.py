"""From a red report to an acknowledged one, on a real published plugin, reading only the report.

``peek-plugin-chat==5.1.6`` fails two checks for real (a downgrade that drops
a constraint by no name, a revision that truncates its tables) and cannot be
judged offline (Peek's env.py). Its reports must say each finding once, in
SQL terms (no Python repr, no memory address), with the code that caused it
(the ``TRUNCATE``), what to do, and the policy entry that acknowledges it;
compat.md and index.html must say the same. Pasting those entries, reasons
written, must then be all a maintainer needs: the run passes as ``waived``,
the checks that only followed the waived downgrade are covered by its
waiver, each waiver's reason is printed once per check, and the policy file
(and a stale entry in it) shows in every report and on the console.

Marked ``corpus``: the plugin comes from the package index (its environment
is cached, as for tests/test_corpus.py).
"""

from __future__ import annotations

import html
import json
import re
import tomllib

import pytest
from helpers import cli

from matrix.catalogue import ADVICE
from matrix.define.policy import REASON_PLACEHOLDER

pytestmark = [pytest.mark.live, pytest.mark.corpus]
CHAT = "peek-plugin-chat==5.1.6"
PEEK_5 = ("--with", "Twisted<26", "--with-no-deps", "peek-platform==5.1.6")
TRUNCATING = "9b0976dcfd53"
UNNAMED_DROP = "52f3163b45de"


def run_chat(folder, url, *extra):
    done = cli(
        "run",
        "--plugin",
        CHAT,
        *PEEK_5,
        "--targets",
        "pg15-postgis33",
        "--provider",
        "external",
        "--reports",
        str(folder),
        *extra,
        env={"MATRIX_POSTGRESQL_URL": url.render_as_string(hide_password=False)},
        timeout=1200,
    )
    return done, json.loads((folder / "compat.json").read_text())


@pytest.fixture(scope="module")
def red(pg_server_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat") / "reports"
    done, report = run_chat(folder, pg_server_url)
    assert done.returncode == 1, done.stdout + done.stderr
    return folder, report, done.stdout + done.stderr


def findings(report) -> list[tuple[str, dict]]:
    (target,) = report["targets"]
    return [(check["name"], f) for check in target["checks"] for f in check["findings"]]


def test_each_finding_is_said_once_in_sql_terms_with_its_code(red):
    folder, report, _ = red
    text = (folder / "compat.md").read_text()
    page = html.unescape((folder / "index.html").read_text())
    for document in (text, page):
        assert not re.search(r"0x[0-9a-f]{6,}", document)
        assert "object at" not in document and "ReadOnlyColumnCollection" not in document
    (broken,) = [f for name, f in findings(report) if f["kind"] == "downgrade_failed"]
    assert broken["revision"] == UNNAMED_DROP
    assert "foreign key without a name on pl_chat.MessageReadPayloadTuple" in broken["message"]
    assert text.count(broken["message"]) == 1  # formerly summary, heading, bullet and block
    assert page.count(broken["message"]) == 1
    lost = [f for name, f in findings(report) if f["kind"] == "rows_lost"]
    assert lost and {f["revision"] for f in lost} == {TRUNCATING}
    for finding in lost:
        assert 'TRUNCATE TABLE pl_chat."ChatTuple" CASCADE' in finding["detail"]
    for document in (text, page):
        assert f"code and SQL of {TRUNCATING}" in document
        assert document.count('TRUNCATE TABLE pl_chat."ChatTuple" CASCADE') == 1


def test_compat_md_and_index_html_carry_the_same_findings_warnings_and_advice(red):
    folder, report, _ = red
    text = (folder / "compat.md").read_text()
    page = html.unescape((folder / "index.html").read_text())
    (target,) = report["targets"]
    said = [f["message"] for _, f in findings(report)]
    said += [w for check in target["checks"] for w in check["warnings"]]
    assert any("autogenerate" in w for w in said)  # the warning compat.md used to omit
    for message in said:
        flat = " ".join(message.split())
        assert flat in " ".join(text.split()), message
        assert flat in " ".join(page.split()), message
    # what to do about what fails, and about the kinds that are only ever notes
    advised = {
        f["kind"] for _, f in findings(report) if f["blocking"] or ADVICE[f["kind"]].note_only
    }
    for kind in advised | {"not_run"}:
        assert ADVICE[kind].advice in text and ADVICE[kind].advice in page


def test_pasting_the_offered_entries_acknowledges_chat_and_every_report_shows_the_policy(
    red, pg_server_url, tmp_path
):
    folder, _, _ = red
    text = (folder / "compat.md").read_text()
    offered = re.findall(r"```toml\n(.*?)\n```", text, re.DOTALL)
    entries = [tomllib.loads(block)["waive"] for block in offered]
    assert {(w["check"], w.get("kind"), w.get("revision")) for e in entries for w in e} == {
        ("downgrade_stepwise", "downgrade_failed", UNNAMED_DROP),
        ("data_survives", "rows_lost", TRUNCATING),
        ("offline_sql", "not_run", None),
    }  # not the checks that only follow the broken downgrade
    policy = tmp_path / "peek-matrix-policy.toml"
    written = "\n\n".join(offered).replace(REASON_PLACEHOLDER, "chat history is rebuilt")
    stale = '[[waive]]\ncheck = "schema_isolation"\nkind = "outside_schema"\nreason = "old"\n'
    policy.write_text(f"{written}\n\n{stale}")
    done, report = run_chat(tmp_path / "reports", pg_server_url, "--policy", str(policy))
    console = done.stdout + done.stderr
    assert done.returncode == 0, console
    (target,) = report["targets"]
    assert target["status"] == "waived"
    checks = {check["name"]: check for check in target["checks"]}
    for name in ("downgrade_leaves_no_trace", "reupgrade"):
        assert checks[name]["status"] == "waived", checks[name]
        assert "covered by the waiver of downgrade_stepwise" in checks[name]["reason"]
    text = (tmp_path / "reports" / "compat.md").read_text()
    page = html.unescape((tmp_path / "reports" / "index.html").read_text())
    assert text.count("chat history is rebuilt (") == 0  # no per-finding repetition
    data = text[text.index("data_survives: waived") :]
    data = data[: data.index("####")]
    assert data.count("chat history is rebuilt") == 1  # once for the check's 4 findings
    assert "waived by the policy (4 findings): chat history is rebuilt" in data
    assert "`rows_lost` at `9b0976dcfd53` (waived): ChatTuple: 3 row(s)" in data
    for document in (text, page, console):
        flat = " ".join(document.split())
        assert f"Policy: {policy} (4 waivers)" in flat
        assert "check schema_isolation, kind outside_schema" in flat  # the stale entry
