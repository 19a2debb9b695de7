"""The docker provider on the real engine, with the offline PostGIS images.

No mocks: containers are really started, killed and reaped. The engine here
has no bridge network, so every provider uses the host network, as CI does.
Each test uses its own run id and checks, by that run's label, that nothing
it started is left behind.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from matrix import masking
from matrix.define.targets import Target, load_matrix
from matrix.engines import engine_named
from matrix.errors import ProviderUnavailable
from matrix.provide import databases, images
from matrix.provide import docker as docker_provider
from matrix.provide.base import free_port
from matrix.provide.databases import NotReady
from matrix.provide.docker import DockerProvider, check_memory, container_spec

ROOT = Path(__file__).resolve().parent.parent
MATRIX = load_matrix()
PG15 = MATRIX.select(["pg15-postgis33"])[0]
MSSQL = MATRIX.select(["mssql2022"])[0]
# A thrown-away server needs no durability (as the native provider's servers).
THROWAWAY = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


@pytest.fixture(scope="module")
def client(live):
    client = images.docker_client()
    yield client
    client.close()


@pytest.fixture
def run_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def provider(live, run_id: str):
    provider = DockerProvider(run_id, network="host")
    yield provider
    provider.close()


def run_containers(client, run_id: str) -> list:
    return client.containers.list(
        all=True, filters={"label": f"peek-matrix.run={run_id}"}, ignore_removed=True
    )


def spec_for(target: Target, network: str, password: str = "Pa55-word_x"):
    return container_spec(
        target,
        password=password,
        host_port=45678,
        network=network,
        run_id="run-1",
        image="some/image:1",
    )


# --- container_spec: pure -------------------------------------------------------------


def test_postgresql_spec_on_the_host_network() -> None:
    spec = spec_for(PG15, "host")

    assert spec.environment == {
        "POSTGRES_USER": "peek",
        "POSTGRES_PASSWORD": "Pa55-word_x",
        "POSTGRES_DB": "peek",
        "PEEK_MATRIX_CLUSTER": "prebuilt",
        "PGPORT": "45678",
    }
    assert spec.command == ["postgres", "-c", "listen_addresses=127.0.0.1", *THROWAWAY]
    assert spec.network_mode == "host"
    assert spec.ports == {}
    assert spec.user == "peek"
    assert spec.image == "some/image:1"
    assert (spec.server_url.host, spec.server_url.port) == ("127.0.0.1", 45678)
    assert spec.server_url.drivername == "postgresql+psycopg"
    assert spec.server_url.password == "Pa55-word_x"


def test_a_run_that_times_migrations_gets_a_durable_server() -> None:
    """migration_cost's seconds are a site's: fsync and the rest stay on for it."""
    durable = container_spec(
        PG15,
        password="x",
        host_port=45678,
        network="host",
        run_id="run-1",
        image="some/image:1",
        durable=True,
    )

    assert durable.command == ["postgres", "-c", "listen_addresses=127.0.0.1"]
    assert spec_for(PG15, "host").command[-len(THROWAWAY) :] == THROWAWAY


def test_only_a_target_with_postgis_asks_for_the_prebuilt_cluster() -> None:
    """Its template1 holds PostGIS: a target without must not find it in its databases."""
    plain = replace(PG15, postgis=None)

    assert spec_for(PG15, "host").environment["PEEK_MATRIX_CLUSTER"] == "prebuilt"
    assert "PEEK_MATRIX_CLUSTER" not in spec_for(plain, "host").environment


def test_postgresql_spec_on_the_bridge_publishes_on_loopback_only() -> None:
    spec = spec_for(PG15, "bridge")

    assert spec.ports == {"5432/tcp": ("127.0.0.1", 45678)}
    assert "PGPORT" not in spec.environment
    assert spec.command == ["postgres", *THROWAWAY]  # listening on the container's interfaces
    assert spec.network_mode == "bridge"
    assert spec.server_url.port == 45678


def test_every_container_is_labelled_with_its_owner() -> None:
    spec = spec_for(PG15, "host")

    assert spec.labels == {
        "peek-matrix.project": "peek-matrix",
        "peek-matrix.run": "run-1",
        "peek-matrix.target": "pg15-postgis33",
        "peek-matrix.owner-pid": str(os.getpid()),
        "peek-matrix.owner-host": socket.gethostname(),
    }
    assert spec.name == "peek-matrix-run-1-pg15-postgis33-45678"


@pytest.mark.parametrize(
    "target", MATRIX.select(["mssql2019", "mssql2022", "mssql2025"]), ids=lambda t: t.id
)
def test_every_sql_server_container_runs_its_images_default_edition_on_loopback(target) -> None:
    """Microsoft's quickstart runs each image (2019, 2022, 2025) with ACCEPT_EULA and the sa
    password only, "By default, this quickstart creates a container with the Developer
    edition"; 2025's MSSQL_PID table has no "Developer" ("Configure SQL Server settings with
    environment variables on Linux"). On the host network MSSQL_IP_ADDRESS (mssql-conf's
    network.ipaddress, "IP address for incoming connections") keeps it on 127.0.0.1."""
    host = spec_for(target, "host")
    assert "MSSQL_PID" not in host.environment
    assert host.environment["ACCEPT_EULA"] == "Y"
    assert host.environment["MSSQL_IP_ADDRESS"] == "127.0.0.1"
    assert "MSSQL_IP_ADDRESS" not in spec_for(target, "bridge").environment


def test_mssql_spec() -> None:
    password = masking.generate_password()
    host = spec_for(MSSQL, "host", password)
    bridge = spec_for(MSSQL, "bridge", password)

    assert host.environment == {
        "ACCEPT_EULA": "Y",
        "MSSQL_SA_PASSWORD": password,
        "MSSQL_TCP_PORT": "45678",
        "MSSQL_IP_ADDRESS": "127.0.0.1",
    }
    assert host.command is None
    assert host.user == bridge.user == "sa"
    assert bridge.ports == {"1433/tcp": ("127.0.0.1", 45678)}
    assert "MSSQL_TCP_PORT" not in bridge.environment
    assert "MSSQL_IP_ADDRESS" not in bridge.environment  # published on 127.0.0.1 by Docker
    assert bridge.server_url.drivername == "mssql+pymssql"
    assert bridge.server_url.database == "master"
    assert host.labels["peek-matrix.target"] == "mssql2022"


def test_the_sa_password_is_random_complex_and_masked() -> None:
    first, second = masking.generate_password(), masking.generate_password()

    assert first != second
    for pool in (string.ascii_uppercase, string.ascii_lowercase, string.digits, "-_.~"):
        assert any(c in pool for c in first)
    assert len(first) >= 16
    assert masking.mask(f"pw={first}") == "pw=***"


def test_sql_server_is_refused_below_its_memory_minimum(client, provider, run_id) -> None:
    greedy = replace(MSSQL, settings=replace(MSSQL.settings, min_memory_mb=10**9))

    with pytest.raises(ProviderUnavailable, match="needs 1000000000 MB of memory"):
        check_memory(client, greedy)
    with pytest.raises(ProviderUnavailable, match="MATRIX_MSSQL_URL"):
        with provider.database(greedy, lambda message: None):
            pass
    check_memory(client, replace(MSSQL, settings=replace(MSSQL.settings, min_memory_mb=1)))
    assert run_containers(client, run_id) == []


def test_a_target_without_any_image_is_unavailable(provider) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        with provider.database(MSSQL, lambda message: None):
            pass

    message = str(caught.value)
    assert MSSQL.image in message
    assert "--provider external" in message and "MATRIX_MSSQL_URL" in message


def test_unavailable_reason(monkeypatch) -> None:
    assert DockerProvider("r").unavailable_reason(PG15) is None

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    reason = DockerProvider("r").unavailable_reason(PG15)

    assert "DOCKER_HOST" in reason and "Start the daemon" in reason


# --- real containers -------------------------------------------------------------------


def test_database_on_the_offline_image_then_nothing_left(client, provider, run_id) -> None:
    messages: list[str] = []

    with provider.database(PG15, messages.append) as db:
        (container,) = run_containers(client, run_id)
        engine = databases.connect_engine(db.url)
        try:
            with engine.begin() as conn:
                # PostGIS comes with the database: the prebuilt cluster's template1 has it.
                postgis = conn.execute(sa.text("SELECT postgis_lib_version()")).scalar_one()
                listen = conn.execute(sa.text("SHOW listen_addresses")).scalar_one()
        finally:
            engine.dispose()

    assert db.provider == "docker"
    assert db.url.database.startswith("matrix_")
    assert db.url.host == "127.0.0.1"
    assert listen == "127.0.0.1"
    assert postgis.startswith(f"{PG15.postgis}.")
    assert 0 < db.ready_seconds < PG15.settings.ready_timeout
    assert f"image {PG15.recipe.tag}" in db.notes or f"image {PG15.image}" in db.notes
    assert container.labels["peek-matrix.target"] == PG15.id
    assert run_containers(client, run_id) == []
    assert not any(db.url.password in m for m in messages)


def test_an_engine_without_a_bridge_serves_bridge_targets_on_the_host_network(
    client, run_id
) -> None:
    if client.networks.list(names=["bridge"]):
        pytest.skip("this engine has a bridge network: nothing to fall back from")
    explicit = DockerProvider(run_id, network="bridge")
    default = DockerProvider(run_id)
    logged: list[str] = []
    try:
        with pytest.raises(ProviderUnavailable, match="--docker-network host"):
            with explicit.database(PG15, lambda message: None):
                pass
        with default.database(PG15, logged.append) as db:
            (container,) = run_containers(client, run_id)
            assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    finally:
        default.close()

    assert PG15.network == "bridge"
    assert "host network: the Docker engine has no bridge network" in db.notes
    # One line per fact: the runner logs the notes; the provider does not say it again.
    assert not [message for message in logged if "has no bridge network" in message]


def test_keep_leaves_the_container_and_says_how_to_connect(client, run_id) -> None:
    provider = DockerProvider(run_id, network="host", keep=True)
    messages: list[str] = []
    try:
        with provider.database(PG15, messages.append) as db:
            pass
        provider.close()
        (container,) = run_containers(client, run_id)

        assert container.status == "running"
        assert container.labels["peek-matrix.keep"] == "true"
        hint = messages[-1]
        assert f"docker exec -it {container.name} psql -U peek -d {db.url.database}" in hint
        assert f":{db.url.port}/" in hint and "***" in hint
        assert db.url.password not in hint
    finally:
        for container in run_containers(client, run_id):
            container.remove(force=True, v=True)


def test_a_port_taken_before_start_is_retried_with_a_fresh_one(client, provider, run_id) -> None:
    messages: list[str] = []
    with listening_socket() as taken:
        ports = iter([taken])
        provider.pick_port = lambda: next(ports, None) or free_port()

        with provider.database(PG15, messages.append) as db:
            assert db.url.port != taken

    (retry,) = [m for m in messages if "retrying once" in m]
    assert f"Port {taken} on 127.0.0.1 is taken by another process" in retry
    assert run_containers(client, run_id) == []


def test_a_port_that_stays_taken_fails_fast_with_the_server_log(client, provider, run_id) -> None:
    messages: list[str] = []
    with listening_socket() as taken:
        provider.pick_port = lambda: taken

        with pytest.raises(NotReady) as caught:
            with provider.database(PG15, messages.append):
                pass

    # told by the container's exit, not by waiting out ready_timeout
    assert "exited with code" in caught.value.cause
    assert "did not accept a login within" not in caught.value.cause
    assert f"Port {taken} on 127.0.0.1 is taken" in caught.value.cause
    assert "Address already in use" in caught.value.fix
    assert len([m for m in messages if "retrying once" in m]) == 1
    assert run_containers(client, run_id) == []


def test_a_server_not_ready_in_time_is_retried_then_reported_with_its_log(
    client, provider, run_id, monkeypatch
) -> None:
    # Without the prebuilt cluster the entrypoint runs initdb, which logs at once and
    # takes longer than 0.3 s; the prebuilt one could answer within that.
    engine = type(engine_named("postgresql"))
    monkeypatch.setattr(engine, "container", replace(engine.container, postgis_environment={}))
    impatient = replace(PG15, settings=replace(PG15.settings, ready_timeout=0.3))
    messages: list[str] = []

    with pytest.raises(NotReady) as caught:
        with provider.database(impatient, messages.append):
            pass

    assert "did not accept a login within 0.3 s" in caught.value.cause
    assert "--- server log ---" in caught.value.fix
    assert len([m for m in messages if "retrying once" in m]) == 1
    assert len([m for m in messages if m.startswith("started ")]) == 2
    assert run_containers(client, run_id) == []


# --- processes that die ----------------------------------------------------------------

CHILD = """
import signal, sys, time
from matrix.define.targets import load_matrix
from matrix.provide.docker import DockerProvider

