"""The migrator's walks, on SQLite: what it hands the observer, when it commits, whom it blames.

The walk's mechanics are Alembic's and the driver's (env.py's run, the steps
Alembic plans, the version table, the transaction), the same on every
database; a file-backed SQLite database (a real one, in-process, no server)
shows them: the order of the observer's calls, the revision a failure is
blamed on, that each step is committed before the observer looks from a
session of its own (and that ``upgrade head`` in one go commits nothing
until it ends), and that offline rendering refuses every connection. The
plugins' own walks on PostgreSQL are in ``test_walk.py`` and
``test_checks.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from matrix.check.migrator import BASE, Migrator, OfflineConnect, Step, StepFailed
from matrix.errors import PluginError
from matrix.protocol import Plugin

# SQLAlchemy's recipe for transactional DDL on pysqlite (its "Serializable isolation /
# Savepoints / Transactional DDL" section): the driver's own transaction handling off, BEGIN
# sent by SQLAlchemy, so that a transaction holds DDL as PostgreSQL's does.
ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, event, pool

url = context.config.get_main_option("sqlalchemy.url")
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def begin(conn):
        conn.exec_driver_sql("BEGIN")

    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
"""
# An env.py with no offline branch, as Peek's AlembicEnvBase: it connects in --sql mode too.
CONNECTING_ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine("sqlite://", poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""
REVISION = """
revision = {revision!r}
down_revision = {down!r}

from alembic import op
import sqlalchemy as sa


def upgrade():
{upgrade}


def downgrade():
{downgrade}
"""
HISTORY = [
    ("a1", None, 'op.create_table("item", sa.Column("id", sa.Integer, primary_key=True))',
     'op.drop_table("item")'),
    ("b2", "a1", 'op.add_column("item", sa.Column("count", sa.Integer))',
     'op.drop_column("item", "count")'),
    ("c3", "b2", 'op.create_table("tag", sa.Column("id", sa.Integer, primary_key=True))',
     'op.drop_table("tag")'),
]  # fmt: skip


def history(root: Path, revisions=HISTORY, env: str = ENV_PY) -> Migrator:
    """A migration history of plain Alembic revision files, and its migrator."""
    versions = root / "alembic" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic" / "env.py").write_text(env)
    for revision, down, upgrade, downgrade in revisions:
        (versions / f"{revision}.py").write_text(
            REVISION.format(
                revision=revision,
                down=down,
                upgrade=textwrap.indent(upgrade, "    "),
                downgrade=textwrap.indent(downgrade, "    "),
            )
        )
    return Migrator(Plugin("history", "0", root, root / "alembic", "in-place"))


class Watcher:
    """An observer that looks from a session of its own: which revision is committed."""

    def __init__(self, url: sa.URL) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.seen: list[tuple[str, str, str | None]] = []

    def committed(self) -> str | None:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return found or "(no row)"

    def before(self, revision: str) -> None:
        self.seen.append(("before", revision, self.committed()))

    def after(self, step: Step) -> None:
        self.seen.append(("after", step.revision, self.committed()))


@pytest.fixture
def url(tmp_path) -> sa.URL:
    return sa.make_url(f"sqlite:///{tmp_path / 'walk.db'}")


def test_each_step_is_committed_before_the_observer_looks_up_and_down(tmp_path, url):
    migrator = history(tmp_path)
    watcher = Watcher(url)
    steps = migrator.upgrade(url, "heads", watcher)
    assert [(s.revision, s.destination, s.upgrade) for s in steps] == [
        ("a1", "a1", True),
        ("b2", "b2", True),
        ("c3", "c3", True),
    ]
    assert watcher.seen == [
        ("before", "a1", "(no row)"),  # Alembic's version table, committed before a1 runs
        ("after", "a1", "a1"),
        ("before", "b2", "a1"),
        ("after", "b2", "b2"),
        ("before", "c3", "b2"),
        ("after", "c3", "c3"),
    ]
    watcher.seen.clear()
    steps = migrator.downgrade(url, BASE, watcher)
    assert [(s.revision, s.destination) for s in steps] == [
        ("c3", "b2"),
        ("b2", "a1"),
        ("a1", BASE),
    ]
    assert [entry for entry in watcher.seen if entry[0] == "after"] == [
        ("after", "c3", "b2"),
        ("after", "b2", "a1"),
        ("after", "a1", "(no row)"),  # the version table holds no row at base
    ]


def test_upgrade_head_in_one_go_commits_nothing_until_it_ends(tmp_path, url):
    migrator = history(tmp_path)
    watcher = Watcher(url)
    migrator.upgrade(url, "a1")
    steps = migrator.upgrade_in_one_go(url, "heads", watcher)
    assert [s.revision for s in steps] == ["b2", "c3"]
    assert [seen for _, _, seen in watcher.seen] == ["a1", "a1", "a1", "a1"]
    assert watcher.committed() == "c3"


def test_a_revision_that_raises_is_blamed_and_the_steps_before_it_stay(tmp_path, url):
    broken = [*HISTORY[:2], ("c3", "b2", 'op.execute("ALTER TABLE nowhere ADD x int")', "pass")]
    migrator = history(tmp_path, broken)
    watcher = Watcher(url)
    with pytest.raises(StepFailed) as caught:
        migrator.upgrade(url, "heads", watcher)
    failure = caught.value
    assert (failure.revision, failure.upgrade) == ("c3", True)
    assert [s.revision for s in failure.done] == ["a1", "b2"]
    assert "no such table: nowhere" in str(failure.error)
    assert watcher.committed() == "b2"  # what went before is committed, c3 is not
    assert migrator.current(url) == ("b2",)


def test_an_observer_that_raises_is_the_harnesss_error_not_the_revisions(tmp_path, url):
    migrator = history(tmp_path)

    class Broken(Watcher):
        def after(self, step: Step) -> None:
            raise LookupError("the harness's own bug")

    with pytest.raises(LookupError, match="the harness's own bug"):
        migrator.upgrade(url, "heads", Broken(url))


def test_offline_rendering_gives_the_script_and_refuses_every_connection(tmp_path):
    script = history(tmp_path / "offline").render("sqlite://", "base:heads")
    assert "CREATE TABLE item" in script and "CREATE TABLE tag" in script
    assert "ALTER TABLE item ADD COLUMN count INTEGER" in script
    down = history(tmp_path / "down").render("sqlite://", "heads:a1", downgrade=True)
    assert "DROP TABLE tag" in down and "DROP TABLE item" not in down

    connecting = history(tmp_path / "connecting", env=CONNECTING_ENV_PY)
    with pytest.raises(OfflineConnect, match="opened a sqlite connection in --sql mode"):
        connecting.render("sqlite://", "base:heads")


def test_a_history_with_a_cycle_is_the_plugins_error(tmp_path):
    cycle = [("a1", "b2", *HISTORY[0][2:]), HISTORY[1]]
    with pytest.raises(PluginError, match="cannot be read") as caught:
        history(tmp_path, cycle)
    assert "every down_revision must name an existing revision" in caught.value.fix


def test_a_revision_declared_twice_is_the_plugins_error(tmp_path):
    history(tmp_path)
    versions = tmp_path / "alembic" / "versions"
    (versions / "a1_again.py").write_text((versions / "a1.py").read_text())
    with pytest.raises(PluginError, match="present more than once"):
        Migrator(Plugin("history", "0", tmp_path, tmp_path / "alembic", "in-place"))
