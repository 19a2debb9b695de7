"""Build the Babelfish for PostgreSQL 4.2.0 image, ``peek-matrix/babelfish:4.2.0``, once.

No registry serves the image the ``babelfish4-tsql`` target runs (T-SQL over TDS
on Babelfish, not SQL Server; docs/babelfish.md), so this builds it from the
public sources, offline: the Debian archive (through debootstrap, as the
PostGIS images are made, :func:`matrix.provide.images.build_debian_image`) and
the source trees ``MATRIX_BABELFISH_SOURCES`` holds. Three steps:

1. a Debian 12 toolchain image (the build packages) and a Debian 12 runtime
   image (the libraries the server loads), both by debootstrap;
2. a container of the toolchain image, without network, compiles the ANTLR
   C++ runtime, PostgreSQL, PostGIS and the four extensions
   (``build-in-container.sh``);
3. a container of the runtime image takes the build, initialises a cluster
   (``image-in-container.sh``) and is imported as the image.

The two Debian images and the containers are removed at the end: the image is
the cache. Present, it is kept unless ``--rebuild``. About 13 minutes on 2 cores.

    MATRIX_BABELFISH_SOURCES=DIR nox -s babelfish [-- --rebuild] [--tag TAG]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from matrix import settings
from matrix.define.targets import ImageRecipe, load_matrix
from matrix.errors import HarnessError
from matrix.provide import images

SOURCES_SETTING = "MATRIX_BABELFISH_SOURCES"
TARGET_ID = "babelfish4-tsql"
RECIPE = Path(__file__).resolve().parent
SUITE = "bookworm"
# What build-in-container.sh compiles with; debootstrap lays them out, so the
# build container needs no network.
BUILD_PACKAGES = (
    "build-essential",
    "bison",
    "flex",
    "cmake",
    "pkg-config",
    "python3",
    "xz-utils",
    "openjdk-17-jre-headless",  # runs the antlr-4.9.3-complete.jar babelfish_extensions ships
    "libutfcpp-dev",  # the ANTLR C++ runtime's UTF-8 library, instead of a git clone
    "libxml2-dev",
    "libicu-dev",
    "uuid-dev",
    "libossp-uuid-dev",
    "libssl-dev",
    "libreadline-dev",
    "zlib1g-dev",
    "libgeos-dev",  # PostGIS
    "libproj-dev",
    "libjson-c-dev",
    "libpcre2-dev",
)
# What the built server loads (image-in-container.sh refuses an image that lacks one).
RUNTIME_PACKAGES = (
    "libxml2",
    "libicu72",
    "libossp-uuid16",
    "libssl3",
    "libreadline8",
    "zlib1g",
    "libgeos-c1v5",
    "libproj25",
    "libjson-c5",
)
IMAGE_PATH = "/opt/babelfish/bin:" + images.SYSTEM_PATH
IMAGE_CHANGES = [
    'ENTRYPOINT ["babelfish-entrypoint.sh"]',
    'CMD ["postgres"]',
    f"ENV PATH={IMAGE_PATH}",
    "ENV PGDATA=/var/lib/babelfish/data",
    "ENV LANG=C.UTF-8",
    "EXPOSE 1433",
]
TOOL_CHANGES = [f"ENV PATH={images.SYSTEM_PATH}", "ENV LANG=C.UTF-8"]
# The first build, under a load of about 6.5 on 2 cores, took 30 minutes.
BUILD_TIMEOUT_S = 3 * 3600
IMAGE_TIMEOUT_S = 1200
# A single compile of the ANTLR-generated parser prints nothing for minutes:
# the client's read timeout must outlast it.
CLIENT_TIMEOUT_S = 1800
POSTGIS_TARBALL = "postgis/postgis_3.5.2+dfsg.orig.tar.xz"


@dataclass(frozen=True)
class Expected:
    """A file the sources must have, and the text in it that says it is the right version."""

    path: str
    text: str | None
    what: str


EXPECTED = (
    Expected(
        "pg/configure",
        "PACKAGE_VERSION='16.3'",
        "babelfish-for-postgresql/postgresql_modified_for_babelfish at tag BABEL_4_2_0__PG_16_3",
    ),
    Expected(
        "pg/src/include/access/parallel.h",
        "IsBabelfishParallelWorker",
        "the Babelfish fork of PostgreSQL, not PostgreSQL's own 16.3",
    ),
    Expected(
        "ext/contrib/babelfishpg_tsql/Version.config",
        "PGTSQL_MINOR_VERSION=2",
        "babelfish-for-postgresql/babelfish_extensions at tag BABEL_4_2_0",
    ),
    Expected(
        "ext/contrib/babelfishpg_tsql/antlr/thirdparty/antlr/antlr-4.9.3-complete.jar",
        None,
        "the ANTLR tool babelfish_extensions ships",
    ),
    Expected("antlr4/runtime/Cpp/VERSION", "4.9.3", "antlr/antlr4 at tag 4.9.3"),
    Expected(
        POSTGIS_TARBALL,
        None,
        "PostGIS 3.5.2 as Debian trixie ships it (the source package's orig tarball)",
    ),
)

HOW_TO_GET = (
    f"Set {SOURCES_SETTING} to a folder holding pg/, ext/ and antlr4/, checkouts of "
    "babelfish-for-postgresql/postgresql_modified_for_babelfish at tag BABEL_4_2_0__PG_16_3, "
    "babelfish-for-postgresql/babelfish_extensions at tag BABEL_4_2_0 and antlr/antlr4 at "
    f"tag 4.9.3 (each `git clone --depth 1 --branch TAG`), and {POSTGIS_TARBALL}, Debian's "
    "PostGIS 3.5.2 source: in postgis/, with a deb-src line for trixie in APT's sources, "
    "`apt-get source --download-only postgis=3.5.2+dfsg-1` (docs/babelfish.md)."
)


def check_sources(raw: str | None) -> Path:
    """The sources folder, or one paragraph saying what is missing and how to get it."""
    if not raw:
        raise HarnessError(
            f"{SOURCES_SETTING} is not set: the build needs the sources.", HOW_TO_GET
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise HarnessError(f"{SOURCES_SETTING}={raw} is not a folder.", HOW_TO_GET)
    wrong = []
    for expected in EXPECTED:
        path = root / expected.path
        if not path.is_file():
            wrong.append(f"{expected.path} is missing ({expected.what})")
        elif expected.text and expected.text not in path.read_text(errors="replace"):
            wrong.append(f"{expected.path} lacks {expected.text!r} ({expected.what})")
    if wrong:
        raise HarnessError(
            f"The sources in {SOURCES_SETTING}={raw} are not Babelfish 4.2.0's: "
            + "; ".join(wrong)
            + ".",
            HOW_TO_GET,
        )
    return root.resolve()


def build(sources: Path, tag: str, log, client) -> float:
    """Build ``tag`` from ``sources``; the seconds it took."""
    started = time.monotonic()
    repository, version = tag.rsplit(":", 1)
    toolchain = ImageRecipe(SUITE, BUILD_PACKAGES, f"{repository}-toolchain:{version}")
    runtime = ImageRecipe(SUITE, RUNTIME_PACKAGES, f"{repository}-runtime:{version}")
    place = images.BuildPlace.from_environment()
    out = Path(tempfile.mkdtemp(prefix="peek-matrix-babelfish-", dir=place.scratch))
    logfile = settings.cache_dir() / "babelfish-build.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    try:
        for recipe, changes in ((toolchain, TOOL_CHANGES), (runtime, TOOL_CHANGES)):
            images.build_debian_image(recipe, changes, log, client, place)
        with logfile.open("w", encoding="utf-8") as output:
            log(f"compiling (every line in {logfile})")
            _run(
                client,
                toolchain.tag,
                ["nice", "-n", "19", "bash", "/recipe/build-in-container.sh"],
                {"/src": (sources, "ro"), "/out": (out, "rw")},
                output,
                log,
                BUILD_TIMEOUT_S,
            )
            log("initialising the cluster in the runtime image")
            _run(
                client,
                runtime.tag,
                ["bash", "/recipe/image-in-container.sh"],
                {"/out": (out, "ro")},
                output,
                log,
                IMAGE_TIMEOUT_S,
                commit_as=tag,
            )
    finally:
        shutil.rmtree(out, ignore_errors=True)
        for intermediate in (toolchain.tag, runtime.tag):
            image = images.local_image(client, intermediate)
            if image is not None:
                client.images.remove(image.id, force=True)
    return time.monotonic() - started


def _run(client, image, command, mounts, output, log, timeout, commit_as=None) -> None:
    """Run ``command`` in a container of ``image`` without network, to its end or ``timeout``.

    ``mounts`` maps a path inside to the host's folder and ``ro`` or ``rw``.

    Every line goes to ``output``; the step lines (``### ``) to ``log`` too.
    With ``commit_as``, the container's file system becomes that image.
    """
    mounts = {**mounts, "/recipe": (RECIPE, "ro")}
    volumes = {str(host): {"bind": inside, "mode": mode} for inside, (host, mode) in mounts.items()}
    container = client.containers.create(
        image,
        command,
        name=f"peek-matrix-babelfish-build-{uuid.uuid4().hex[:8]}",
        network_mode="none",
        volumes=volumes,
        labels={"peek-matrix.project": "babelfish-build"},
    )
    tail: deque[str] = deque(maxlen=60)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        container.kill()

    watchdog = threading.Timer(timeout, stop)
    try:
        container.start()
        watchdog.start()
        buffer = b""
        for chunk in container.logs(stream=True, follow=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                output.write(line + "\n")
                tail.append(line)
                if line.startswith("### "):  # "### <epoch seconds> <step>"
                    log(f"  {time.strftime('%H:%M:%S')} {line[4:].partition(' ')[2]}")
        code = container.wait(timeout=60)["StatusCode"]
        watchdog.cancel()
        if timed_out.is_set() or code != 0:
            why = f"did not finish within {timeout} s" if timed_out.is_set() else f"exit {code}"
            raise HarnessError(
                f"`{' '.join(command)}` in {image} failed ({why}). Its output ended with:\n"
                + "\n".join(tail),
                f"Every line is in {output.name}. A failed compile names the file; "
                "docs/babelfish.md says which workarounds the build already carries.",
            )
        if commit_as:
            _import(client, container, commit_as)
    finally:
        watchdog.cancel()
        container.remove(force=True, v=True)


def _import(client, container, tag: str) -> None:
    """``docker export | docker import``: one layer, the image's own settings, no history."""
    repository, version = tag.rsplit(":", 1)
    answer = client.api.import_image(
        src=container.export(),
        repository=repository,
        tag=version,
        changes=IMAGE_CHANGES,
        stream_src=True,
    )
    image = images.local_image(client, tag)
    if image is None or image.id not in str(answer):
        raise HarnessError(
            f"docker import of {tag} failed (the engine answered: {answer}).",
            "Check free space in the Docker engine's data root.",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nox -s babelfish --",
        description=__doc__.split("\n\n")[0],
    )
    default = load_matrix().select([TARGET_ID])[0].image
    parser.add_argument("--rebuild", action="store_true", help="build even when it is present")
    parser.add_argument(
        "--tag", default=default, help=f"the image to build (default {default}, the target's)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    args = parser.parse_args(argv)
    console = Console(soft_wrap=True, highlight=False)

    def log(message: str) -> None:
        console.print(escape(message))

    try:
        if not args.rebuild:
            client = images.docker_client()
            size = images.image_size(client, args.tag)
            if size is not None:
                log(
                    f"{args.tag} is present ({size / 1e6:.0f} MB); skipped (-- --rebuild builds it)"
                )
                return 0
        sources = check_sources(settings.optional(SOURCES_SETTING))
        client = images.docker_client(timeout=CLIENT_TIMEOUT_S)
        previous = images.local_image(client, args.tag)
        seconds = build(sources, args.tag, log, client)
        if previous is not None and images.local_image(client, args.tag).id != previous.id:
            images.discard(client, previous)
        size = images.image_size(client, args.tag) or 0
        log(f"built {args.tag} in {seconds:.0f} s ({size / 1e6:.0f} MB)")
    except HarnessError as error:
        if args.verbose:
            traceback.print_exc()
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(error))}", highlight=False
        )
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
