"""What the checks of one target share: the plugin, the databases, the walks.

One :class:`Cell` per check process. It holds the plugin's
:class:`~matrix.check.migrator.Migrator`, the engine, the target's database and the
sibling databases some checks need (a fresh install, the data walk, the
offline script), and what earlier checks saw: the schema at base and at
head, what each revision changed on the way up, what each downgrade left.
Only the changes are kept, never a picture of every revision: the check
process grows with the history's scripts and their changes (about 18 MB per
100 revisions measured), not by a schema per revision.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from matrix.check.migrator import Migrator, OfflineConnect
from matrix.check.snapshot import Change, SchemaState, outside_plugin_schema, plugin_schema
from matrix.define.policy import Policy, Waivers
from matrix.engines import Engine, engine_named
from matrix.errors import PluginError
from matrix.protocol import Plugin, PreviousRelease, TargetSpec
from matrix.provide import databases
from matrix.results import CODE_MARK

SIBLINGS = {
    "fresh_install_matches_upgrade": "fresh",
    "data_survives": "data",
    "offline_sql": "script",
    "upgrade_from_release": "release",
    "migration_cost": "scale",
}


@dataclass
class Residue:
    """Facts a revision's own downgrade left different from before its upgrade."""

    revision: str
    expected: frozenset[str]  # facts as they were before the upgrade, only those that differ
    actual: frozenset[str]


@dataclass
class Cell:
    plugin: Plugin
    engine: Engine
    target: str
    url: URL | None  # the target's database; None when no server was reached
    sql_dir: Path
    policy: Policy = field(default_factory=Policy)
    statement_timeout_s: float = 0
    lock_timeout_s: float = 0
    scale: int = 0  # --scale: rows per table for migration_cost, 0 for none
    previous: PreviousRelease = field(default_factory=lambda: PreviousRelease("none given"))

    @classmethod
    def on(cls, plugin: Plugin, where: TargetSpec, url: URL | None, **more) -> Cell:
        """The checks' view of ``plugin`` on the target a spec names."""
        return cls(
            plugin=plugin,
            engine=engine_named(where.engine, where.flavour),
            target=where.target,
            url=url,
            sql_dir=where.sql_dir,
            policy=Policy.from_dict(where.policy),
            statement_timeout_s=where.statement_timeout_s,
            lock_timeout_s=where.lock_timeout_s,
            **more,
        )

    def __post_init__(self) -> None:
        self.migrator = Migrator(self.plugin)
        self.waivers = Waivers(self.policy, self.target)
        self.schema: str = ""
        self.base_state = SchemaState(frozenset())
        self.head_state: SchemaState | None = None
        self.up_changes: dict[str, Change] = {}
        self.outside_before: frozenset[str] = frozenset()
        self.residues: list[Residue] = []
        self.up_failed_at: str | None = None  # the revision upgrade_stepwise stopped at
        # Where the walk down left the database (base, or the revision whose
        # downgrade raised), and how many steps it took; None: it never ran.
        self.down_reached: str | None = None
        self.down_steps = 0
        self.siblings: dict[str, URL] = {}
        self._conn: sa.Connection | None = None
        self._step_code: dict[tuple[str, bool], str] = {}
        if self.previous.database and self.url is not None:  # seeded by the runner
            self.siblings["release"] = self.url.set(database=self.previous.database)

    @property
    def live(self) -> bool:
        return self.url is not None

    @property
    def revisions(self) -> list[str]:
        return [script.revision for script in self.migrator.revisions]

    @property
    def head(self) -> str | None:
        return self.migrator.head

    @property
    def engine_dialect(self) -> sa.Dialect:
        return self.connection().dialect

    # -- databases -----------------------------------------------------------------

    def prepare_siblings(self, checks: tuple[str, ...]) -> None:
        """Create the sibling databases the requested checks need, before any session.

        PostgreSQL copies them from the target's database (PostGIS included),
        which only works while nobody is connected to it.
        """
        if not self.live:
            return
        purposes = list(dict.fromkeys(SIBLINGS[c] for c in checks if c in SIBLINGS))
        purposes = [p for p in purposes if p not in self.siblings]
        if not purposes:
            return
        urls = databases.create_siblings(
            self.url,
            [f"{self.url.database}_{purpose}" for purpose in purposes],
            template=self.url.database if self.engine.clones_databases else None,
            statement_timeout_s=self.statement_timeout_s,
            lock_timeout_s=self.lock_timeout_s,
        )
        self.siblings.update(zip(purposes, urls, strict=True))

    def connection(self, url: URL | None = None) -> sa.Connection:
        """The harness's own autocommit session on the target's database (or ``url``)."""
        if url is not None and url != self.url:
            return self.open(url)
        if self._conn is None:
            self._conn = self.open(self.url)
        return self._conn

    def open(self, url: URL) -> sa.Connection:
        engine = databases.connect_engine(url, isolation_level="AUTOCOMMIT")
        conn = engine.connect()
        for statement in self.engine.session_settings_sql(
            self.statement_timeout_s, self.lock_timeout_s
        ):
            conn.execute(sa.text(statement))
        return conn

    @contextmanager
    def session(self, url: URL) -> Iterator[sa.Connection]:
        """A session of its own on ``url`` (a sibling database), closed with its engine."""
        conn = self.open(url)
        try:
            yield conn
        finally:
            engine = conn.engine
            conn.close()
            engine.dispose()

    def state(self, conn: sa.Connection | None = None) -> SchemaState:
        return plugin_schema(conn or self.connection(), self.engine, self.schema)

    def outside(self) -> frozenset[str]:
        return outside_plugin_schema(self.connection(), self.engine.outside_schema_sql, self.schema)

    def close(self) -> None:
        if self._conn is not None:
            engine = self._conn.engine
            self._conn.close()
            engine.dispose()
        if self.siblings:
            try:
                databases.drop_databases(self.url, [u.database for u in self.siblings.values()])
            except sa.exc.DBAPIError:
                pass  # the runner drops leftovers of this database when the cell ends

    # -- the plugin's env.py -----------------------------------------------------------

    def discover(self) -> None:
        """The plugin schema and env.py's options, before any check runs.

        Live, env.py runs online with nothing to do (as ``alembic current``,
        changing nothing). Offline, it runs in ``--sql`` mode with connections
        refused; an env.py that connects anyway (Peek's) yields no options,
        and the schema is read from the plugin's MetaData instead.
        """
        if self.live:
            self.migrator.current(self.url)
        else:
            try:
                self.migrator.render(self.engine.offline_url, "base:base")
            except OfflineConnect:
                pass
        schema = self.migrator.env.schema or metadata_schema(self.plugin.package)
        if not schema:
            raise PluginError(
                "The plugin's schema cannot be found: env.py hands Alembic a target_metadata "
                "without a schema and no version_table_schema, and no loaded MetaData has one.",
                "Give the plugin's MetaData its schema (MetaData(schema='pl_<name>')), as every "
                "Peek storage plugin does; every check is scoped to that schema.",
            )
        self.schema = schema

    # -- reading revisions --------------------------------------------------------------

    def step_code(self, revision: str, upgrade: bool) -> str:
        """What one step of ``revision`` runs, to show beside a finding blamed on it.

        The step's SQL rendered offline, headed by the migration function's
        source (Peek's env.py renders nothing offline, and the source names
        the operations, ``op.execute('TRUNCATE ...')`` included).
        """
        key = (revision, upgrade)
        if key not in self._step_code:
            function = "upgrade" if upgrade else "downgrade"
            code = f"{CODE_MARK}{function}() of {revision} ---\n"
            code += self.source_of(revision, function).strip()
            sql = self._step_sql(revision, upgrade)
            self._step_code[key] = code + (
                f"\n{CODE_MARK}SQL of the step ---\n{sql}" if sql else ""
            )
        return self._step_code[key]

    def _step_sql(self, revision: str, upgrade: bool) -> str:
        down = self.migrator.down_revision(revision)
        span = f"{down}:{revision}" if upgrade else f"{revision}:{down}"
        try:
            return self.migrator.render(
                self.engine.offline_url, span, downgrade=not upgrade
            ).strip()
        except OfflineConnect:
            return ""
        except Exception as error:  # noqa: BLE001 - only context for a finding
            return f"(the step's SQL cannot be rendered offline: {type(error).__name__}: {error})"

    def source_of(self, revision: str, function: str) -> str:
        """The source of a revision's ``upgrade`` or ``downgrade`` function, to show."""
        source = self._source(revision, function)
        if source is None:
            return f"(the source of {function}() of {revision} is not available)"
        return source

    def _source(self, revision: str, function: str) -> str | None:
        module = self.migrator.script.get_revision(revision).module
        try:
            return inspect.getsource(getattr(module, function))
        except (OSError, TypeError, AttributeError):
            return None

    def downgrade_kind(self, revision: str) -> str:
        """``irreversible`` (it only raises), ``no-op`` (only ``pass``), ``code``, or
        ``unknown`` when its source cannot be read (a revision shipped as bytecode)."""
        source = self._source(revision, "downgrade")
        return "unknown" if source is None else function_kind(source)


