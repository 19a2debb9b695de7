"""Build and publish, against a real pypiserver with authentication.

The release API is first tested without servers: the release notes of a
passing verdict (waivers and allowed-missing targets listed), the repository
read from twine's variables, a dry run, and the refusal of a refused verdict.
Then, end to end (``live``): the tutorial plugin is built as a release builds it, proven on the live
PostgreSQL 15 + PostGIS server, and published with real twine to a real
pypiserver on 127.0.0.1 that asks for a password; then real pip installs it
from there and the harness runs its migrations from that install.

SQL Server cannot run here, so the passing report is made for a matrix file
written by the test from the real one, in which only ``pg15-postgis33`` is
required (``mssql2019`` is run, ``not_run``, and not required); the same
report under a matrix that requires ``mssql2019`` is the refusal case. Every
refusal is checked on the server too: nothing was uploaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import (
    BUILD,
    MATRIX,
    PUBLISHED,
    SHA,
    PyPI,
    checks,
    evidence,
    judged,
    report,
    target,
    unreached,
)

from matrix import masking
from matrix.errors import HarnessError
from matrix.gate import Build, evaluate
from matrix.install.sources import source_date_epoch
from matrix.publish.upload import publish as publish_verdict
from matrix.publish.upload import release_notes, repository_from_env
from matrix.results import Finding

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "plugin_under_test"
WHEEL = "peek_plugin_tutorial-1.0.0-py3-none-any.whl"
SDIST = "peek_plugin_tutorial-1.0.0.tar.gz"
COMMIT = "5eed" * 10
PG, SQL = "pg15-postgis33", "mssql2019"
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "build", "dist", "*.egg-info")


def matrix_file(path: Path, required: dict[str, bool]) -> Path:
    """Some targets of the real matrix file, with the test's ``required`` flags."""
    text = (ROOT / "matrix" / "define" / "targets.toml").read_text()
    head, *blocks = text.split("\n[[target]]\n")
    kept = []
    for block in blocks:
        target_id = re.search(r'^id = "([^"]+)"', block, re.MULTILINE)[1]
        if target_id in required:
            flag = str(required[target_id]).lower()
            kept.append(re.sub(r"^required = \w+", f"required = {flag}", block, flags=re.M))
    path.write_text(head + "".join("\n[[target]]\n" + block for block in kept))
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m matrix ...`` as a release engineer runs it, for one fixed commit."""
    return subprocess.run(
        [sys.executable, "-m", "matrix", *args],
        cwd=ROOT,
        env={**os.environ, "CI_COMMIT_SHA": COMMIT, "MATRIX_MSSQL_URL": "", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def build(project: Path, dist: Path, env: dict[str, str] | None = None) -> Path:
    done = cli("build", "--plugin", str(project), "--dist", str(dist), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return dist / WHEEL


def run_matrix(plugin: Path, reports: Path, matrix: Path, url: str) -> dict:
    done = cli(
        *("run", "--plugin", str(plugin), "--reports", str(reports), "--matrix", str(matrix)),
        *("--targets", f"{PG},{SQL}", "--provider", "external"),
        env={"MATRIX_POSTGRESQL_URL": url},
    )
    report = json.loads((reports / "compat.json").read_text())
    assert report["targets"][1]["status"] == "not_run", done.stdout
    return report


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Proven:
    dist: Path
    sha256: str
    reports: Path
    lax: Path  # only pg15-postgis33 required
    strict: Path  # pg15-postgis33 and mssql2019 required
    pg_url: str = field(repr=False)


@pytest.fixture(scope="module")
def proven(pg_server_url, tmp_path_factory) -> Proven:
    """The tutorial wheel, built and run on PostgreSQL 15 (passed) and SQL Server (not_run)."""
    root = tmp_path_factory.mktemp("proven")
    wheel = build(PROJECT, root / "dist")
    lax = matrix_file(root / "lax.toml", {PG: True, SQL: False})
    strict = matrix_file(root / "strict.toml", {PG: True, SQL: True})
    url = pg_server_url.render_as_string(hide_password=False)
    report = run_matrix(wheel, root / "reports", lax, url)
    assert report["targets"][0]["status"] == "passed"
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return Proven(root / "dist", sha, root / "reports", lax, strict, url)


@pytest.fixture
def reports(proven, tmp_path) -> Path:
    """This test's copy of the passing reports: the gate writes into them."""
    return Path(shutil.copytree(proven.reports, tmp_path / "reports"))


