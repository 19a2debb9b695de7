"""The docker provider: a throwaway server container per target.

Every container carries labels naming the run, the target and the process
that owns it, so that a run killed with SIGKILL or a lost CI job leaves
nothing behind for long: the next provider on the same host removes the
containers whose owner is gone. Servers are reached on 127.0.0.1 only.

On an engine without a bridge network (``dockerd --bridge=none``, as in some
CI sandboxes) a target that asks for the bridge falls back to the host
network, unless the bridge was asked for explicitly (``--docker-network``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import URL

from matrix import masking
from matrix.define.targets import Target
from matrix.engines import engine_named, engine_of
from matrix.errors import HarnessError, ProviderUnavailable
from matrix.provide import databases, images, leftovers
from matrix.provide.base import (
    Database,
    Log,
    Provider,
    free_port,
    port_in_use,
    retry_once,
)
from matrix.provide.databases import NotReady

try:
    import docker
    import docker.errors
except ImportError:  # reported by unavailable_reason
    docker = None

LABEL_PROJECT = "peek-matrix.project"
LABEL_RUN = "peek-matrix.run"
LABEL_TARGET = "peek-matrix.target"
LABEL_OWNER_PID = "peek-matrix.owner-pid"
LABEL_OWNER_HOST = "peek-matrix.owner-host"
# Containers kept with --keep outlive their run on purpose: never reaped.
LABEL_KEEP = "peek-matrix.keep"
PROJECT = "peek-matrix"

LOCALHOST = "127.0.0.1"
PING_TIMEOUT = 5
CREATE_TIMEOUT = 30
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one server container and reach it."""

    image: str
    name: str
    environment: dict[str, str]
    ports: dict[str, tuple[str, int]]
    labels: dict[str, str]
    command: list[str] | None
    network_mode: str
    user: str
    server_url: URL
    host_port: int
    container_port: int


def container_spec(
    target: Target,
    *,
    password: str,
    host_port: int,
    network: str,
    run_id: str,
    image: str,
    keep: bool = False,
    durable: bool = False,
) -> ContainerSpec:
    """The container for ``target``, reached on 127.0.0.1:``host_port``.

    On the host network the server itself listens on ``host_port``, on
    127.0.0.1 only (PostgreSQL's ``listen_addresses``, SQL Server's
    ``MSSQL_IP_ADDRESS``); on the bridge the engine's port is published on
    127.0.0.1 only.
    """
    engine = engine_named(target.engine, target.flavour)
    recipe = engine.container
    environment = {**recipe.environment, recipe.password_env: password}
    if target.postgis:
        environment.update(recipe.postgis_environment)
    ports: dict[str, tuple[str, int]] = {}
    command = list(recipe.command) if recipe.command else None
    if network == "host":
        environment[recipe.port_env] = str(host_port)
        environment.update(recipe.host_environment)
        command = list(recipe.host_command) if recipe.host_command else None
        container_port = host_port
    else:
        container_port = target.settings.port
        ports[f"{container_port}/tcp"] = (LOCALHOST, host_port)
    if command and not durable:
        command += engine.throwaway_settings
    server_url = engine.url(
        URL.create(
            target.engine,
            username=recipe.user,
            password=password,
            host=LOCALHOST,
            port=host_port,
            database=recipe.database,
        )
    )
    return ContainerSpec(
        image=image,
        name=container_name(run_id, target, host_port),
        environment=environment,
        ports=ports,
        labels=owner_labels(run_id, target, keep),
        command=command,
        network_mode=network,
        user=recipe.user,
        server_url=server_url,
        host_port=host_port,
        container_port=container_port,
    )


def container_name(run_id: str, target: Target, host_port: int) -> str:
    """Unique per run, target and port; readable in ``docker ps``."""
    safe_run = "".join(c if c.isalnum() or c in "_.-" else "-" for c in run_id)
    return f"peek-matrix-{safe_run}-{target.id}-{host_port}"


