"""Offline PostGIS images built from Debian packages.

Many Peek sites are air-gapped and some CI machines reach no container
registry, yet the docker provider needs an image per PostgreSQL target. Each
target's ``recipe`` names a Debian suite whose archive ships that PostgreSQL
and PostGIS pair; ``debootstrap`` lays out a minimal root file system with
them, a small entrypoint honouring the upstream ``postgis/postgis`` environment
contract is added, and ``docker import`` turns the tree into an image. Only a
Debian mirror is needed, which such sites have.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from matrix import settings
from matrix.define.targets import ImageRecipe, Target
from matrix.engines import engine_named
from matrix.errors import HarnessError, ProviderUnavailable

try:
    import docker
    import docker.errors
except ImportError:  # the CLI and the other providers work without the SDK
    docker = None

Log = Callable[[str], None]

MIRROR_SETTING = "MATRIX_DEBIAN_MIRROR"
ENTRYPOINT = Path(__file__).with_name("image_entrypoint.sh")
ENTRYPOINT_LABEL = "peek-matrix.entrypoint"
PGDATA = "/var/lib/postgresql/data"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Emptied before import, as the upstream images do: nothing in them is needed
# to run a server. (The bulk of an image is PostGIS's GDAL/PROJ stack and the
# LLVM that PostgreSQL's JIT loads, both needed.)
PRUNED = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/i18n",
    "usr/share/lintian",
    # The cluster Debian's postinst creates; the entrypoint makes its own.
    "etc/postgresql",
    "var/lib/postgresql",
)
# debootstrap's lines about single packages, hundreds of them.
_PER_PACKAGE = re.compile(r"I: (Retrieving|Validating|Extracting|Unpacking|Configuring) ")
# docker import can take minutes to commit a large layer after the upload.
IMPORT_TIMEOUT = 900
BOOTSTRAP_TIMEOUT_S = 1800.0  # a suite's packages; minutes on a slow mirror
PREBUILD_TIMEOUT_S = 300  # initdb and CREATE EXTENSION postgis: seconds

# One build at a time per process: two cells needing the same missing image
# must not both spend a minute building it.
_build_lock = threading.Lock()


@dataclass(frozen=True)
class BuildPlace:
    """Where an image is built from: the Debian mirror (debootstrap's own when None)
    and the folder the root file system is laid out in (the system's temporary one)."""

    mirror: str | None = None
    scratch: Path | None = None

    @classmethod
    def from_environment(cls) -> BuildPlace:
        """``MATRIX_DEBIAN_MIRROR`` and ``MATRIX_IMAGE_BUILD_DIR``, when set."""
        scratch = settings.optional("MATRIX_IMAGE_BUILD_DIR")
        return cls(settings.optional("MATRIX_DEBIAN_MIRROR"), Path(scratch) if scratch else None)


@dataclass(frozen=True)
class ImageStatus:
    """Whether a target's offline image exists in the local engine."""

    target_id: str
    tag: str
    present: bool
    size: int | None = None


@dataclass(frozen=True)
class BuiltImage:
    """An offline image this call built, and what it cost."""

    target_id: str
    tag: str
    seconds: float
    size: int


def docker_client(timeout: float = 60) -> docker.DockerClient:
    """A client for the engine in the environment, or why there is none."""
    if docker is None:
        raise ProviderUnavailable(
            "The Docker SDK for Python is not installed.",
            "Install the docker extra: pip install 'peek-plugin-matrix[docker]'.",
        )
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as error:
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        raise ProviderUnavailable(
            f"No Docker engine answers at {where} (DOCKER_HOST): {error}.",
            "Start the daemon (`sudo systemctl start docker`, or `dockerd &` "
            "where there is no systemd) or point DOCKER_HOST at a running one.",
        ) from None
    return client


def recipe_targets(targets: Iterable[Target]) -> list[Target]:
    """The targets that have an offline image recipe."""
    return [t for t in targets if t.recipe is not None]


def local_image(client: docker.DockerClient, tag: str) -> docker.models.images.Image | None:
    """A local image by tag, or None when it is absent."""
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def image_size(client: docker.DockerClient, tag: str) -> int | None:
    """The size of a local image in bytes, or None when it is absent."""
    image = local_image(client, tag)
    return image.attrs["Size"] if image else None


def run_image(client: docker.DockerClient, target: Target) -> str | None:
    """The image a run starts for ``target``: the matrix's when present, else the offline one.

    None when neither is present: a run then pulls the matrix's image, or
    builds the offline one where the pull fails.
    """
    candidates = [target.image] + ([target.recipe.tag] if target.recipe else [])
    return next((tag for tag in candidates if image_size(client, tag) is not None), None)


def image_status(
    targets: Iterable[Target], client: docker.DockerClient | None = None
) -> list[ImageStatus]:
    """Which offline images exist locally, for every target with a recipe."""
    client = client or docker_client()
    statuses = []
    for target in recipe_targets(targets):
        size = image_size(client, target.recipe.tag)
        statuses.append(ImageStatus(target.id, target.recipe.tag, size is not None, size))
    return statuses


def build_images(
    targets: Iterable[Target],
    log: Log,
    force: bool = False,
    client: docker.DockerClient | None = None,
    place: BuildPlace = BuildPlace(),
) -> list[BuiltImage]:
    """Build the offline image of every target with a recipe.

    Images already present are kept unless ``force``: a build takes about a
    minute and downloads some hundred megabytes.
    """
    client = client or docker_client(timeout=IMPORT_TIMEOUT)
    built = []
    for target in recipe_targets(targets):
        image = build_image(target, log, force=force, client=client, place=place)
        if image is None:
            log(f"{target.recipe.tag} is present; skipped (--force rebuilds it)")
        else:
            built.append(image)
    return built


def build_image(
    target: Target,
    log: Log,
    force: bool = False,
    client: docker.DockerClient | None = None,
    place: BuildPlace = BuildPlace(),
) -> BuiltImage | None:
    """Build one target's offline image; None when present and not ``force``."""
    recipe = target.recipe
    if recipe is None:
        raise HarnessError(
            f"Target {target.id} has no image recipe.",
            "Add `recipe = { suite, packages, tag }` to it in the matrix file.",
        )
    client = client or docker_client(timeout=IMPORT_TIMEOUT)
    with _build_lock:
        previous = local_image(client, recipe.tag)
        if previous and not force and is_current(previous):
            return None
        if previous and not force:
            log(f"{recipe.tag} was built with another entrypoint; rebuilding it")
        started = time.monotonic()
        # The tree goes in under a tag of its own: the target's tag names an image only
        # once its cluster is initialised, so a failed build leaves the previous image.
        bare = replace(recipe, tag=f"{recipe.tag}-bare")
        build_debian_image(
            bare, image_changes(target), log, client, place, prepare=_install_entrypoint
        )
        try:
            prebuild_cluster(client, bare.tag, target, recipe.tag)
        finally:
            client.images.remove(bare.tag, noprune=True)
        if previous:
            discard(client, previous)
        seconds = time.monotonic() - started
        size = image_size(client, recipe.tag) or 0
        log(f"built {recipe.tag} in {seconds:.0f} s ({size / 1e6:.0f} MB)")
        return BuiltImage(target.id, recipe.tag, seconds, size)


def build_debian_image(
    recipe: ImageRecipe,
    changes: list[str],
    log: Log,
    client: docker.DockerClient,
    place: BuildPlace = BuildPlace(),
    prepare: Callable[[Path], None] | None = None,
) -> None:
    """Lay out ``recipe``'s Debian suite and packages, ``prepare`` the tree, import it
    as ``recipe.tag`` with the Dockerfile instructions ``changes``.

    The one way this project makes an image from Debian packages: the PostGIS
    targets' images, and the trees Babelfish is built and shipped in
    (``scripts/babelfish/build.py``).
    """
    _check_build_tools()
    log(f"building {recipe.tag} from Debian {recipe.suite}: {recipe.packages}")
    root = Path(tempfile.mkdtemp(prefix="peek-matrix-rootfs-", dir=place.scratch))
    try:
        _bootstrap(recipe, root, log, place.mirror)
        if prepare:
            prepare(root)
        _prune(root)
        _import(client, root, recipe.tag, changes)
    finally:
        _remove_tree(root)


def _check_build_tools() -> None:
    if os.geteuid() != 0:
        raise HarnessError(
            "Building an offline image needs root: debootstrap creates device "
            "nodes and file owners.",
            "Run `sudo python -m matrix images build`.",
        )
    if shutil.which("debootstrap") is None:
        raise HarnessError(
            "debootstrap is not installed.",
            "Install it: `apt-get install debootstrap`.",
        )


def debootstrap_command(recipe: ImageRecipe, root: Path, mirror: str | None = None) -> list[str]:
    """The debootstrap call for a recipe; debootstrap's own mirror unless one is given."""
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(root),
    ]
    return command + [mirror] if mirror else command


def _bootstrap(recipe: ImageRecipe, root: Path, log: Log, mirror: str | None) -> None:
    # debootstrap prints a line per package; keep them for a failure report
    # and show only its stages.
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        debootstrap_command(recipe, root, mirror),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,  # its downloads hold the output too: the group is killed
    ) as process:
        # A stalled mirror would keep the output open forever: a watchdog ends it.
        stalled = threading.Event()

        def stop() -> None:
            stalled.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()

        watchdog = threading.Timer(BOOTSTRAP_TIMEOUT_S, stop)
        watchdog.start()
        try:
            for line in process.stdout:
                line = line.rstrip()
                tail.append(line)
                if not _PER_PACKAGE.match(line):
                    log(f"  debootstrap: {line}")
        except BaseException:  # Ctrl-C, SIGTERM: nothing it started outlives the build
            stop()
            raise
        finally:
            watchdog.cancel()
    if stalled.is_set():
        raise HarnessError(
            f"debootstrap of Debian {recipe.suite} did not finish within "
            f"{BOOTSTRAP_TIMEOUT_S:g} s.",
            f"Check that the mirror answers (set {MIRROR_SETTING} to a reachable Debian "
            "mirror). Its output ended with:\n" + "\n".join(tail),
        )
    if process.returncode != 0:
        raise HarnessError(
            f"debootstrap of Debian {recipe.suite} for {recipe.tag} "
            f"failed with exit code {process.returncode}.",
            f"Check that the mirror is reachable (set {MIRROR_SETTING} to a reachable "
            "Debian mirror) and that the packages exist in that suite. Its output "
            "ended with:\n" + "\n".join(tail),
        )