def function_kind(source: str) -> str:
    """How a migration function's body reads, statically.

    A body that is nothing but ``pass`` (or ``...``, or a docstring) is a
    no-op; one whose first statement is an unconditional ``raise`` declares
    the step irreversible, as ``raise NotImplementedError`` does.
    """
    try:
        tree = ast.parse(_dedent(source))
    except SyntaxError:
        return "code"
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    if function is None:
        return "code"
    body = [
        n
        for n in function.body
        if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        and not isinstance(n, ast.Pass)
    ]
    if not body:
        return "no-op"
    if isinstance(body[0], ast.Raise):
        return "irreversible"
    return "code"


def _dedent(source: str) -> str:
    import textwrap

    return textwrap.dedent(source)


def metadata_schema(package: str) -> str | None:
    """The schema of the one schema-bound MetaData among the plugin's loaded modules."""
    metadata = plugin_metadata(package)
    return metadata.schema if metadata is not None else None


def plugin_metadata(package: str) -> sa.MetaData | None:
    """The one schema-bound MetaData among the plugin's loaded modules, or None."""
    found: dict[int, sa.MetaData] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == package or name.startswith(package + ".")):
            continue
        for value in vars(module).values():
            metadata = value if isinstance(value, sa.MetaData) else getattr(value, "metadata", None)
            if isinstance(metadata, sa.MetaData) and metadata.schema:
                found[id(metadata)] = metadata
    schemas = {metadata.schema for metadata in found.values()}
    if len(schemas) != 1:
        return None
    return next(iter(found.values()))
