"""Walks recorded on a real PostgreSQL 15 + PostGIS, for the unit tier to judge without one.

Each walk is a plugin written by :mod:`plugin_factory` taken up from base and
down again by the harness's own :class:`~matrix.check.migrator.Migrator`, the
plugin schema read from the catalogue after every step as the checks read it
(:meth:`Engine.schema_document`). ``tests/recorded/postgresql_walks.json``
holds the documents; ``tests/test_snapshot.py`` records them again on the live
server and fails when they drift from the file, so the unit tests that judge
them (``tests/test_walk_judging.py``) judge what PostgreSQL really gives.

When the catalogue query changes, that test fails and writes the new recording
beside its temporary folder, for review and copying over the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import sqlalchemy as sa
from plugin_factory import (
    ADD_COUNT,
    CREATE_INDEX,
    DROP_COUNT,
    DROP_INDEX,
    PluginSpec,
    Revision,
    healthy_revisions,
    write_plugin,
)
from sqlalchemy.engine import URL

from matrix.check.cell import Cell
from matrix.check.migrator import BASE, Migrator, Step
from matrix.check.snapshot import VERSION_TABLE, SchemaState, state_of
from matrix.engines import engine_named
from matrix.protocol import Plugin
from matrix.provide import databases

FILE = Path(__file__).parent / "recorded" / "postgresql_walks.json"
ENGINE = "postgresql"
CREATE_NOTE = """
op.create_table(
    "Note",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("text", sa.String(length=20), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    schema="{schema}",
)
"""
DROP_NOTE = 'op.drop_table("Note", schema="{schema}")'


def spec(walk: str) -> PluginSpec:
    """a1 creates Item, b2 adds count and its index, c3 creates a table Note.

    ``healthy``: every downgrade undoes its upgrade. ``leftover``: b2's
    downgrade drops the index but leaves the column ``count`` behind, and
    c3's is a no-op (``pass``) that leaves the table Note, through every
    downgrade below it.
    """
    revisions = healthy_revisions()
    if walk == "leftover":
        revisions[1] = Revision("b2", "a1", f"{ADD_COUNT}\n{CREATE_INDEX}", DROP_INDEX, "add count")
        revisions.append(Revision("c3", "b2", CREATE_NOTE, "pass", "create Note"))
    else:
        revisions[1] = Revision(
            "b2", "a1", f"{ADD_COUNT}\n{CREATE_INDEX}", f"{DROP_INDEX}\n{DROP_COUNT}", "add count"
        )
        revisions.append(Revision("c3", "b2", CREATE_NOTE, DROP_NOTE, "create Note"))
    return PluginSpec(f"rec{walk}", revisions)


WALKS = ("healthy", "leftover")


def write(walk: str, root: Path) -> tuple[PluginSpec, Plugin]:
    """One walk's plugin, written under ``root``, as the check process is handed it."""
    plugin_spec = spec(walk)
    package_dir = write_plugin(root, plugin_spec)
    alembic_dir = package_dir / "_private" / "alembic"
    return plugin_spec, Plugin(plugin_spec.package, "0", root, alembic_dir, "in-place")


class _Reader:
    """An observer that reads the plugin schema's catalogue document after every step."""

    def __init__(self, conn: sa.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self.documents: list[dict] = []

    def read(self) -> dict:
        return engine_named(ENGINE).schema_document(self.conn, self.schema, VERSION_TABLE)

    def before(self, revision: str) -> None:
        return None

    def after(self, step: Step) -> None:
        self.documents.append({"revision": step.revision, "document": self.read()})


def record(url: URL, root: Path) -> dict:
    """Every walk's documents: at base, after each upgrade, after each downgrade."""
    recorded = {}
    for walk in WALKS:
        plugin_spec, plugin = write(walk, root / walk)
        sys.path.insert(0, str(plugin.import_root))  # env.py imports the plugin's package
        database = databases.create_database(url, databases.throwaway_name())
        databases.prepare_database(database, postgis=True)
        engine = databases.connect_engine(database, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                migrator = Migrator(plugin)
                up, down = _Reader(conn, plugin_spec.schema), _Reader(conn, plugin_spec.schema)
                base = up.read()
                migrator.upgrade(database, "heads", up)
                migrator.downgrade(database, BASE, down)
        finally:
            engine.dispose()
            databases.drop_database(database)
            sys.path.remove(str(plugin.import_root))
        recorded[walk] = {
            "schema": plugin_spec.schema,
            "base": base,
            "up": up.documents,
            "down": down.documents,
        }
    return recorded


def load() -> dict:
    return json.loads(FILE.read_text(encoding="utf-8"))


def states(walk: str, direction: str) -> list[tuple[str, SchemaState]]:
    """(revision, the state its step left) for one walk's ``up`` or ``down``, as recorded."""
    return [(step["revision"], state_of(step["document"])) for step in load()[walk][direction]]


def base_state(walk: str) -> SchemaState:
    return state_of(load()[walk]["base"])


# A URL no server listens on (port 9, discard): a check that reaches for the database fails
# loudly instead of judging what a test did not record.
UNREACHED = URL.create("postgresql+psycopg", "nobody", "never", "127.0.0.1", 9, "never_connected")


def cell(walk: str, root: Path, monkeypatch, **more) -> Cell:
    """The check process's Cell for one walk's plugin (see :func:`cell_of`)."""
    return cell_of(spec(walk), root, monkeypatch, **more)


def cell_of(plugin_spec: PluginSpec, root: Path, monkeypatch, **more) -> Cell:
    """The check process's Cell for a plugin, on a target whose server it never reaches:
    the test fills in what the walks would have recorded."""
    package_dir = write_plugin(root, plugin_spec)
    monkeypatch.syspath_prepend(str(root))
    alembic_dir = package_dir / "_private" / "alembic"
    plugin = Plugin(plugin_spec.package, "0", root, alembic_dir, "in-place")
    found = Cell(plugin, engine_named(ENGINE), "pg15-postgis33", UNREACHED, root / "sql", **more)
    found.schema = plugin_spec.schema
    return found
