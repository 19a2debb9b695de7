"""The whole PostgreSQL matrix in containers, as ``nox -s migrate-postgres`` runs it.

PostgreSQL 13, 15 and 17 with PostGIS, each in a container of the offline
images, every check on each, nothing left behind afterwards: also after a
run killed with SIGKILL in the middle, once the next run has started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from matrix.provide.docker import LABEL_OWNER_PID, LABEL_PROJECT, LABEL_RUN, PROJECT

pytestmark = pytest.mark.live  # a Docker engine and the offline images
ROOT = Path(__file__).resolve().parent.parent
PG_TARGETS = {"pg13-postgis31", "pg15-postgis33", "pg17-postgis35"}


def our_containers(*, pid: int | None = None, run_id: str | None = None) -> list:
    """The harness's containers of one run (other runs may share the engine)."""
    labels = [f"{LABEL_PROJECT}={PROJECT}"]
    labels += [f"{LABEL_OWNER_PID}={pid}"] if pid else []
    labels += [f"{LABEL_RUN}={run_id}"] if run_id else []
    return docker.from_env().containers.list(
        all=True, filters={"label": labels}, ignore_removed=True
    )


def matrix_command(reports: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "matrix",
        "run",
        "--plugin",
        "plugin_under_test",
        "--dist",
        str(reports / "dist"),
        "--engine",
        "postgresql",
        "--provider",
        "docker",
        "--reports",
        str(reports),
        *extra,
    ]


@pytest.fixture(scope="module")
def matrix_run(live, tmp_path_factory):
    reports = tmp_path_factory.mktemp("docker-matrix")
    done = subprocess.run(
        matrix_command(reports), cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    return done, reports


def test_every_check_passes_on_postgresql_13_15_and_17(matrix_run):
    done, reports = matrix_run
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((reports / "compat.json").read_text())
    assert {t["id"] for t in report["targets"]} == PG_TARGETS
    versions = {
        t["id"]: (t["server_version"].split(".")[0], t["postgis_version"][:3])
        for t in report["targets"]
    }
    assert versions == {
        "pg13-postgis31": ("13", "3.1"),
        "pg15-postgis33": ("15", "3.3"),
        "pg17-postgis35": ("17", "3.5"),
    }
    for target in report["targets"]:
        assert target["provider"] == "docker"
        assert target["status"] == "passed"
        assert {c["status"] for c in target["checks"]} == {"passed"}
        assert 0 < target["ready_seconds"] < 90  # container create -> ready, recorded
    assert report["plugin"]["source"]["kind"] == "project" and report["plugin"]["wheel_sha256"]


def test_no_container_is_left_after_a_run(matrix_run):
    _, reports = matrix_run
    run_id = json.loads((reports / "compat.json").read_text())["run_id"]
    assert our_containers(run_id=run_id) == []


def test_a_run_killed_with_sigkill_leaves_nothing_after_the_next_run(tmp_path):
    killed = subprocess.Popen(
        matrix_command(tmp_path / "killed", "-j", "1"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not our_containers(pid=killed.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert our_containers(pid=killed.pid), "the run never started a container"
    os.killpg(killed.pid, signal.SIGKILL)  # the run and its cell processes, no cleanup
    killed.wait()
    assert our_containers(pid=killed.pid), "a SIGKILLed run cannot clean up: it must remain"

    rerun = subprocess.run(
        matrix_command(tmp_path / "rerun", "--targets", "pg15-postgis33"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert our_containers(pid=killed.pid) == []  # the rerun reaped the dead run's container


def test_sigterm_removes_the_run_s_containers_and_keeps_results(tmp_path):
    reports = tmp_path / "terminated"
    run = subprocess.Popen(
        matrix_command(reports, "-j", "1"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (reports / "targets").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the first target has finished and been written
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 130, output
    assert "partial results" in output
    assert our_containers(pid=run.pid) == []
    report = json.loads((reports / "compat.json").read_text())
    statuses = sorted(t["status"] for t in report["targets"])
    assert "passed" in statuses  # what was gathered is kept
    assert set(statuses) <= {"passed", "error"}  # the interrupted ones say so