def owner_labels(run_id: str, target: Target, keep: bool = False) -> dict[str, str]:
    """Labels that let any later run find and judge this container."""
    labels = {
        LABEL_PROJECT: PROJECT,
        LABEL_RUN: run_id,
        LABEL_TARGET: target.id,
        LABEL_OWNER_PID: str(os.getpid()),
        LABEL_OWNER_HOST: socket.gethostname(),
    }
    if keep:
        labels[LABEL_KEEP] = "true"
    return labels


def check_memory(client: docker.DockerClient, target: Target) -> None:
    """Refuse a target whose server would not start in the engine's memory.

    SQL Server exits after a while when it has less than 2 GB; failing now
    says why instead of waiting out the readiness timeout.
    """
    needed = target.settings.min_memory_mb
    if not needed:
        return
    total = client.info()["MemTotal"] // 2**20
    if total < needed:
        raise ProviderUnavailable(
            f"{target.label} needs {needed} MB of memory; the Docker engine has {total} MB.",
            "Give the engine more memory (Docker Desktop: Settings > Resources), "
            f"or use --provider external with a server URL in {target.settings.url_env}.",
        )


def reap_orphans(client: docker.DockerClient) -> list[str]:
    """Remove containers whose owning process on this host is gone.

    Runs killed with SIGKILL and lost CI jobs never reach ``close()``; every
    provider calls this on its first use of the engine. Containers of live
    runs, of other hosts sharing the engine, and those kept with ``--keep``
    are left alone. Returns the names removed.
    """
    removed = []
    wanted = {LABEL_PROJECT: PROJECT, LABEL_OWNER_HOST: socket.gethostname()}
    for container in _labelled(client, wanted):
        labels = container.labels
        pid = labels.get(LABEL_OWNER_PID, "")
        if labels.get(LABEL_KEEP) or not pid.isdigit() or leftovers.pid_alive(int(pid)):
            continue
        _remove(container)
        removed.append(container.name)
    return removed


def _labelled(client: docker.DockerClient, labels: dict[str, str]) -> list:
    selector = [f"{key}={value}" for key, value in labels.items()]
    # The SDK inspects each listed container: one removed in between (another run's,
    # ending) would raise NotFound instead of being left out.
    return client.containers.list(all=True, filters={"label": selector}, ignore_removed=True)