def publish(pypi: PyPI, reports: Path, dist: Path, matrix: Path, *args: str, env=None):
    return cli(
        *("publish", "--reports", str(reports), "--dist", str(dist), "--matrix", str(matrix)),
        *args,
        env={**pypi.env, **(env or {})},
    )


# -- the release API, without servers ----------------------------------------------------

ACKNOWLEDGED = Finding("table_dropped", "table cache dropped", "4795161756fc", waived="rebuilt")


def test_release_notes_list_waived_targets_their_waivers_and_allowed_missing_ones():
    waived = target(PG, with_checks=checks(data_survives=judged("data_survives", ACKNOWLEDGED)))
    run = report(waived, unreached(SQL), absent=("mssql2022",))
    verdict = evaluate(evidence(run), MATRIX, BUILD, frozenset({SQL, "mssql2022"}))
    assert verdict.passed
    notes = release_notes(verdict)
    assert f"| {PG} | PostgreSQL 15 + PostGIS 3.3 | yes | waived |" in notes
    assert f"| {SQL} | SQL Server 2019 | yes | not_run (allowed missing) |" in notes
    assert "| mssql2022 | - | yes | missing (allowed missing) |" in notes
    assert "on this wheel, except those allowed missing (matrix run" in notes
    assert (
        f"- {PG} data_survives at revision 4795161756fc, table_dropped: table cache dropped "
        "(waived: rebuilt)"
    ) in notes


def test_release_notes_of_a_clean_pass_list_no_waivers():
    notes = release_notes(evaluate(evidence(report()), MATRIX, BUILD))
    assert "acknowledges" not in notes and "allowed missing" not in notes


def test_the_repository_comes_from_twines_variables_and_its_password_is_masked():
    assert repository_from_env({}, None) is None
    env = {"TWINE_REPOSITORY_URL": "https://repo.example/pypi", "TWINE_PASSWORD": "s3cret-pw"}
    repository = repository_from_env(env, None)
    assert repository.index_url == "https://repo.example/pypi/simple/"
    assert repository.auth_for(repository.index_url) is None  # no user: asked anonymously
    assert masking.mask("pw s3cret-pw") == f"pw {masking.MASK}"
    assert repository_from_env(env, "https://mirror.example/simple/").index_url == (
        "https://mirror.example/simple/"
    )


def test_credentials_go_to_the_repositorys_own_hosts_only_and_the_index_password_is_masked():
    env = {
        "TWINE_REPOSITORY_URL": "https://repo.example/api/pypi",
        "TWINE_USERNAME": "ci",
        "TWINE_PASSWORD": "upl0ad-pw",
    }
    repository = repository_from_env(env, "https://reader:ind3x-pw@index.example:8443/simple/")
    own = ("ci", "upl0ad-pw")
    assert repository.auth_for("https://repo.example/api/pypi/simple/x/") == own
    assert repository.auth_for("https://index.example:8443/simple/x/") == own
    assert repository.auth_for("https://files.cdn.example/x-1.0-py3-none-any.whl") is None
    assert repository.auth_for("http://repo.example/api/pypi/") is None  # not over plain http
    assert masking.mask("at ind3x-pw") == f"at {masking.MASK}"


