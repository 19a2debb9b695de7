"""The policy file: every name in it is checked at load, with the closest known one offered.

A waiver that names nothing real (a kind no check reports, a target the
matrix lacks, a check that never reports that kind) would waive nothing and
go unnoticed until the finding it was written for fails a release; each is
refused at load, exit 2, naming the file, the entry and the option. The
entries the reports offer to paste are loadable once their reason is
written, and not before. Unit tier: nothing here starts a server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import assert_clear_error
from plugin_factory import PluginSpec, healthy_revisions, write_plugin

from matrix.catalogue import ADVICE, FINDING_KINDS, KINDS
from matrix.cli import main
from matrix.define.policy import REASON_PLACEHOLDER, PolicyError, entry, load_policy

TARGETS = ("pg13-postgis31", "pg15-postgis33")


def write(tmp: Path, text: str) -> Path:
    path = tmp / "peek-matrix-policy.toml"
    path.write_text(text)
    return path


REFUSED = {
    "unknown kind": (
        '[[waive]]\ncheck = "data_survives"\nkind = "row_lost"\nreason = "x"\n',
        ("[[waive]] #1", "kind 'row_lost' (did you mean 'rows_lost'?)", "is not a finding kind"),
    ),
    "kind of another check": (
        '[[waive]]\ncheck = "data_survives"\nkind = "residue"\nreason = "x"\n',
        ("data_survives never reports a finding of kind 'residue'", "downgrade_leaves_no_trace"),
    ),
    "unknown target": (
        '[[waive]]\ncheck = "data_survives"\ntarget = "pg15-postgis3"\nreason = "x"\n',
        ("target 'pg15-postgis3' (did you mean 'pg15-postgis33'?)", "not a target of the matrix"),
    ),
    "unknown check": (
        '[[waive]]\ncheck = "data_survive"\nreason = "x"\n',
        ("check 'data_survive' (did you mean 'data_survives'?)",),
    ),
    "unknown field": (
        '[[waive]]\ncheck = "data_survives"\nresaon = "x"\n',
        ("unknown fields 'resaon' (did you mean 'reason'?)",),
    ),
    "unknown section": (
        '[[waiver]]\ncheck = "data_survives"\nreason = "x"\n',
        ("unknown sections 'waiver' (did you mean 'waive'?)",),
    ),
    "unknown cost limit": (
        "[cost]\nmax_lock_second = 3\n",
        ("unknown limit 'max_lock_second' (did you mean 'max_lock_seconds'?)",),
    ),
    "the pasted placeholder": (
        entry("data_survives", "rows_lost", "9b0976dcfd53") + "\n",
        ("[[waive]] #1 still has the placeholder reason",),
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_name_the_harness_does_not_know_is_refused_with_the_file_and_entry(case, tmp_path):
    text, phrases = REFUSED[case]
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, TARGETS)
    message = str(caught.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, message


def test_an_unknown_waiver_kind_is_exit_2_from_the_command_line(tmp_path, capsys):
    """The issue's case: ``kind = "row_lost"`` used to run the matrix and waive nothing."""
    plugin = write_plugin(tmp_path / "src", PluginSpec("policykind", healthy_revisions()))
    path = write(tmp_path, '[[waive]]\ncheck = "data_survives"\nkind = "row_lost"\nreason = "x"\n')
    args = ["run", "--plugin", str(plugin), "--targets", "pg15-postgis33"]
    code = main([*args, "--policy", str(path), "--reports", str(tmp_path / "reports")])
    captured = capsys.readouterr()
    done = subprocess.CompletedProcess(args, code, captured.out, captured.err)
    assert_clear_error(done, str(path), "[[waive]] #1", "did you mean 'rows_lost'?")
    assert not (tmp_path / "reports" / "compat.json").exists()


def test_a_target_the_matrix_file_defines_is_taken_even_when_not_selected(tmp_path):
    text = '[[waive]]\ncheck = "data_survives"\ntarget = "pg13-postgis31"\nreason = "x"\n'
    policy = load_policy(write(tmp_path, text), TARGETS)
    assert policy.waivers[0].target == "pg13-postgis31"


@pytest.mark.parametrize("row", FINDING_KINDS, ids=[f"{k.check}-{k.kind}" for k in FINDING_KINDS])
def test_every_pasted_entry_loads_once_its_reason_is_written(row, tmp_path):
    text = entry(row.check, row.kind, "abc123").replace(REASON_PLACEHOLDER, "the data is rebuilt")
    waiver = load_policy(write(tmp_path, text + "\n"), TARGETS).waivers[0]
    assert (waiver.check, waiver.kind, waiver.revision) == (row.check, row.kind, "abc123")


def test_every_kind_has_one_line_of_advice_and_the_step_that_causes_it():
    for kind in KINDS:
        advice = ADVICE[kind]
        assert advice.advice and "\n" not in advice.advice, kind
        assert advice.step in ("upgrade", "downgrade"), kind


def test_a_missing_previous_release_names_previous_not_plugin(tmp_path, capsys):
    plugin = write_plugin(tmp_path / "src", PluginSpec("prevpath", healthy_revisions()))
    args = ["run", "--plugin", str(plugin), "--previous", "/missing/prev.whl"]
    code = main([*args, "--reports", str(tmp_path / "reports")])
    captured = capsys.readouterr()
    done = subprocess.CompletedProcess(args, code, captured.out, captured.err)
    assert_clear_error(done, "--previous /missing/prev.whl", "pass --previous a wheel")
    assert "--plugin" not in captured.err


def test_the_policy_doc_lists_every_kind_with_its_check_and_advice():
    """docs/policy.md's table is the catalogue's: a kind added without it fails here."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "policy.md").read_text()
    rows = set()
    check = None
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):
            check = cells[0].strip("`") or check
            rows.add((check, cells[1].strip("`"), cells[3]))
    for row in FINDING_KINDS:
        assert (row.check, row.kind, ADVICE[row.kind].advice) in rows, row
