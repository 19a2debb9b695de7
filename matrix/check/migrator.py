"""The plugin's migrations, run through its own env.py, one walk at a time.

The harness never edits a plugin and never bypasses its env.py: Peek's
``AlembicEnvBase`` decides the connection, the schema translation and the
transaction, and that is what sites run. What the harness controls is the
work Alembic hands to env.py: like ``alembic.command.upgrade`` it passes a
``fn`` that returns the steps to run, but

- the :class:`~alembic.script.ScriptDirectory` is read once per process,
  not once per command (reading a long history again for every step made
  the walk quadratic, as pytest-alembic #48 found);
- a whole walk is one run of env.py, so one login and one engine, however
  many revisions it crosses;
- before the first step, and after each step, the walk commits (so that
  every revision stands on its own, as when a site upgrades release by
  release, and no uncommitted DDL, not even Alembic's version table, holds
  locks while the harness reads the catalogue from another session); after
  each step a callback hands the step to an :class:`Observer`, which
  snapshots the schema or writes rows on a connection of its own, with the
  step's own time measured apart from it.

Offline rendering (``--sql``) refuses every database connection: an env.py
that connects anyway (Peek's has no offline branch) raises
:class:`OfflineConnect` instead of talking to whatever listens.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import URL

from matrix.engines import hidden_cause
from matrix.errors import PluginError
from matrix.protocol import Plugin

BASE = "base"


class OfflineConnect(Exception):
    """env.py tried to open a database connection while rendering offline SQL."""


@dataclass(frozen=True)
class Step:
    """One revision crossed by a walk, and the seconds its own work took."""

    revision: str  # the revision applied (upgrade) or undone (downgrade)
    destination: str  # the revision the database is at afterwards
    upgrade: bool
    seconds: float


class StepFailed(Exception):
    """A revision raised; the walk stopped before it, with the steps done."""

    def __init__(self, revision: str, upgrade: bool, error: BaseException, done: list[Step]):
        super().__init__(f"{'upgrade' if upgrade else 'downgrade'} of {revision} failed: {error}")
        self.revision = revision
        self.upgrade = upgrade
        self.error = error
        self.done = done


class ObserverFailed(Exception):
    """The harness's own observer raised between two revisions: not the plugin's fault."""


class Observer(Protocol):
    """Called around each step of a walk, between the revisions' transactions."""

    def before(self, revision: str) -> None: ...

    def after(self, step: Step) -> None: ...


@dataclass
class EnvOptions:
    """What the plugin's env.py passed to ``context.configure``, as seen by a walk."""

    options: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> sa.MetaData | None:
        metadata = self.options.get("target_metadata")
        if isinstance(metadata, list | tuple):
            metadata = metadata[0] if metadata else None
        return metadata

    @property
    def schema(self) -> str | None:
        metadata = self.metadata
        return getattr(metadata, "schema", None) or self.options.get("version_table_schema")