def _install_entrypoint(root: Path) -> None:
    destination = root / "usr/local/bin/docker-entrypoint.sh"
    shutil.copyfile(ENTRYPOINT, destination)
    destination.chmod(0o755)


def _prune(root: Path) -> None:
    # Empty the directories but keep them: their owners and modes are the
    # packages' (/var/lib/postgresql is the postgres user's home).
    for relative in PRUNED:
        directory = root / relative
        for child in directory.iterdir() if directory.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def image_changes(target: Target) -> list[str]:
    """Dockerfile instructions that make the imported tree a postgis image."""
    bin_dir = f"/usr/lib/postgresql/{target.version}/bin"
    return [
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        f"ENV PATH={bin_dir}:{SYSTEM_PATH}",
        f"ENV PGDATA={PGDATA}",
        "ENV LANG=C.UTF-8",
        "EXPOSE 5432",
    ]


def entrypoint_digest() -> str:
    """What an image's entrypoint is, by content: an image built with another is rebuilt."""
    return hashlib.sha256(ENTRYPOINT.read_bytes()).hexdigest()[:16]


def is_current(image: docker.models.images.Image) -> bool:
    """Whether ``image`` was built with this entrypoint (and so has its prebuilt cluster)."""
    return image.labels.get(ENTRYPOINT_LABEL) == entrypoint_digest()