class DockerProvider(Provider):
    """Serves each target from a fresh container on the local Docker engine."""

    name = "docker"

    def __init__(
        self,
        run_id: str,
        network: str | None = None,
        keep: bool = False,
        allow_build: bool = True,
        image_place: images.BuildPlace | None = None,
        durable: bool = False,
    ) -> None:
        self.durable = durable
        self.image_place = image_place or images.BuildPlace()
        self.run_id = run_id
        self.network = network
        self.keep = keep
        self.allow_build = allow_build
        # Replaceable so that a test can hand out a port that is taken.
        self.pick_port = free_port
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._creating = threading.Condition()  # counts containers.create calls in flight
        self._in_flight = 0

    def unavailable_reason(self, target: Target) -> str | None:
        try:
            with closing(images.docker_client(timeout=PING_TIMEOUT)):
                return None
        except ProviderUnavailable as error:
            return str(error)

    @contextmanager
    def database(self, target: Target, log: Log) -> Iterator[Database]:
        """A throwaway database in a fresh container, removed on exit.

        ``ready_seconds`` runs from creating the container to the first real
        login. A container that does not get ready is replaced once, on a
        fresh port, before the failure is raised with its log.
        """
        client = self._engine(log)
        check_memory(client, target)
        notes: list[str] = []
        image = self._resolve_image(client, target, log, notes)
        network = self._network_for(client, target, notes)
        password = masking.generate_password()

        def start(_attempt: int) -> tuple[docker.models.containers.Container, ContainerSpec, float]:
            spec = container_spec(
                target,
                password=password,
                host_port=self.pick_port(),
                network=network,
                run_id=self.run_id,
                image=image,
                keep=self.keep,
                durable=self.durable,
            )
            return self._start(client, target, spec, log)

        container, spec, ready_seconds = retry_once(start, log, f"Container for {target.id}")
        url = None
        try:
            url = databases.create_database(spec.server_url, databases.throwaway_name())
            yield Database(target, url, self.name, ready_seconds, notes)
        finally:
            self._finish(container, spec, url, log)

    def close(self) -> None:
        """Remove every container of this run, unless they are to be kept.

        Uses a client of its own: it may run in a signal handler that
        interrupted the main thread in the middle of a call on the shared one.
        """
        with self._creating:
            self._closed = True
            # A container being created now would miss the listing below, and
            # the run may exit before its cell's thread removes it: wait for it.
            self._creating.wait_for(lambda: self._in_flight == 0, timeout=CREATE_TIMEOUT)
        if self.keep:
            return
        try:
            client = images.docker_client(timeout=PING_TIMEOUT)
        except ProviderUnavailable:
            return
        with closing(client):
            for container in _labelled(client, {LABEL_RUN: self.run_id}):
                _remove(container)

    def _engine(self, log: Log) -> docker.DockerClient:
        """The shared client; the first use also reaps orphans."""
        with self._lock:
            if self._client is None:
                self._client = images.docker_client()
                removed = reap_orphans(self._client)
                if removed:
                    log(f"removed containers left by dead runs: {', '.join(removed)}")
            return self._client

    def _resolve_image(
        self, client: docker.DockerClient, target: Target, log: Log, notes: list[str]
    ) -> str:
        """The matrix image, else the offline one, else a pull, else a build.

        An image made outside this repository (``image_doc``) is used only when
        present: no registry serves it, and pulling its name would ask one.
        """
        recipe = target.recipe
        present = images.run_image(client, target)
        if present is not None:
            notes.append(f"image {present}")
            return present
        if target.image_doc:
            raise ProviderUnavailable(
                f"No image for {target.id}: {target.image} is not present in the local "
                f"Docker engine; no registry serves it and a run never builds it.",
                f"Build it as {target.image_doc} describes, or use `--provider external` "
                f"with a server URL in {target.settings.url_env}.",
            )
        candidates = [target.image] + ([recipe.tag] if recipe else [])
        try:
            client.images.pull(target.image)
            notes.append(f"image {target.image} (pulled)")
            return target.image
        except docker.errors.APIError as error:
            problem = f"pulling {target.image} failed: {_first_line(error)}"
        if recipe and self.allow_build:
            log(f"{problem}; building the offline image {recipe.tag}")
            try:
                images.build_image(target, log, place=self.image_place)
            except HarnessError as error:
                problem += f"; building {recipe.tag} failed: {error.cause}"
            else:
                notes.append(f"image {recipe.tag} (built offline)")
                return recipe.tag
        raise ProviderUnavailable(
            f"No image for {target.id}: none of {', '.join(candidates)} is present "
            f"locally and {problem}.",
            _image_fix(target),
        )

    def _network_for(self, client: docker.DockerClient, target: Target, notes: list[str]) -> str:
        network = self.network or target.network
        if network == "host" or client.networks.list(names=["bridge"]):
            return network
        if self.network:
            raise ProviderUnavailable(
                "The Docker engine has no bridge network (it runs with --bridge=none).",
                "Use --docker-network host.",
            )
        notes.append("host network: the Docker engine has no bridge network")
        return "host"

    def _start(
        self,
        client: docker.DockerClient,
        target: Target,
        spec: ContainerSpec,
        log: Log,
    ) -> tuple[docker.models.containers.Container, ContainerSpec, float]:
        """Create the container and wait until it accepts a login.

        Whatever fails, the container is removed before the error leaves.
        """
        with self._creating:
            self._refuse_if_closed(target)
            self._in_flight += 1
        started = time.monotonic()
        try:
            container = client.containers.create(
                spec.image,
                command=spec.command,
                name=spec.name,
                environment=spec.environment,
                labels=spec.labels,
                ports=spec.ports or None,
                network_mode=spec.network_mode,
            )
        finally:
            with self._creating:
                self._in_flight -= 1
                self._creating.notify_all()
        try:
            self._refuse_if_closed(target)  # close() has listed, or will list, the containers
            _start_container(container, spec)
            # The image and the network are the target's notes, said once however many starts.
            log(f"started {spec.name} on {LOCALHOST}:{spec.host_port}")
            _wait_ready(container, target, spec)
        except BaseException:
            _remove(container)
            raise
        return container, spec, time.monotonic() - started

    def _refuse_if_closed(self, target: Target) -> None:
        if self._closed:
            raise HarnessError(f"The run is stopping; {target.id} was not started.")

    def _finish(
        self,
        container,
        spec: ContainerSpec,
        url: URL | None,
        log: Log,
    ) -> None:
        """Remove the container, or say how to reach it when kept.

        Removing the container with its volumes removes the throwaway
        database too, so it is not dropped first.
        """
        if not self.keep:
            _remove(container)
            return
        recipe = engine_of(spec.server_url).container
        database = url.database if url else recipe.database
        hint = recipe.client_hint.format(
            name=spec.name, host=LOCALHOST, port=spec.container_port, database=database
        )
        shown = (url or spec.server_url).render_as_string(hide_password=True)
        log(
            f"kept container {spec.name} running: `{hint}`, "
            f"or connect to {shown} (password: `docker exec {spec.name} printenv "
            f"{recipe.password_env}`); remove it with `docker rm -f -v {spec.name}`"
        )


