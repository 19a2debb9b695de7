"""Where the plugin came from, and only that: a commit only for a plugin built from a tree.

A published plugin (a requirement) names its requirement, the index and the
sha256 of the file that arrived in every report, and no commit: the folder
the harness runs in is not the plugin's. A wheel says the commit it was built
at only when the build record beside it (``provenance.json``, written by
``python -m matrix build``) vouches for these very bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from helpers import PUBLISHED, ROOT, TREE, report

from matrix.cli.console import print_summary
from matrix.install import sources
from matrix.report import ReportWriter
from matrix.report.html import write_html
from matrix.results import Provenance, RunReport


def published_report() -> RunReport:
    run = report(source=PUBLISHED)
    run.plugin.wheel = "/cache/wheels/peek_plugin_chat-5.1.6-py3-none-any.whl"
    return run


def test_every_report_of_a_published_plugin_names_its_requirement_and_sha256_and_no_commit(
    tmp_path, capsys
):
    run = published_report()
    ReportWriter(tmp_path).write_summaries(run)
    write_html(tmp_path)
    print_summary(run, tmp_path)
    printed = " ".join(capsys.readouterr().out.split())
    said = {
        "compat.md": (tmp_path / "compat.md").read_text(),
        "index.html": (tmp_path / "index.html").read_text(),
        "junit.xml": (tmp_path / "junit.xml").read_text(),
        "console": printed,
    }
    for where, text in said.items():
        assert "peek-plugin-chat==5.1.6" in text, where
        assert PUBLISHED.sha256 in text, where
        assert "http://127.0.0.1:3141/simple/" in text, where
        assert "commit" not in text.lower(), where
    stored = json.loads((tmp_path / "compat.json").read_text())["plugin"]["source"]
    assert stored["kind"] == "requirement" and stored["commit"] is None
    assert stored["sha256"] == PUBLISHED.sha256 and stored["index"] == PUBLISHED.index


def test_a_project_records_its_trees_commit(tmp_path, monkeypatch):
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    tree = tmp_path / "plugin"
    tree.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    for command in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "one"]):
        subprocess.run([*git, *command], cwd=tree, check=True, timeout=60)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert sources.tree_commit(tree) == head
    monkeypatch.setenv("CI_COMMIT_SHA", "c1" * 20)  # CI's checkout says which commit it is
    assert sources.tree_commit(tree) == "c1" * 20
    monkeypatch.delenv("CI_COMMIT_SHA")
    assert sources.tree_commit(tmp_path) is None  # no repository: no commit, not the harness's


def _wheel_with_record(folder: Path, recorded: bytes, actual: bytes) -> Path:
    wheel = folder / "peek_plugin_x-1.0-py3-none-any.whl"
    wheel.write_bytes(actual)
    record = {
        wheel.name: {
            "sha256": hashlib.sha256(recorded).hexdigest(),
            "tree": "plugin_x",
            "commit": "ab" * 20,
        }
    }
    (folder / sources.BUILD_RECORD).write_text(json.dumps(record))
    return wheel


def test_a_wheel_has_the_commit_its_build_record_vouches_for(tmp_path):
    wheel = _wheel_with_record(tmp_path, b"built here", b"built here")
    found = sources.wheel_provenance(wheel)
    assert (found.kind, found.commit, found.tree) == ("wheel", "ab" * 20, "plugin_x")
    assert found.sha256 == hashlib.sha256(b"built here").hexdigest()
    assert found.describe().endswith(f"built from plugin_x at commit {'ab' * 20}")


def test_a_wheel_whose_bytes_the_record_does_not_know_has_no_commit(tmp_path):
    changed = _wheel_with_record(tmp_path, b"built here", b"rebuilt elsewhere")
    assert sources.wheel_provenance(changed).commit is None
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    moved = alone / changed.name
    moved.write_bytes(b"built here")
    assert sources.wheel_provenance(moved).commit is None


def test_provenance_reads_back_as_it_was_written():
    source = Provenance("project", commit="cd" * 20, tree="plugin_under_test")
    assert Provenance.from_dict(json.loads(json.dumps(source.__dict__))) == source
    assert source.describe() == f"project plugin_under_test at commit {'cd' * 20}"


def test_a_project_run_without_dist_keeps_its_wheel_for_the_gate(run_matrix_cli, tmp_path):
    """The wheel a project run built outlives the run, and the gate gates it at its commit."""
    from helpers import MATRIX, cli

    run = run_matrix_cli(
        "--plugin",
        "plugin_under_test",
        "--targets",
        "pg15-postgis33",
        "--provider",
        "external",
        env={"MATRIX_CACHE_DIR": str(tmp_path / "cache"), "CI_COMMIT_SHA": ""},
    )
    assert run.exit_code == 0, run.output
    plugin = run.report["plugin"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert plugin["source"] == {
        "kind": "project",
        "requirement": None,
        "index": None,
        "file": None,
        "sha256": None,
        "commit": head,
        "tree": "plugin_under_test",
    }
    assert plugin["wheel"].startswith(str(tmp_path / "cache" / "builds"))
    others = ",".join(t.id for t in MATRIX.targets if t.id != "pg15-postgis33")
    gated = cli(
        "gate",
        "--reports",
        str(run.reports),
        "--allow-missing",
        others,
        env={"CI_COMMIT_SHA": ""},
    )
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert "PASSED: every required target passed for this wheel and commit, except" in gated.stdout


def _git(tree: Path, *command: str) -> str:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *command]
    return subprocess.run(
        git, cwd=tree, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def _stamp(path: Path) -> tuple[int, int]:
    """Which file this is and when it was written: a rebuild replaces both."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