class Migrator:
    """Runs one plugin's migrations; one instance per check process."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        config = self.config("sqlite://")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.script = ScriptDirectory.from_config(config)
                self.revisions: list[Script] = list(
                    reversed(list(self.script.walk_revisions(BASE, "heads")))
                )
                problem = None
            except (CommandError, RevisionError) as error:
                problem = str(error)
        twice = [str(w.message) for w in caught if "more than once" in str(w.message)]
        if twice or problem:
            raise PluginError(
                f"The migration history of {plugin.package} cannot be read: "
                f"{'; '.join(twice) or problem}.",
                "Fix the revision files: every down_revision must name an existing "
                "revision, revision ids must be unique, and the history must have no cycle.",
            ) from None
        self.env = EnvOptions()
        # The MigrationContext of the walk in progress (None between walks): an
        # observer that must see a walk's uncommitted work reads through its connection.
        self.context: MigrationContext | None = None

    def config(self, url: URL | str, buffer: io.StringIO | None = None) -> Config:
        """The Alembic config Peek's ``DbConnection`` writes for the plugin."""
        config = Config(output_buffer=buffer) if buffer is not None else Config()
        config.set_main_option("script_location", str(self.plugin.alembic_dir))
        config.set_main_option("sourceless", "true")
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
        return config

    @property
    def head(self) -> str | None:
        return self.script.get_current_head() if len(self.script.get_heads()) == 1 else None

    def down_revision(self, revision: str) -> str:
        down = self.script.get_revision(revision).down_revision
        if isinstance(down, tuple):
            down = down[0] if down else None
        return down or BASE

    # -- online --------------------------------------------------------------------

    def upgrade(
        self, url: URL, destination: str = "heads", observer: Observer | None = None
    ) -> list[Step]:
        """Upgrade to ``destination``, committing and observing after each revision."""
        return self._walk(url, destination, True, observer)

    def downgrade(self, url: URL, destination: str, observer: Observer | None = None) -> list[Step]:
        """Downgrade to ``destination``, committing and observing after each revision."""
        return self._walk(url, destination, False, observer)

    def upgrade_in_one_go(
        self, url: URL, destination: str = "heads", observer: Observer | None = None
    ) -> list[Step]:
        """``alembic upgrade head`` exactly as Peek's server runs it: env.py's one transaction.

        Nothing is committed between revisions; the steps are only followed, so
        that a failure names the revision that raised. An observer sees the
        uncommitted work through :attr:`context`'s connection.
        """
        return self._walk(url, destination, True, observer, commit_each=False)

    def stamp(self, url: URL, revision: str = "heads") -> None:
        """``alembic stamp``: record ``revision`` without running anything."""

        def do_stamp(rev, context):
            return self.script._stamp_revs(revision, rev)

        self._run(url, do_stamp, destination_rev=revision)

    def current(self, url: URL) -> tuple[str, ...]:
        """The revisions the database's version table holds (runs env.py, changes nothing)."""
        found: list[tuple[str, ...]] = []

        def read(rev, context):
            found.append(tuple(context.get_current_heads()))
            return []

        self._run(url, read, dont_mutate=True)
        return found[0] if found else ()

    def autogenerate_differences(self, url: URL) -> list[Any]:
        """What ``alembic revision --autogenerate`` would propose, with env.py's own options."""
        from alembic.autogenerate import compare_metadata

        found: list[Any] = []

        def compare(rev, context):
            found.extend(compare_metadata(context, context.opts["target_metadata"]))
            return []

        self._run(url, compare, dont_mutate=True)
        return found

    def _walk(
        self,
        url: URL,
        destination: str,
        upgrade: bool,
        observer: Observer | None,
        commit_each: bool = True,
    ) -> list[Step]:
        done: list[Step] = []
        pending: list[str] = []
        clock = [time.perf_counter()]

        def steps(rev, context: MigrationContext):
            planned = (
                self.script._upgrade_revs(destination, rev)
                if upgrade
                else self.script._downgrade_revs(destination, rev)
            )
            pending.extend(_revision_of(step, upgrade) for step in planned)
            self.context = context
            context.on_version_apply_callbacks = (*context.on_version_apply_callbacks, after)
            if commit_each:
                # Alembic created its version table (and env.py perhaps the schema)
                # before handing over; committed now, as after every revision, no
                # uncommitted DDL holds locks while the observer reads the catalogue.
                _commit(context)
            if observer is not None and pending:
                observer.before(pending[0])
            clock[0] = time.perf_counter()
            return planned

        def after(ctx: MigrationContext, step: MigrationInfo, heads, run_args) -> None:
            if commit_each:
                _commit(ctx)
            seconds = time.perf_counter() - clock[0]
            revision = pending[len(done)]
            destination_now = ",".join(sorted(heads)) or BASE
            done.append(Step(revision, destination_now, upgrade, seconds))
            if observer is not None:
                try:
                    observer.after(done[-1])
                    if len(done) < len(pending):
                        observer.before(pending[len(done)])
                except Exception as error:
                    raise ObserverFailed(error) from error
            clock[0] = time.perf_counter()

        try:
            self._run(url, steps, destination_rev=destination)
        except ObserverFailed as failure:
            raise failure.__cause__ from None  # the harness's error, reported as such
        except (OfflineConnect, KeyboardInterrupt):
            raise
        except BaseException as error:  # noqa: BLE001 - a migration may raise anything
            if len(done) < len(pending):
                raise StepFailed(pending[len(done)], upgrade, hidden_cause(error), done) from error
            raise
        finally:
            self.context = None
        return done

    def _run(self, url: URL, fn: Callable, **context: Any) -> None:
        config = self.config(url)
        with EnvironmentContext(config, self.script, fn=fn, as_sql=False, **context) as env:
            try:
                self.script.run_env()
            finally:
                self._remember(env)

    def _remember(self, env: EnvironmentContext) -> None:
        migration = getattr(env, "_migration_context", None)
        if migration is None:
            return
        self.env.options = dict(migration.opts)

    # -- offline ---------------------------------------------------------------------

    def render(self, url: URL | str, revision_range: str, downgrade: bool = False) -> str:
        """The SQL Alembic would run for ``revision_range``, without any database.

        ``url`` only names the dialect; connections are refused, so an env.py
        that connects raises :class:`OfflineConnect`.
        """
        buffer = io.StringIO()
        config = self.config(url, buffer)
        start, _, end = revision_range.rpartition(":")
        start = start or None

        def fn(rev, context):
            if downgrade:
                return self.script._downgrade_revs(end, start)
            return self.script._upgrade_revs(end, start)

        with refuse_connections():
            with EnvironmentContext(
                config,
                self.script,
                fn=fn,
                as_sql=True,
                starting_rev=start,
                destination_rev=end,
            ) as env:
                self.script.run_env()
                if not self.env.options:
                    self._remember(env)
        return buffer.getvalue()


@contextmanager
def refuse_connections() -> Iterator[None]:
    """Every SQLAlchemy connection attempt raises :class:`OfflineConnect` meanwhile."""

    def refuse(dialect, conn_rec, cargs, cparams):
        raise OfflineConnect(f"env.py opened a {dialect.name} connection in --sql mode")

    sa.event.listen(sa.engine.Engine, "do_connect", refuse)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "do_connect", refuse)


def _revision_of(step: Any, upgrade: bool) -> str:
    """The revision a planned step applies (upgrade) or undoes (downgrade)."""
    revision = getattr(step, "revision", None)
    if revision is not None:
        return revision.revision
    ids = step.up_revision_ids if hasattr(step, "up_revision_ids") else ()
    return ",".join(ids) or "?"


def _commit(ctx: MigrationContext) -> None:
    """Commit the revision just run, inside env.py's own transaction handling.

    Alembic's ``autocommit_block`` commits the transaction env.py began and
    begins a fresh one afterwards; an env.py that began none leaves SQLAlchemy's
    autobegun transaction, which is committed directly.
    """
    if ctx.as_sql or ctx.connection is None:
        return
    if getattr(ctx, "_transaction", None) is not None:
        with ctx.autocommit_block():
            pass
    elif ctx.connection.in_transaction():
        ctx.connection.commit()
