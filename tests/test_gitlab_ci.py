"""The GitLab pipeline agrees with the matrix file, and runs here.

``.gitlab-ci.yml`` lists one test job per target of ``matrix/define/targets.toml``
(``parallel: matrix:`` entries with TARGET and DB_IMAGE): these tests fail
when the two disagree. The last test runs the pipeline's lint, build, a
PostgreSQL test job and report with gitlab-ci-local in shell mode, on a copy
of this work tree, then runs the release gate on what they produced. It is
skipped only outside CI when gitlab-ci-local is not installed
(``npm install -g gitlab-ci-local@4.64.1``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from matrix.define.targets import Matrix, load_matrix

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
KEYWORDS = {"stages", "variables", "default", "workflow", "include"}
PG = "pg15-postgis33"


def resolve(config: dict, name: str) -> dict:
    """A job with its ``extends`` merged in, as GitLab merges them (hashes deeply)."""
    job = dict(config[name])
    parents = job.pop("extends", [])
    merged: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, resolve(config, parent))
    return _merge(merged, job)


def _merge(base: dict, over: dict) -> dict:
    result = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = _merge(result[key], value) if both else value
    return result


def jobs(config: dict) -> dict[str, dict]:
    return {
        name: resolve(config, name)
        for name in config
        if name not in KEYWORDS and not name.startswith(".")
    }


def target_jobs(config: dict) -> dict[str, dict]:
    return {name: job for name, job in jobs(config).items() if job.get("stage") == "test"}


def disagreements(config: dict, matrix: Matrix) -> list[str]:
    """How the pipeline's test jobs differ from the matrix file: ids, images, engines.

    A target's engine shows in the job by the URL variable it sets for the
    external provider (MATRIX_POSTGRESQL_URL or MATRIX_MSSQL_URL).
    """
    found = Counter(
        (entry["TARGET"], entry["DB_IMAGE"], url_env)
        for job in target_jobs(config).values()
        for url_env in job["variables"]
        if url_env.startswith("MATRIX_") and url_env.endswith("_URL")
        for entry in job["parallel"]["matrix"]
    )
    # A GitLab service is pulled from a registry: an image made outside this
    # repository (image_doc, Babelfish) has no job, and must not be given one.
    wanted = {(t.id, t.image, t.settings.url_env) for t in matrix.targets if not t.image_doc}
    where = "TARGET {}, DB_IMAGE {}, in the job with {}"
    problems = [f"{key[0]} has {count} jobs" for key, count in found.items() if count > 1]
    problems += [f"missing from .gitlab-ci.yml: {where.format(*k)}" for k in wanted - found.keys()]
    problems += [f"not in {matrix.path.name}: {where.format(*k)}" for k in found.keys() - wanted]
    return sorted(problems)


def test_stages_are_the_release_pipeline():
    assert CONFIG["stages"] == ["lint", "build", "test", "report", "publish"]
    assert {job["stage"] for job in jobs(CONFIG).values()} == set(CONFIG["stages"])


def test_one_test_job_per_matrix_target():
    assert disagreements(CONFIG, load_matrix()) == []
    names = {name for name in target_jobs(CONFIG)}
    assert names == {"test:postgresql", "test:mssql"}
    local_only = [t.id for t in load_matrix().targets if t.image_doc]
    assert local_only == ["babelfish4-tsql"]
    jobs_of = {
        e["TARGET"] for job in target_jobs(CONFIG).values() for e in job["parallel"]["matrix"]
    }
    assert not jobs_of & set(local_only)


def test_a_pipeline_that_disagrees_with_the_matrix_is_caught():
    changed = copy.deepcopy(CONFIG)
    postgresql = changed["test:postgresql"]["parallel"]["matrix"]
    postgresql.remove(next(e for e in postgresql if e["TARGET"] == "pg17-postgis35"))
    postgresql.append({"TARGET": "pg18-postgis36", "DB_IMAGE": "postgis/postgis:18-3.6"})
    mssql = changed["test:mssql"]["parallel"]["matrix"]
    mssql[0] = {**mssql[0], "DB_IMAGE": "mcr.microsoft.com/mssql/server:2017-latest"}
    mssql.append(dict(mssql[1]))
    assert disagreements(changed, load_matrix()) == [
        "missing from .gitlab-ci.yml: TARGET mssql2019, DB_IMAGE "
        "mcr.microsoft.com/mssql/server:2019-latest, in the job with MATRIX_MSSQL_URL",
        "missing from .gitlab-ci.yml: TARGET pg17-postgis35, DB_IMAGE "
        "postgis/postgis:17-3.5, in the job with MATRIX_POSTGRESQL_URL",
        "mssql2022 has 2 jobs",
        "not in targets.toml: TARGET mssql2019, DB_IMAGE "
        "mcr.microsoft.com/mssql/server:2017-latest, in the job with MATRIX_MSSQL_URL",
        "not in targets.toml: TARGET pg18-postgis36, DB_IMAGE "
        "postgis/postgis:18-3.6, in the job with MATRIX_POSTGRESQL_URL",
    ]


def test_test_jobs_prove_the_built_wheel_on_a_service_and_keep_the_evidence():
    for name, job in target_jobs(CONFIG).items():
        assert job["needs"] == [{"job": "build", "artifacts": True}], name
        assert job["services"] == [{"name": "$DB_IMAGE", "alias": "db"}], name
        (command,) = job["script"]
        assert command.startswith('python -m matrix run --plugin dist/*.whl --targets "$TARGET"')
        assert '--provider "$MATRIX_PROVIDER"' in command and "--reports reports" in command
        assert job["artifacts"]["when"] == "always"
        assert "reports/targets/" in job["artifacts"]["paths"]
        assert job["artifacts"]["reports"] == {"junit": "reports/junit.xml"}
        url_env = next(v for v in job["variables"] if v.endswith("_URL"))
        assert "@db:" in job["variables"][url_env]
    assert CONFIG["variables"]["MATRIX_PROVIDER"] == "external"
    password = jobs(CONFIG)["test:postgresql"]["variables"]["POSTGRES_PASSWORD"]
    assert "${CI_JOB_ID}" in password  # per job; never a word the reports hold, as "matrix" was
    mssql = jobs(CONFIG)["test:mssql"]["variables"]
    assert mssql["ACCEPT_EULA"] == "Y"
    assert "${MSSQL_SA_PASSWORD}" in mssql["MATRIX_MSSQL_URL"]  # a masked CI/CD variable
    assert jobs(CONFIG)["build"]["artifacts"]["paths"] == ["dist/"]


def test_report_merges_the_targets_and_publish_runs_on_tags_after_everything():
    all_jobs = jobs(CONFIG)
    report = all_jobs["report"]
    assert report["script"] == [
        "python -m matrix report reports/targets/*.json --reports reports || merged=$?",
        "python -m matrix html --reports reports",
        'exit "${merged:-0}"',
    ]
    assert set(report["needs"]) == set(target_jobs(CONFIG))
    publish = all_jobs["publish"]
    assert publish["rules"] == [{"if": "$CI_COMMIT_TAG", "when": "always"}]
    needed = {n["job"] if isinstance(n, dict) else n for n in publish["needs"]}
    assert needed == {"build", "report", *target_jobs(CONFIG)}
    assert "nox -s publish" in publish["script"]
    assert all("rules" not in job for name, job in all_jobs.items() if name != "publish")


# -- the pipeline, run by gitlab-ci-local ----------------------------------------------


def snapshot(tmp_path: Path) -> Path:
    """This work tree (tracked and new files) as a fresh repository with one commit."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    copy_root = tmp_path / "repo"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (copy_root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy_root / name)
    git = ["git", "-c", "user.name=matrix", "-c", "user.email=matrix@localhost"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *command], cwd=copy_root, check=True)
    return copy_root


