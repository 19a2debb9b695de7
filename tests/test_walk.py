"""A walk's first observation happens outside any uncommitted DDL (live PostgreSQL).

Alembic creates its version table (and a plugin's env.py its schema) inside
env.py's transaction, before it asks for the steps to run. An observer that
reads the catalogue from another session at that moment (the cost check's
first fill and relation snapshot) waits on those uncommitted locks: on SQL
Server, metadata access under READ COMMITTED blocks on the uncommitted
CREATE TABLE until LOCK_TIMEOUT (error 1222), or for ever with
``--lock-timeout 0``. The mechanism (an open transaction holding the new
table's locks) is the same on PostgreSQL, where it is observed here.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from plugin_factory import PluginSpec, healthy_revisions, write_plugin

from matrix.check.migrator import Migrator, Step
from matrix.protocol import Plugin
from matrix.provide import databases

# Other sessions of this database that sit in an open transaction holding locks.
HOLDERS = """
    SELECT a.pid, a.state, count(l.*) AS locks
    FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND l.granted
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND a.state LIKE 'idle in transaction%'
    GROUP BY a.pid, a.state
"""


class Watcher:
    """An observer that looks, from a session of its own, at what other sessions hold."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.seen: list[tuple[str, list, bool]] = []

    def _look(self, moment: str) -> None:
        holders = self.conn.execute(sa.text(HOLDERS)).all()
        visible = self.conn.execute(sa.text("SELECT to_regclass('pl_walk.alembic_version')"))
        self.seen.append((moment, holders, visible.scalar() is not None))

    def before(self, revision: str) -> None:
        self._look(f"before {revision}")

    def after(self, step: Step) -> None:
        self._look(f"after {step.revision}")


@pytest.mark.parametrize("env", ["offline", "peek"])  # env.py in a transaction or not
def test_no_uncommitted_ddl_is_held_when_the_first_revision_is_observed(
    env, postgres_url, tmp_path, monkeypatch
):
    spec = PluginSpec("walk", healthy_revisions(), env=env)
    package_dir = write_plugin(tmp_path, spec)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = Plugin(spec.package, "0", tmp_path, package_dir / "_private" / "alembic", "in-place")
    engine = databases.connect_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            watcher = Watcher(conn)
            steps = Migrator(plugin).upgrade(postgres_url, "heads", watcher)
    finally:
        engine.dispose()
    assert [s.revision for s in steps] == ["a1", "b2"]
    moment, holders, version_table_visible = watcher.seen[0]
    assert moment == "before a1"
    assert holders == [], f"at {moment}, another session holds uncommitted locks: {holders}"
    assert version_table_visible  # Alembic's version table is committed, readable by others
    assert all(not held for _, held, _ in watcher.seen), watcher.seen