def prebuild_cluster(
    client: docker.DockerClient, tag: str, target: Target, into: str | None = None
) -> None:
    """Add to ``tag`` a cluster initialised now, for the harness's containers to start from;
    the result is tagged ``into`` (``tag`` itself by default).

    A container of the harness otherwise runs ``initdb`` and ``CREATE EXTENSION
    postgis`` in every database at each start, CPU the targets of a run share
    (about a second per server, half a second per database). This cluster has
    PostGIS in ``template1`` and the harness's user and database; the
    entrypoint uses it only when the container asks (``PEEK_MATRIX_CLUSTER=prebuilt``),
    so the image still honours the upstream contract for everyone else.
    """
    recipe = engine_named(target.engine, target.flavour).container
    container = client.containers.create(
        tag, command=["matrix-prebuild", recipe.user, recipe.database], network_mode="none"
    )
    try:
        container.start()
        status = container.wait(timeout=PREBUILD_TIMEOUT_S)
        if status.get("StatusCode") != 0:
            log_tail = container.logs(tail=20).decode("utf-8", "replace")
            raise HarnessError(
                f"Initialising the prebuilt cluster of {tag} failed "
                f"(exit code {status.get('StatusCode')}): {log_tail}",
                "Rebuild the image with `python -m matrix images build --force`; if it fails "
                "again, the PostGIS packages of its recipe do not install a usable extension.",
            )
        repository, name = (into or tag).rsplit(":", 1)
        container.commit(
            repository=repository,
            tag=name,
            changes=['CMD ["postgres"]', f"LABEL {ENTRYPOINT_LABEL}={entrypoint_digest()}"],
        )
    finally:
        container.remove(force=True)


def _import(client: docker.DockerClient, root: Path, image_tag: str, changes: list[str]) -> None:
    repository, tag = image_tag.rsplit(":", 1)
    # /dev, /proc and /sys are provided by the engine at run time.
    with subprocess.Popen(
        [
            "tar",
            "--numeric-owner",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "-C",
            str(root),
            "-c",
            ".",
        ],
        stdout=subprocess.PIPE,
    ) as tar:
        try:
            answer = client.api.import_image(
                src=tar.stdout,
                repository=repository,
                tag=tag,
                changes=changes,
                stream_src=True,
            )
        except docker.errors.APIError as error:
            answer = str(error.explanation or error)
    # The engine answers with the new image's id; the tag may still name an
    # older image when the import failed.
    image = local_image(client, image_tag)
    if tar.returncode != 0 or image is None or image.id not in answer:
        raise HarnessError(
            f"docker import of {image_tag} failed (tar exit code "
            f"{tar.returncode}; the engine answered: {answer}).",
            f"Check free space under {root.parent} and in the engine's data root.",
        )


def discard(client: docker.DockerClient, image: docker.models.images.Image) -> None:
    """Remove the image a rebuild replaced, left untagged; one a container still uses stays."""
    try:
        client.images.remove(image.id)
    except docker.errors.APIError:
        pass


def _remove_tree(root: Path) -> None:
    # A debootstrap killed half way can leave /proc or /sys mounted in the
    # tree; deleting through a mount would reach the host's files.
    for mount_point in reversed(_mounts_below(root)):
        subprocess.run(["umount", "-l", mount_point], check=False, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def _mounts_below(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    return sorted(p for p in points if p.startswith(prefix))