def test_a_dry_run_that_cannot_say_where_it_would_upload_is_bad_input(tmp_path, monkeypatch):
    """Exit 2 before anything is decided or written, naming the variable that says where."""
    monkeypatch.delenv("TWINE_REPOSITORY_URL", raising=False)
    (tmp_path / "compat.json").write_text(json.dumps(report().to_dict(), default=str))
    done = cli("publish", "--dry-run", "--reports", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    error = one_paragraph(done.stderr)
    assert "TWINE_REPOSITORY_URL is not set, so there is nowhere to publish and a dry run " in (
        error
    )
    assert "Set TWINE_REPOSITORY_URL (the index's upload URL)" in error
    assert "Release gate" not in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compat.json"]


def test_a_refused_verdict_is_never_published(tmp_path):
    verdict = evaluate(evidence(report(absent=(PG,))), MATRIX, BUILD)
    repository = repository_from_env({"TWINE_REPOSITORY_URL": "http://127.0.0.1:9/"}, None)
    with pytest.raises(HarnessError, match="The gate refused"):
        publish_verdict(verdict, repository, tmp_path)
    assert not (tmp_path / "release-notes.md").exists()


def test_release_notes_name_where_the_plugin_came_from_and_no_commit_it_lacks():
    published = report(source=PUBLISHED)
    notes = release_notes(evaluate(evidence(published), MATRIX, Build(BUILD.wheel, SHA, None)))
    assert "the plugin: requirement peek-plugin-chat==5.1.6 from http://127.0.0.1:3141/simple/" in (
        notes
    )
    assert "commit" not in notes


# -- build ----------------------------------------------------------------------


@pytest.mark.live
def test_build_gives_checked_reproducible_dists(proven, tmp_path):
    names = sorted(p.name for p in proven.dist.iterdir())
    assert names == ["SHA256SUMS", WHEEL, "peek_plugin_tutorial-1.0.0.tar.gz", "provenance.json"]
    sums = dict(
        reversed(line.split("  ")) for line in (proven.dist / "SHA256SUMS").read_text().splitlines()
    )
    for name, digest in sums.items():
        assert hashlib.sha256((proven.dist / name).read_bytes()).hexdigest() == digest
    assert sums[WHEEL] == proven.sha256
    copy = Path(shutil.copytree(PROJECT, tmp_path / "project", ignore=COPY_IGNORE))
    same_time = {"SOURCE_DATE_EPOCH": source_date_epoch(PROJECT)}  # the copy has no git log
    again = build(copy, tmp_path / "dist", env=same_time)
    assert again.read_bytes() == (proven.dist / WHEEL).read_bytes()
    assert (tmp_path / "dist" / SDIST).read_bytes() == (proven.dist / SDIST).read_bytes()
    with zipfile.ZipFile(proven.dist / WHEEL) as archive:
        names = set(archive.namelist())
    alembic = "peek_plugin_tutorial/_private/alembic"
    assert {f"{alembic}/env.py", f"{alembic}/script.py.mako"} <= names
    assert "peek_plugin_tutorial/_private/alembic.ini" in names
    assert any(n.startswith(f"{alembic}/versions/57f8be797dd0") for n in names)


@pytest.mark.live  # builds twice
def test_the_sdist_is_reproducible_its_times_are_source_date_epoch(tmp_path):
    """Two builds of one commit, seconds apart, give the same sdist bytes.

    setuptools writes PKG-INFO, the egg-info and the folders at build time,
    and gzip stamps the time it compressed: every one of those must say
    SOURCE_DATE_EPOCH instead, or the sha256 changes with the clock.
    """
    first = build(PROJECT, tmp_path / "one").parent / SDIST
    started = time.time()
    while time.time() - started < 1.1:  # tar keeps whole seconds: let the clock move on
        time.sleep(0.2)
    second = build(PROJECT, tmp_path / "two").parent / SDIST
    assert hashlib.sha256(first.read_bytes()).hexdigest() == (
        hashlib.sha256(second.read_bytes()).hexdigest()
    )
    epoch = int(source_date_epoch(PROJECT))
    with gzip.open(first) as stream:
        stream.read(1)
        assert stream.mtime == epoch
    with tarfile.open(first) as archive:
        members = archive.getmembers()
    assert [m.name for m in members if m.mtime > epoch] == []
    assert {m.name.split("/", 1)[-1] for m in members} >= {"PKG-INFO", "setup.cfg"}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


@pytest.mark.live  # builds a wheel
def test_build_fails_naming_what_the_wheel_lacks(tmp_path):
    copy = Path(shutil.copytree(PROJECT, tmp_path / "project", ignore=COPY_IGNORE))
    pyproject = copy / "pyproject.toml"
    text = pyproject.read_text()
    for line in ('"peek_plugin_tutorial._private" = ["alembic.ini"]\n', "script.py.mako"):
        assert line in text
    text = text.replace('"peek_plugin_tutorial._private" = ["alembic.ini"]\n', "")
    pyproject.write_text(text.replace('"script.py.mako"', '"*.txt"'))
    done = cli("build", "--plugin", str(copy), "--dist", str(tmp_path / "dist"))
    assert done.returncode == 2, done.stdout
    error = one_paragraph(done.stderr)
    assert "lacks files the migrations need at run time: " in error
    assert "peek_plugin_tutorial/_private/alembic/script.py.mako, " in error
    assert "peek_plugin_tutorial/_private/alembic.ini." in error
    assert "pyproject.toml (its tool.setuptools.package-data table)" in error
    assert not (tmp_path / "dist" / "SHA256SUMS").exists()


# -- publish ----------------------------------------------------------------------


@pytest.mark.live
def test_publish_uploads_the_proven_wheel_once_and_pip_installs_it(
    proven, reports, pypi, tmp_path, run_matrix_cli
):
    done = publish(pypi, reports, proven.dist, proven.lax)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "PASSED: every required target passed" in output
    assert f"Published {WHEEL} (sha256 {proven.sha256}) to {pypi.url}" in output
    assert pypi.password not in output
    assert pypi.files() == [WHEEL]
    assert hashlib.sha256((pypi.packages / WHEEL).read_bytes()).hexdigest() == proven.sha256
    notes = (reports / "release-notes.md").read_text()
    assert f"Wheel `{WHEEL}`, sha256 `{proven.sha256}`; the plugin: wheel " in notes
    assert f"built from plugin_under_test at commit {COMMIT}." in notes
    assert re.search(
        rf"\| {PG} \| PostgreSQL 15 \+ PostGIS 3.3 \(server 15\.\d+, .*\| passed \|", notes
    )
    assert f"| {SQL} | SQL Server 2019 | no | not_run |" in notes

    again = publish(pypi, reports, proven.dist, proven.lax)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{WHEEL} is already published at {pypi.url} with the same sha256: skipped." in (
        again.stdout
    )
    assert pypi.files() == [WHEEL]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    index = ["--index-url", pypi.index_with_credentials, "--no-deps"]
    for command in (["install", *index], ["download", "--dest", str(tmp_path / "got"), *index]):
        done = subprocess.run(
            [*pip, *command, "peek-plugin-tutorial==1.0.0"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    got = (tmp_path / "got" / WHEEL).read_bytes()
    assert hashlib.sha256(got).hexdigest() == proven.sha256
    (package,) = venv.glob("lib/python*/site-packages/peek_plugin_tutorial")
    # A package used in place declares nothing, so its dependency is named, as the harness asks.
    run = run_matrix_cli(
        *("--plugin", str(package), "--with", "GeoAlchemy2"),
        *("--targets", PG, "--provider", "external"),
    )
    assert run.exit_code == 0, run.output
    assert run.target(PG)["status"] == "passed"
    assert {c["status"] for c in run.target(PG)["checks"]} == {"passed"}


@pytest.mark.live
def test_publish_refuses_a_required_target_not_run_and_uploads_nothing(proven, reports, pypi):
    done = publish(pypi, reports, proven.dist, proven.strict)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"- {SQL} (SQL Server 2019) is required but was not run" in done.stdout
    assert done.stdout.rstrip().endswith("Nothing was uploaded.")
    assert pypi.files() == []


@pytest.mark.live
def test_publish_with_allow_missing_records_the_exception(proven, reports, pypi):
    done = publish(pypi, reports, proven.dist, proven.strict, "--allow-missing", SQL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert pypi.files() == [WHEEL]
    assert json.loads((reports / "compat.json").read_text())["allowed_missing"] == [SQL]
    assert f"| {SQL} | SQL Server 2019 | yes | not_run (allowed missing) |" in (
        (reports / "release-notes.md").read_text()
    )


@pytest.mark.live
def test_publish_refuses_a_required_target_that_failed(proven, pypi, tmp_path):
    copy = Path(shutil.copytree(PROJECT, tmp_path / "project", ignore=COPY_IGNORE))
    (revision,) = copy.glob("peek_plugin_tutorial/_private/alembic/versions/57f8be797dd0_*.py")
    text = revision.read_text()
    revision.write_text(text.replace("def downgrade():\n", "def downgrade():\n    return\n", 1))
    wheel = build(copy, tmp_path / "dist")
    report = run_matrix(wheel, tmp_path / "reports", proven.lax, proven.pg_url)
    assert report["targets"][0]["status"] == "failed"

    done = publish(pypi, tmp_path / "reports", tmp_path / "dist", proven.lax)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"- {PG} (PostgreSQL 15 + PostGIS 3.3) is required and failed (checks " in done.stdout
    assert "downgrade_leaves_no_trace" in done.stdout
    assert "see compat.md for the failing checks" in done.stdout
    assert pypi.files() == []


@pytest.mark.live
def test_publish_refuses_a_wheel_changed_after_the_report(proven, reports, pypi, tmp_path):
    copy = Path(shutil.copytree(PROJECT, tmp_path / "project", ignore=COPY_IGNORE))
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\nOne more line after the matrix ran.\n")
    changed = build(copy, tmp_path / "dist")

    done = publish(pypi, reports, tmp_path / "dist", proven.lax)
    assert done.returncode == 1, done.stdout + done.stderr
    sha = hashlib.sha256(changed.read_bytes()).hexdigest()
    said = one_paragraph(done.stdout)
    assert f"compat.json proves the wheel {WHEEL} (sha256 {proven.sha256}), but the wheel to " in (
        said
    )
    assert f"publish, {changed}, has sha256 {sha}: that is not the wheel the matrix ran" in said
    assert f"python -m matrix run --plugin {changed} --matrix {proven.lax}" in said
    assert pypi.files() == []


@pytest.mark.live
def test_publish_dry_run_shows_what_would_be_uploaded_and_writes_nothing(proven, reports, pypi):
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in reports.rglob("*") if p.is_file()}
    done = publish(pypi, reports, proven.dist, proven.lax, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    size = (proven.dist / WHEEL).stat().st_size
    assert f"would upload {proven.dist / WHEEL} ({size} bytes, sha256 {proven.sha256})" in (
        done.stdout
    )
    assert f"to {pypi.url} as publisher; nothing was uploaded" in done.stdout
    assert pypi.password not in done.stdout + done.stderr
    assert pypi.files() == []
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in reports.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.live
def test_a_dry_run_says_what_it_could_not_learn_from_an_index_it_cannot_read(proven, reports, pypi):
    """Nothing listens on 127.0.0.1:9: the preview still says what would go where, and that
    a real publish would stop at the index; a real publish does stop (exit 2)."""
    nowhere = {"MATRIX_INDEX_URL": "http://127.0.0.1:9/simple/"}
    done = publish(pypi, reports, proven.dist, proven.lax, "--dry-run", env=nowhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"would upload {proven.dist / WHEEL}" in done.stdout
    said = " ".join(done.stdout.split())
    assert "Not known: whether the index already serves it." in said
    assert "A real publish asks the index first and stops here" in said
    assert "MATRIX_INDEX_URL" in said
    assert pypi.files() == []
    done = publish(pypi, reports, proven.dist, proven.lax, env=nowhere)
    assert done.returncode == 2, done.stdout + done.stderr
    assert pypi.files() == []


@pytest.mark.live
def test_publish_refuses_other_bytes_under_a_published_name(proven, reports, pypi):
    (pypi.packages / WHEEL).write_bytes((proven.dist / WHEEL).read_bytes() + b"\0")
    done = publish(pypi, reports, proven.dist, proven.lax)
    assert done.returncode == 2, done.stdout
    error = one_paragraph(done.stderr)
    assert f"already serves {WHEEL} with sha256 " in error
    assert f"not the proven {proven.sha256}" in error
    assert "Bump the plugin's version" in error


@pytest.mark.live
def test_publish_needs_a_repository_and_never_prints_the_password(proven, reports, pypi):
    done = publish(pypi, reports, proven.dist, proven.lax, env={"TWINE_REPOSITORY_URL": ""})
    assert done.returncode == 2
    assert "TWINE_REPOSITORY_URL is not set" in one_paragraph(done.stderr)
    wrong = "Wrong-" + pypi.password
    done = publish(pypi, reports, proven.dist, proven.lax, env={"TWINE_PASSWORD": wrong})
    assert done.returncode == 2
    assert "The package index answered 403" in one_paragraph(done.stderr)
    assert wrong not in done.stdout + done.stderr
    assert pypi.files() == []


@pytest.mark.live
@pytest.mark.skipif(shutil.which("nox") is None, reason="nox is not installed")
def test_the_nox_sessions_dist_yields_to_the_users(tmp_path):
    """``nox -s build -- --dist DIR`` builds into DIR only: the session adds no second --dist."""
    done = subprocess.run(
        ["nox", "-s", "build", "--", "--plugin", str(PROJECT), "--dist", str(tmp_path / "mine")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (command,) = [line for line in done.stderr.splitlines() if "python -m matrix build" in line]
    assert command.count("--dist") == 1 and command.endswith(f"--dist {tmp_path / 'mine'}")
    assert (tmp_path / "mine" / WHEEL).is_file()
