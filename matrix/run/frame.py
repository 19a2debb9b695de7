"""What every run over the matrix's targets shares: the plugin's run and the site's.

One frame around the run: the reports folder held (one writer at a time), a
scratch folder removed on every exit, SIGTERM and SIGINT turned into one
:class:`Interrupted`, the run's providers closed whatever happens, then the
report written last. Inside it, each target runs on one of a number of daemon
threads (:func:`start_targets`; the plugin's run gives every target its own,
so that all servers start at once, and limits its checks to ``jobs``) and
the results are taken as they finish, until the run's deadline plus a grace
(:func:`finished`).
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import URL

from matrix.define.policy import Policy
from matrix.define.targets import Target
from matrix.provide import ProviderSet, leftovers

if TYPE_CHECKING:  # images imports the Docker SDK
    from matrix.provide.images import BuildPlace

DEFAULT_CHECK_TIMEOUT_S = 900.0
DEFAULT_RUN_TIMEOUT_S = 3600.0
DEFAULT_LOCK_TIMEOUT_S = 60.0
# After --run-timeout, how long a target may take to kill its check process and
# drop its databases before its result is taken as it stands.
GRACE_S = 30.0

R = TypeVar("R")
P = TypeVar("P")


@dataclass(kw_only=True)
class TargetsOptions:
    """What every run over targets takes, resolved and validated by the command line."""

    targets: list[Target]
    matrix_file: Path
    reports_dir: Path = Path("reports")
    provider: str = "auto"
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)
    keep: bool = False
    docker_network: str | None = None
    allow_build: bool = True
    cache_dir: Path = Path.home() / ".cache" / "peek-matrix"
    policy: Policy = field(default_factory=Policy)
    external_urls: dict[str, URL] = field(default_factory=dict)
    pg_root: Path = Path("/usr/lib/postgresql")
    image_place: BuildPlace | None = None  # where the docker provider builds a missing image
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S

    def providers(self, run_id: str) -> ProviderSet:
        return ProviderSet(
            run_id,
            self.provider,
            self.keep,
            self.docker_network,
            self.allow_build,
            external_urls=self.external_urls,
            pg_root=self.pg_root,
            state_dir=self.cache_dir / "runs",
            image_place=self.image_place,
            durable=self.durable_servers,
        )

    @property
    def durable_servers(self) -> bool:
        """Whether the run's servers must be durable: a run that times migrations."""
        return False


class Progress(Protocol):
    """Where the run tells what happens (the command line's console)."""

    def target(self, target_id: str, state: str, **info: str) -> None: ...

    def check(self, target_id: str, name: str, status: str) -> None: ...

    def log(self, target_id: str, message: str) -> None: ...


class Writer(Protocol):
    """The reports folder's writer, which the command line gives the run."""

    def locked(self) -> AbstractContextManager[Any]: ...


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C: unwind, clean up, keep the results so far."""


@dataclass
class Run(Generic[P]):
    """What every target of one run shares: one object, handed to each target as it starts."""

    run_id: str
    options: Any  # the run's options (a TargetsOptions)
    prepared: Future[P]  # the plugin (or the site), ready once install is done
    providers: ProviderSet
    progress: Progress
    work: Path  # the run's scratch folder
    started: float = field(default_factory=time.perf_counter)
    deadline: float = 0.0


@contextmanager
def run_frame(
    options: TargetsOptions,
    writer: Writer,
    progress: Progress,
    finish: Callable[[], None],
) -> Iterator[Run]:
    """Hold the reports, a scratch folder, the signals and the providers for one run.

    ``finish`` runs last, after the providers are closed, even when closing
    them fails: it writes the report of what was gathered.
    """
    run_id = secrets.token_hex(4)
    started = time.perf_counter()
    deadline = time.monotonic() + options.run_timeout_s
    with writer.locked(), scratch(run_id) as work, interrupt_on_signals():
        providers = options.providers(run_id)
        try:
            yield Run(run_id, options, Future(), providers, progress, work, started, deadline)
        finally:
            try:
                providers.close()
            finally:
                finish()


def start_targets(
    targets: list[Target], jobs: int, run_one: Callable[[Target], R], done: queue.Queue[R]
) -> None:
    """Run ``run_one`` for every target on ``jobs`` daemon threads; results onto ``done``.

    The threads start before the plugin is ready, so servers come up while
    it is built and installed. Daemon threads, so that an interrupted run can
    leave while a target still waits for a server: ``providers.close()``
    removes what it started.
    """
    todo: queue.Queue[Target] = queue.Queue()
    for target in targets:
        todo.put(target)

    def worker() -> None:
        while True:
            try:
                target = todo.get_nowait()
            except queue.Empty:
                return
            done.put(run_one(target))

    for _ in range(max(1, min(jobs, len(targets)))):
        threading.Thread(target=worker, daemon=True).start()


def finished(
    done: queue.Queue[R], pending: set[str], deadline: float, key: Callable[[R], str]
) -> Iterator[R]:
    """Results as they come, until every target in ``pending`` is done or the grace is over.

    What is left in ``pending`` afterwards outlived the run's timeout.
    """
    while pending:
        left = deadline + GRACE_S - time.monotonic()
        if left <= 0:
            return
        try:
            result = done.get(timeout=min(0.2, left))
        except queue.Empty:
            continue
        pending.discard(key(result))
        yield result


@contextmanager
def scratch(run_id: str) -> Iterator[Path]:
    """A temporary folder for the run, removed on every exit (and by the next run
    after a SIGKILL, which the folders of dead runs left behind)."""
    leftovers.reap_scratch()
    path = Path(tempfile.mkdtemp(prefix=f"{leftovers.scratch_prefix('run')}{run_id}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into one :class:`Interrupted`, so cleanup runs once.

    Only the first signal interrupts: a second one while the run cleans up
    and writes its report would otherwise cut that short and leave no report.
    """
    hit: list[int] = []

    def handler(signum, frame):
        if hit:
            return
        hit.append(signum)
        raise Interrupted(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        number: signal.signal(number, handler) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for number, was in previous.items():
            signal.signal(number, was)