@pytest.mark.live  # builds the tutorial's sdist and wheel three times
def test_an_unchanged_project_reuses_its_wheel_and_a_changed_one_is_rebuilt(tmp_path, monkeypatch):
    """The same content (and date) is not built again; any change in it is; the record stays true.

    The reused wheel's record names the commit the tree is at now (the gate
    compares it), a wheel whose bytes were changed in dist/ is never reused,
    and a change undone builds the first bytes again (reproducible).
    """
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree, dist, cache = tmp_path / "plugin", tmp_path / "dist", tmp_path / "cache"
    shutil.copytree(ROOT / TREE, tree, ignore=shutil.ignore_patterns(*sources.PROJECT_LEFTOVERS))
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "one")

    def build() -> sources.Built:
        return sources.build(sources.classify(tree), cache, dist, tmp_path / "work")

    first = build()
    wheel, digest = first.wheel, sources.sha256_of(first.wheel)
    written = _stamp(wheel)
    assert first.provenance.commit == _git(tree, "rev-parse", "HEAD")

    _git(tree, "commit", "-q", "--allow-empty", "-m", "two")  # a new commit, the same content
    again = build()
    assert again.wheel == wheel and _stamp(wheel) == written  # reused, not rebuilt
    assert again.provenance.commit == _git(tree, "rev-parse", "HEAD")
    record = json.loads((dist / sources.BUILD_RECORD).read_text())
    assert {e["commit"] for e in record.values()} == {_git(tree, "rev-parse", "HEAD")}
    assert sources.wheel_provenance(wheel).commit == _git(tree, "rev-parse", "HEAD")

    revision = next((tree / "peek_plugin_tutorial/_private/alembic/versions").glob("1d84*.py"))
    original = revision.read_text()
    revision.write_text(original + "\n# one more line\n")
    changed = build()
    assert _stamp(changed.wheel) != written
    assert sources.sha256_of(changed.wheel) != digest
    with zipfile.ZipFile(changed.wheel) as archive:
        inside = archive.read(revision.relative_to(tree).as_posix()).decode()
    assert inside.endswith("# one more line\n")

    revision.write_text(original)
    undone = build()  # the record now holds the changed content: built again
    assert sources.sha256_of(undone.wheel) == digest

    wheel.write_bytes(wheel.read_bytes() + b"\0")  # bytes the record does not vouch for
    tampered = _stamp(wheel)
    rebuilt = build()
    assert _stamp(rebuilt.wheel) != tampered and sources.sha256_of(rebuilt.wheel) == digest


@pytest.mark.live  # builds the tutorial's sdist and wheel twice
def test_a_project_run_without_dist_reuses_the_wheel_it_kept(tmp_path, monkeypatch):
    """Without --dist the kept wheel in the cache is the one reused; a change builds anew."""
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    tree, cache = tmp_path / "plugin", tmp_path / "cache"
    shutil.copytree(ROOT / TREE, tree, ignore=shutil.ignore_patterns(*sources.PROJECT_LEFTOVERS))

    def build(work: str) -> sources.Built:
        return sources.build(sources.classify(tree), cache, None, tmp_path / work)

    kept = build("one").wheel
    assert kept.is_relative_to(cache / "builds")
    written = _stamp(kept)
    assert build("two").wheel == kept and _stamp(kept) == written
    (tree / "peek_plugin_tutorial" / "NOTES.txt").write_text("a file more\n")
    changed = build("three").wheel
    assert changed.is_relative_to(cache / "builds") and _stamp(changed) != written
