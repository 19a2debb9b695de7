"""The offline PostGIS images: present, and equivalent to the upstream ones.

These run on the real Docker engine against the images CI builds with
``python -m matrix images build`` before the tests; a missing engine or image
fails here rather than skipping, so a broken build can never pass unnoticed.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from docker.models.containers import Container
from sqlalchemy.engine import URL

from matrix.define.targets import Target, load_matrix
from matrix.engines import engine_named
from matrix.errors import HarnessError
from matrix.provide import databases, images
from matrix.provide.base import free_port

RECIPE_TARGETS = images.recipe_targets(load_matrix().targets)
EXPECTED_TAGS = {
    "pg13-postgis31": "peek-matrix/postgis:13-3.1",
    "pg15-postgis33": "peek-matrix/postgis:15-3.3",
    "pg17-postgis35": "peek-matrix/postgis:17-3.5",
}


@pytest.fixture(scope="module")
def client(live):
    client = images.docker_client()
    yield client
    client.close()


def test_every_postgresql_target_has_a_recipe() -> None:
    assert {t.id: t.recipe.tag for t in RECIPE_TARGETS} == EXPECTED_TAGS


def test_image_status_reports_the_built_images(client) -> None:
    statuses = images.image_status(RECIPE_TARGETS, client)

    assert {s.target_id: s.tag for s in statuses} == EXPECTED_TAGS
    missing = [s.tag for s in statuses if not s.present]
    assert not missing, f"run `python -m matrix images build` first: {missing} are missing"
    assert all(s.size > 50_000_000 for s in statuses)


def test_build_skips_present_images(client) -> None:
    messages: list[str] = []

    built = images.build_images(RECIPE_TARGETS, messages.append, client=client)

    assert built == []
    assert len([m for m in messages if "skipped" in m]) == len(RECIPE_TARGETS)


def test_debootstrap_uses_the_mirror_from_the_environment(monkeypatch, tmp_path) -> None:
    target = RECIPE_TARGETS[0]
    monkeypatch.delenv("MATRIX_DEBIAN_MIRROR", raising=False)
    default = images.debootstrap_command(
        target.recipe, tmp_path, images.BuildPlace.from_environment().mirror
    )
    monkeypatch.setenv("MATRIX_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    mirrored = images.debootstrap_command(
        target.recipe, tmp_path, images.BuildPlace.from_environment().mirror
    )

    assert default[:2] == ["debootstrap", "--variant=minbase"]
    assert default[-2:] == [target.recipe.suite, str(tmp_path)]
    assert f"--include={','.join(target.recipe.packages)}" in default
    assert mirrored == default + ["http://mirror.invalid/debian"]


@contextmanager
def _server(
    client, target: Target, user: str, database: str, password: str, **environment: str
) -> Iterator[tuple[URL, Container]]:
    """A container from the target's offline image, ready (a login, PostGIS available);
    removed afterwards."""
    port = free_port()
    container = client.containers.run(
        target.recipe.tag,
        ["postgres", "-c", "listen_addresses=127.0.0.1"],
        environment={
            "POSTGRES_USER": user,
            "POSTGRES_PASSWORD": password,
            "POSTGRES_DB": database,
            "PGPORT": str(port),
            **environment,
        },
        network_mode="host",
        labels={"peek-matrix.project": "peek-matrix-tests"},
        detach=True,
    )
    url = engine_named("postgresql").url(
        URL.create("postgresql", user, password, "127.0.0.1", port, database)
    )
    try:
        databases.wait_until_ready(
            url, 60, postgis=True, log_tail=lambda: container.logs(tail=40).decode()
        )
        yield url, container
    finally:
        container.remove(force=True, v=True)


@pytest.fixture(scope="module", params=RECIPE_TARGETS, ids=lambda t: t.id)
def offline_server(request, client) -> Iterator[tuple[Target, URL, Container]]:
    """A container from the target's offline image, configured as upstream's is.

    One per image, shared by the tests of this module.
    """
    target: Target = request.param
    password = secrets.token_urlsafe(16)
    with _server(client, target, "alice", "shop", password) as (url, container):
        yield target, url, container


def test_debootstrap_from_a_mirror_that_never_answers_ends_at_its_timeout(
    monkeypatch, tmp_path
) -> None:
    """The mirror takes the connection and says nothing: the watchdog ends debootstrap."""
    target = RECIPE_TARGETS[0]
    monkeypatch.setattr(images, "BOOTSTRAP_TIMEOUT_S", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        mirror = f"http://127.0.0.1:{silent.getsockname()[1]}/debian"
        with pytest.raises(HarnessError) as caught:  # without the watchdog: never returns
            images._bootstrap(target.recipe, tmp_path / "root", lambda message: None, mirror)
    assert "did not finish within 1 s" in caught.value.cause
    assert "MATRIX_DEBIAN_MIRROR" in caught.value.fix


def test_offline_image_honours_the_upstream_contract(offline_server) -> None:
    target, url, container = offline_server
    engine = databases.connect_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION postgis"))
            row = conn.execute(
                sa.text(
                    "SELECT current_user, current_database(), "
                    "current_setting('listen_addresses'), "
                    "pg_encoding_to_char(encoding), datcollate, "
                    "ST_AsText(ST_Buffer(ST_MakePoint(0, 0), 1, 1)) "
                    "FROM pg_database WHERE datname = current_database()"
                )
            ).one()
    finally:
        engine.dispose()
    info = databases.server_info(url)

    assert row[:5] == ("alice", "shop", "127.0.0.1", "UTF8", "C.UTF-8")
    assert row[5].startswith("POLYGON")
    assert info.server_version.split(".")[0] == target.version
    assert info.postgis_version.startswith(f"{target.postgis}.")
    server_users = {p[1] for p in container.top(ps_args="-o pid,user,args")["Processes"]}
    assert "root" not in server_users


def test_offline_image_requires_the_password_over_tcp(offline_server) -> None:
    _refuses_a_wrong_password(offline_server[1])


def test_the_prebuilt_cluster_requires_this_runs_password(prebuilt_server) -> None:
    _refuses_a_wrong_password(prebuilt_server[1])


def _refuses_a_wrong_password(url: URL) -> None:
    engine = databases.connect_engine(url.set(password="wrong-password"))
    try:
        with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
            engine.connect()
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=RECIPE_TARGETS, ids=lambda t: t.id)
def prebuilt_server(request, client) -> Iterator[tuple[Target, URL, Container]]:
    """A container as the harness starts one: its user and database, the prebuilt cluster."""
    target: Target = request.param
    recipe = engine_named("postgresql").container
    password = "it's " + secrets.token_urlsafe(16)  # a quote the entrypoint must keep
    environment = {**recipe.environment, **recipe.postgis_environment}
    with _server(client, target, recipe.user, recipe.database, password, **environment) as (
        url,
        container,
    ):
        yield target, url, container


def test_the_harness_container_starts_from_the_prebuilt_cluster(prebuilt_server) -> None:
    """No initdb at start; PostGIS already in template1, so each new database has it."""
    target, url, container = prebuilt_server
    name = databases.throwaway_name()
    created = databases.create_database(url, name)
    engine = databases.connect_engine(created)
    try:
        with engine.connect() as conn:
            postgis = conn.execute(
                sa.text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            ).scalar_one()
            data_directory = conn.execute(sa.text("SHOW data_directory")).scalar_one()
    finally:
        engine.dispose()
        databases.drop_database(created)
    log = container.logs().decode()

    assert postgis.startswith(f"{target.postgis}.")
    assert data_directory == "/var/lib/postgresql/prebuilt"
    assert "Prebuilt cluster: password set" in log
    assert "initdb" not in log and "Database initialised" not in log


def test_the_upstream_contract_never_gets_the_prebuilt_cluster(offline_server) -> None:
    """Another user, or no PEEK_MATRIX_CLUSTER: initdb as upstream, template1 without PostGIS."""
    _, url, container = offline_server
    engine = databases.connect_engine(url.set(database="template1"))
    try:
        with engine.connect() as conn:
            extensions = conn.execute(sa.text("SELECT extname FROM pg_extension")).scalars().all()
    finally:
        engine.dispose()

    assert "postgis" not in extensions
    assert "Database initialised" in container.logs().decode()


def test_a_prebuild_that_fails_says_so_and_keeps_the_image(client) -> None:
    """initdb refuses a folder that holds a cluster: the second prebuild of an image fails."""
    target = RECIPE_TARGETS[0]
    copy = f"peek-matrix-tests/prebuilt:{secrets.token_hex(4)}"
    image = client.images.get(target.recipe.tag)
    image.tag(*copy.split(":"))
    try:
        with pytest.raises(HarnessError) as caught:
            images.prebuild_cluster(client, copy, target)
        assert client.images.get(copy).id == image.id  # nothing committed over it
    finally:
        client.images.remove(copy)
    assert "prebuilt cluster" in caught.value.cause
    assert "exit code 1" in caught.value.cause
    assert "--force" in caught.value.fix


def test_an_image_built_with_another_entrypoint_is_not_current(client) -> None:
    """setup.sh builds missing images only; one from an older entrypoint counts as missing."""
    target = RECIPE_TARGETS[0]
    image = client.images.get(target.recipe.tag)
    container = client.containers.create(image.id, command=["true"], network_mode="none")
    try:
        older = container.commit(changes=[f"LABEL {images.ENTRYPOINT_LABEL}=0000000000000000"])
    finally:
        container.remove()
    try:
        assert images.is_current(image)
        assert not images.is_current(older)
    finally:
        client.images.remove(older.id)