def _wait_ready(container, target: Target, spec: ContainerSpec) -> None:
    """Wait for a login, failing at once if the container exits."""
    databases.wait_until_ready(
        spec.server_url,
        target.settings.ready_timeout,
        postgis=bool(target.postgis),
        log_tail=lambda: _log_tail(container),
        check_alive=lambda: _raise_if_exited(container, target, spec),
    )


def _start_container(container, spec: ContainerSpec) -> None:
    # A port published on the bridge can be taken between choosing and
    # starting: a readiness failure, so that the retry takes a fresh port.
    try:
        container.start()
    except docker.errors.APIError as error:
        raise NotReady(
            f"Docker could not start container {spec.name}: {_first_line(error)}.",
            "Check the engine's log; if a port is in use, stop what listens on it.",
        ) from None


def _raise_if_exited(container, target: Target, spec: ContainerSpec) -> None:
    try:
        container.reload()
    except docker.errors.NotFound:
        raise HarnessError(
            f"Container {spec.name} was removed while {target.id} was starting "
            "(the run is stopping)."
        ) from None
    if container.status not in ("exited", "dead"):
        return
    code = container.attrs["State"]["ExitCode"]
    cause = (
        f"Container {spec.name} ({target.label}) exited with code {code} before accepting a login."
    )
    if port_in_use(spec.host_port):
        cause += f" Port {spec.host_port} on {LOCALHOST} is taken by another process."
    raise NotReady(cause, f"Its log ends with:\n{_log_tail(container)}")


def _log_tail(container) -> str:
    try:
        raw = container.logs(tail=LOG_TAIL_LINES)
    except docker.errors.APIError as error:
        return f"(log unavailable: {_first_line(error)})"
    return raw.decode("utf-8", errors="replace").rstrip()


def _remove(container) -> None:
    """Remove a container and its volumes; gone already is fine."""
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        if error.status_code != 409:  # 409: removal already in progress
            raise


def _image_fix(target: Target) -> str:
    ways = []
    if target.recipe:
        ways.append(
            f"build the offline image with `python -m matrix images build` "
            f"(makes {target.recipe.tag} from Debian packages)"
        )
    ways.append(
        f"`docker pull {target.image}` where a registry is reachable, then "
        "`docker save`/`docker load` it here"
    )
    ways.append(f"use `--provider external` with a server URL in {target.settings.url_env}")
    return "Either " + ", or ".join(ways) + "."


def _first_line(error: Exception) -> str:
    return databases.first_line(getattr(error, "explanation", None) or error)