@pytest.mark.skipif(
    shutil.which("gitlab-ci-local") is None and not os.environ.get("CI"),
    reason="gitlab-ci-local is not installed (npm install -g gitlab-ci-local@4.64.1)",
)
def test_gitlab_ci_local_runs_lint_build_a_postgresql_job_and_report(pg_server_url, tmp_path):
    repo = snapshot(tmp_path)
    env = {
        **os.environ,
        "MATRIX_POSTGRESQL_URL": pg_server_url.render_as_string(hide_password=False),
    }
    done = subprocess.run(
        ["bash", "scripts/gitlab-ci-local.sh", PG],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    for job in ("lint", "build", f"test:postgresql: [{PG},postgis/postgis:15-3.3]", "report"):
        assert f"PASS  {job}" in output, job

    (wheel,) = (repo / "dist").glob("*.whl")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    report = json.loads((repo / "reports" / "compat.json").read_text())
    assert [(t["id"], t["status"], t["provider"]) for t in report["targets"]] == [
        (PG, "passed", "external")
    ]
    assert report["plugin"]["wheel_sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert report["plugin"]["source"]["commit"] == head  # built by the build job from this tree
    assert (repo / "reports" / "compat.md").is_file()
    assert (repo / "reports" / "index.html").is_file()

    others = [t.id for t in load_matrix().targets if t.id != PG]
    gate = subprocess.run(
        [sys.executable, "-m", "matrix", "gate", "--reports", "reports", "--dist", "dist"]
        + [arg for target in others for arg in ("--allow-missing", target)],
        cwd=repo,
        env={**os.environ, "CI_COMMIT_SHA": head},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "PASSED" in gate.stdout