def stop(signum, frame):
    raise SystemExit(143)

signal.signal(signal.SIGTERM, stop)
provider = DockerProvider(sys.argv[1], network="host")
try:
    with provider.database(load_matrix().select(["pg15-postgis33"])[0], print):
        print("READY", flush=True)
        time.sleep(600)
finally:
    provider.close()
"""


def start_child(run_id: str) -> subprocess.Popen:
    """A harness process holding a database open until it is signalled."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, run_id], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
            line = child.stdout.readline()
            if line.strip() == "READY" or not line:
                break
    assert line.strip() == "READY", f"the child never got a database (exit {child.poll()})"
    return child


def test_sigterm_removes_the_runs_containers(client, run_id) -> None:
    child = start_child(run_id)
    assert len(run_containers(client, run_id)) == 1

    child.send_signal(signal.SIGTERM)

    assert child.wait(timeout=60) == 143
    assert run_containers(client, run_id) == []


def test_containers_of_killed_runs_are_reaped_and_live_ones_kept(client, provider) -> None:
    dead_run, live_run = f"dead-{uuid.uuid4().hex[:8]}", f"live-{uuid.uuid4().hex[:8]}"
    dead, live = start_child(dead_run), start_child(live_run)
    try:
        dead.kill()
        dead.wait(timeout=30)
        (orphan,) = run_containers(client, dead_run)
        messages: list[str] = []

        with provider.database(PG15, messages.append):
            assert run_containers(client, dead_run) == []
            assert len(run_containers(client, live_run)) == 1
        assert any(orphan.name in m for m in messages if "dead runs" in m)
    finally:
        for child in (dead, live):
            child.kill()
            child.wait(timeout=30)
        docker_provider.reap_orphans(client)
    assert run_containers(client, live_run) == []


@contextmanager
def listening_socket() -> Iterator[int]:
    """A port on 127.0.0.1 held by another program, as a race would leave it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]
