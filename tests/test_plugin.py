"""The tutorial plugin in ``plugin_under_test/``, proven on real tools.

Its wheel is built as a release would be, its migrations run on a live
PostgreSQL + PostGIS, ``alembic revision --autogenerate`` is run the way the
Peek tutorial runs it (from ``_private``, as a subprocess), its ORM is used
after ``upgrade head``, and its offline SQL is rendered for PostgreSQL and for
SQL Server (no server needed) and parsed with sqlglot.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from helpers import parsed
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

PROJECT = Path(__file__).resolve().parents[1] / "plugin_under_test"
PACKAGE = "peek_plugin_tutorial"
PACKAGE_DIR = PROJECT / PACKAGE
PRIVATE = PACKAGE_DIR / "_private"
ALEMBIC_DIR = PRIVATE / "alembic"
SCHEMA = "pl_tutorial"
TABLES_BY_STEP = [
    ("Added StringInt Table", {"StringIntTuple"}),
    ("Added Setting Table", {"Setting", "SettingProperty"}),
    ("Added SpatialFeature Table", {"SpatialFeature"}),
]
ALL_TABLES = set().union(*(tables for _, tables in TABLES_BY_STEP))
MSSQL_URL = "mssql+pymssql://u:p@127.0.0.1/db"
POSTGRES_URL = "postgresql+psycopg://u:p@127.0.0.1/db"
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "build", "dist", "*.egg-info")


@pytest.fixture(scope="module")
def tutorial():
    """The plugin package imported from the source tree, not from any install."""
    sys.path.insert(0, str(PROJECT))
    try:
        import peek_plugin_tutorial
        from peek_plugin_tutorial._private.storage import DeclarativeBase

        assert Path(peek_plugin_tutorial.__file__).resolve().is_relative_to(PROJECT)
        DeclarativeBase.loadStorageTuples()
        yield peek_plugin_tutorial
    finally:
        sys.path.remove(str(PROJECT))


def alembic_config(url: URL | str, **kwargs) -> Config:
    """The config Peek's server builds: the plugin's alembic folder and a URL."""
    config = Config(**kwargs)
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def tables_in_schema(url: URL) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names(schema=SCHEMA))
    finally:
        engine.dispose()


def version_rows(url: URL) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(sa.text(f"SELECT version_num FROM {SCHEMA}.alembic_version")))
    finally:
        engine.dispose()


# -- the wheel -------------------------------------------------------------------


def build_wheel(project: Path, outdir: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--installer", "uv"]
        + ["--outdir", str(outdir), str(project)],
        env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = outdir.glob("*.whl")
    return wheel


@pytest.mark.live  # builds the wheel twice
def test_wheel_holds_runtime_files_and_builds_reproducibly(tmp_path):
    """Two builds from two clean copies give byte-identical wheels with every
    file the migrations need at run time."""
    wheels = []
    for name in ("first", "second"):
        copy = tmp_path / name / "project"
        shutil.copytree(PROJECT, copy, ignore=COPY_IGNORE)
        wheels.append(build_wheel(copy, tmp_path / name / "dist"))

    assert wheels[0].name == "peek_plugin_tutorial-1.0.0-py3-none-any.whl"
    revisions = sorted(p.name for p in (ALEMBIC_DIR / "versions").glob("*.py"))
    assert len(revisions) == 4  # __init__.py and the three tutorial steps
    needed = {
        f"{PACKAGE}/plugin_package.json",
        f"{PACKAGE}/_private/alembic.ini",
        f"{PACKAGE}/_private/alembic/env.py",
        f"{PACKAGE}/_private/alembic/script.py.mako",
        *(f"{PACKAGE}/_private/alembic/versions/{name}" for name in revisions),
    }
    with zipfile.ZipFile(wheels[0]) as archive:
        assert needed - set(archive.namelist()) == set()
        metadata = archive.read("peek_plugin_tutorial-1.0.0.dist-info/METADATA").decode()
    assert 'Requires-Dist: pymssql; extra == "mssql"' in metadata
    digests = [hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in wheels]
    assert digests[0] == digests[1]


# -- migrations on PostgreSQL ------------------------------------------------------


def test_migrations_step_up_and_down_on_postgresql(postgres_url, tutorial):
    """One revision per tutorial step, each adding its tables, each undone."""
    config = alembic_config(postgres_url)
    script = ScriptDirectory.from_config(config)
    steps = list(reversed(list(script.walk_revisions())))
    assert [step.doc for step in steps] == [message for message, _ in TABLES_BY_STEP]

    expected = {"alembic_version"}
    for step, (_, tables) in zip(steps, TABLES_BY_STEP, strict=True):
        command.upgrade(config, step.revision)
        expected |= tables
        assert tables_in_schema(postgres_url) == expected
        assert version_rows(postgres_url) == [step.revision]

    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        index = conn.scalar(
            sa.text(
                "SELECT indexdef FROM pg_indexes "
                "WHERE schemaname = :schema AND indexname = 'idx_SpatialFeature_geom'"
            ),
            {"schema": SCHEMA},
        )
        outside = conn.scalar(
            sa.text(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_name = 'alembic_version' AND table_schema <> :schema"
            ),
            {"schema": SCHEMA},
        )
    engine.dispose()
    assert "USING gist (geom)" in index
    assert outside == 0

    for step, (_, tables) in zip(reversed(steps), reversed(TABLES_BY_STEP), strict=True):
        command.downgrade(config, step.down_revision or "base")
        expected -= tables
        assert tables_in_schema(postgres_url) == expected
    assert version_rows(postgres_url) == []


# -- autogenerate, as the tutorial runs it ------------------------------------------


def copy_private(tmp_path: Path, url: URL, keep_revisions: bool) -> Path:
    """A copy of the package whose ``_private/alembic.ini`` points at ``url``."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE_DIR, root / PACKAGE, ignore=COPY_IGNORE)
    private = root / PACKAGE / "_private"
    if not keep_revisions:
        for revision in (private / "alembic" / "versions").glob("*.py"):
            if revision.name != "__init__.py":
                revision.unlink()
    ini = private / "alembic.ini"
    rendered = url.render_as_string(hide_password=False).replace("%", "%%")
    text, count = re.subn(
        r"^sqlalchemy\.url = .*$",
        lambda _: f"sqlalchemy.url = {rendered}",
        ini.read_text(),
        flags=re.MULTILINE,
    )
    assert count == 1
    ini.write_text(text)
    return private


def run_alembic(private: Path, *args: str) -> subprocess.CompletedProcess:
    """``alembic ...`` run from ``_private``, importing the copy it belongs to.

    ``-P`` keeps the working directory off ``sys.path``: there ``alembic`` is
    the plugin's migration folder, which would shadow the Alembic package.
    """
    root = private.parents[1]
    python_path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-P", "-m", "alembic", *args],
        cwd=private,
        env={**os.environ, "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def autogenerate(private: Path, message: str) -> Path:
    versions = private / "alembic" / "versions"
    before = set(versions.glob("*.py"))
    run_alembic(private, "revision", "--autogenerate", "-m", message)
    (revision,) = set(versions.glob("*.py")) - before
    return revision


def operations(revision: Path) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """``(op name, first argument, schema)`` of each ``op.*`` call, by function."""
    found: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for function in ast.parse(revision.read_text()).body:
        if not isinstance(function, ast.FunctionDef):
            continue
        calls = [
            node
            for node in ast.walk(function)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "op"
        ]
        found[function.name] = [
            (
                call.func.attr,
                call.args[0].value
                if call.args and isinstance(call.args[0], ast.Constant)
                else None,
                next((k.value.value for k in call.keywords if k.arg == "schema"), None),
            )
            for call in sorted(calls, key=lambda call: (call.lineno, call.col_offset))
        ]
    return found


def is_empty(revision: Path) -> bool:
    functions = {
        node.name: node.body
        for node in ast.parse(revision.read_text()).body
        if isinstance(node, ast.FunctionDef)
    }
    return all(
        [type(statement) for statement in functions[name]] == [ast.Pass]
        for name in ("upgrade", "downgrade")
    )


def test_autogenerate_from_empty_database_then_nothing_left(postgres_url, tmp_path):
    """On an empty database autogenerate writes every tutorial table into the
    plugin schema; once that is applied, autogenerate finds nothing."""
    private = copy_private(tmp_path, postgres_url, keep_revisions=False)

    revision = autogenerate(private, "x")
    ops = operations(revision)
    created = {(name, schema) for op, name, schema in ops["upgrade"] if op == "create_table"}
    assert created == {(table, SCHEMA) for table in ALL_TABLES}
    indexes = {name for op, name, _ in ops["upgrade"] if op == "create_index"}
    assert indexes == {"idx_SettingProperty_settingId", "idx_SpatialFeature_geom"}
    dropped = [name for op, name, _ in ops["downgrade"] if op == "drop_table"]
    assert dropped.index("SettingProperty") < dropped.index("Setting")
    assert "MssqlGeometry(srid=4326), 'mssql'" in revision.read_text()

    run_alembic(private, "upgrade", "head")
    assert tables_in_schema(postgres_url) == ALL_TABLES | {"alembic_version"}
    assert is_empty(autogenerate(private, "x"))


def test_tutorial_revisions_match_the_models(postgres_url, tmp_path):
    """After the plugin's own revisions, autogenerate finds nothing to add."""
    private = copy_private(tmp_path, postgres_url, keep_revisions=True)
    run_alembic(private, "upgrade", "head")
    assert is_empty(autogenerate(private, "x"))


# -- the ORM on PostgreSQL ----------------------------------------------------------


@pytest.fixture
def migrated_engine(postgres_url, tutorial):
    """An engine on a database at head, migrated through a caller's connection."""
    engine = sa.create_engine(postgres_url)
    config = alembic_config(postgres_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    yield engine
    engine.dispose()


def test_string_int_tuple_round_trip(migrated_engine, tutorial):
    from peek_plugin_tutorial._private.storage.StringIntTuple import StringIntTuple

    with Session(migrated_engine) as session:
        session.add(StringIntTuple(string1="one", int1=1))
        session.commit()
    with Session(migrated_engine) as session:
        (row,) = session.scalars(sa.select(StringIntTuple)).all()
        assert (row.string1, row.int1) == ("one", 1)
        assert row.tupleName() == "peek_plugin_tutorial.StringIntTuple"


def test_global_setting_reads_and_writes_typed_values(migrated_engine, tutorial):
    from peek_plugin_tutorial._private.storage.Setting import (
        PROPERTY1,
        PROPERTY2,
        PROPERTY3,
        globalSetting,
    )

    defaults = {"Property1": "value1", "Property2": 2, "Property3": False}
    with Session(migrated_engine) as session:
        assert globalSetting(session) == defaults
        session.commit()
    with Session(migrated_engine) as session:
        assert globalSetting(session, key=PROPERTY1, value="new") == "new"
        globalSetting(session, key=PROPERTY2, value=7)
        globalSetting(session, key=PROPERTY3, value=True)
        session.rollback()  # nothing was committed behind the caller's back
    with Session(migrated_engine) as session:
        assert globalSetting(session) == defaults
        globalSetting(session, key=PROPERTY2, value=7)
        globalSetting(session, key=PROPERTY3, value=True)
        session.commit()
    with Session(migrated_engine) as session:
        values = globalSetting(session)
        assert values == {"Property1": "value1", "Property2": 7, "Property3": True}
        assert type(values["Property2"]) is int
        assert type(values["Property3"]) is bool
        with pytest.raises(TypeError):
            globalSetting(session, key=PROPERTY2, value=True)
        with pytest.raises(KeyError):
            globalSetting(session, key="NoSuchProperty")


def test_global_setting_loads_in_one_query(migrated_engine, tutorial):
    """Reading all settings costs the same whatever the number of properties."""
    from peek_plugin_tutorial._private.storage.Setting import globalSetting

    with Session(migrated_engine) as session:
        globalSetting(session)
        session.commit()
    statements: list[str] = []
    sa.event.listen(
        migrated_engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    with Session(migrated_engine) as session:
        globalSetting(session)
    assert [s.split()[0] for s in statements] == ["SELECT"], statements


def test_server_entry_hook_runs_the_settings_example(migrated_engine, tutorial):
    from peek_plugin_tutorial._private.storage import DeclarativeBase
    from peek_plugin_tutorial._private.storage.Setting import PROPERTY1, globalSetting

    hooks = [
        tutorial.peekServerEntryHook(),
        tutorial.peekClientEntryHook(),
        tutorial.peekAgentEntryHook(),
        tutorial.peekWorkerEntryHook(),
    ]
    assert [hook.__name__ for hook in hooks] == [
        "ServerEntryHook",
        "ClientEntryHook",
        "AgentEntryHook",
        "WorkerEntryHook",
    ]
    server = hooks[0](dbSessionCreator=sessionmaker(migrated_engine))
    assert server.dbMetadata is DeclarativeBase.metadata
    for hook in (server, *(cls() for cls in hooks[1:])):
        hook.load()
        hook.start()
        hook.stop()
        hook.unload()
    with Session(migrated_engine) as session:
        assert globalSetting(session, key=PROPERTY1) == "new value 1"


def test_spatial_feature_round_trip_and_query(migrated_engine, tutorial):
    from geoalchemy2.shape import to_shape
    from peek_plugin_tutorial._private.storage.SpatialFeatureTuple import SpatialFeatureTuple

    with Session(migrated_engine) as session:
        session.add(SpatialFeatureTuple(name="plain", geom="POINT(1 2)"))
        session.add(SpatialFeatureTuple(name="ewkt", geom="SRID=4326;POINT(30 40)"))
        session.commit()
    with Session(migrated_engine) as session:
        features = session.scalars(
            sa.select(SpatialFeatureTuple).order_by(SpatialFeatureTuple.id)
        ).all()
        assert [(f.name, to_shape(f.geom).wkt, f.geom.srid) for f in features] == [
            ("plain", "POINT (1 2)", 4326),
            ("ewkt", "POINT (30 40)", 4326),
        ]
        near = sa.func.ST_DWithin(
            SpatialFeatureTuple.geom, sa.func.ST_GeomFromText("POINT(1.5 2)", 4326), 1
        )
        assert session.scalars(sa.select(SpatialFeatureTuple.name).where(near)).all() == ["plain"]


# -- SQL Server's geometry, compiled without a server ---------------------------------


def test_mssql_geometry_moves_wkt_both_ways(tutorial):
    from peek_plugin_tutorial._private.storage.geometry import wktForSrid
    from peek_plugin_tutorial._private.storage.SpatialFeatureTuple import SpatialFeatureTuple
    from sqlalchemy.dialects import mssql

    dialect = mssql.dialect()
    insert = str(sa.insert(SpatialFeatureTuple).values(geom="POINT(1 2)").compile(dialect=dialect))
    select = str(sa.select(SpatialFeatureTuple).compile(dialect=dialect))
    assert "geometry::STGeomFromText(:geom, 4326)" in insert
    assert "[SpatialFeature].geom.STAsText() AS geom" in select
    for statement in (insert, select):
        parsed(statement.replace(":geom", "'POINT(1 2)'"), "tsql")
    assert wktForSrid("SRID=4326;POINT(1 2)", 4326) == "POINT(1 2)"
    assert wktForSrid("POINT(1 2)", 4326) == "POINT(1 2)"
    with pytest.raises(ValueError):
        wktForSrid("SRID=3857;POINT(1 2)", 4326)


# -- offline SQL ----------------------------------------------------------------------


def render_sql(url: str, revision_range: str, downgrade: bool = False) -> str:
    buffer = io.StringIO()
    config = alembic_config(url, output_buffer=buffer)
    (command.downgrade if downgrade else command.upgrade)(config, revision_range, sql=True)
    return buffer.getvalue()


def statements(sql: str, dialect: str) -> list[str]:
    """Batches (SQL Server, split on ``GO``) or statements, without comments."""
    separator = r"^\s*GO\s*$" if dialect == "mssql" else r";\s*$"
    found = []
    for chunk in re.split(separator, sql, flags=re.MULTILINE):
        body = "\n".join(
            line for line in chunk.splitlines() if not line.strip().startswith("--")
        ).strip()
        if body:
            found.append(body)
    return found


def parse_all(sql: str, dialect: str) -> None:
    for statement in statements(sql, dialect):
        parsed(statement, {"mssql": "tsql", "postgresql": "postgres"}[dialect])


def test_offline_upgrade_sql_for_mssql(tutorial):
    sql = render_sql(MSSQL_URL, "head")
    batches = statements(sql, "mssql")
    assert batches[0] == f"CREATE SCHEMA [{SCHEMA}];"  # alone, before BEGIN TRANSACTION
    assert f"CREATE TABLE {SCHEMA}.alembic_version" in sql
    assert re.search(r"^\s+geom geometry NULL", sql, re.MULTILINE)
    assert "CREATE SPATIAL INDEX [idx_SpatialFeature_geom]" in sql
    parse_all(sql, "mssql")


def test_offline_upgrade_sql_for_postgresql(tutorial):
    sql = render_sql(POSTGRES_URL, "head")
    assert statements(sql, "postgresql")[0] == f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'
    assert f"CREATE TABLE {SCHEMA}.alembic_version" in sql
    assert "geom geometry(POINT,4326)" in sql
    assert (
        'CREATE INDEX "idx_SpatialFeature_geom" ON pl_tutorial."SpatialFeature" USING gist' in sql
    )
    parse_all(sql, "postgresql")


@pytest.mark.parametrize(("url", "dialect"), [(MSSQL_URL, "mssql"), (POSTGRES_URL, "postgresql")])
def test_offline_downgrade_sql_drops_in_order(url, dialect, tutorial):
    sql = render_sql(url, "head:base", downgrade=True)
    parse_all(sql, dialect)
    assert "CREATE SCHEMA" not in sql

    def position(pattern: str) -> int:
        match = re.search(pattern, sql, re.MULTILINE)
        assert match, pattern
        return match.start()

    table = r'^DROP TABLE {}\.[\["]?{}[\]"]?;'
    assert position(r"^DROP INDEX \S*idx_SpatialFeature_geom") < position(
        table.format(SCHEMA, "SpatialFeature")
    )
    assert position(table.format(SCHEMA, "SettingProperty")) < position(
        table.format(SCHEMA, "Setting")
    )


def test_env_takes_the_schema_from_the_metadata(tmp_path):
    """A copy renamed to another schema (models and revisions only, as Peek's
    rename script leaves env.py alone) migrates that schema offline."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE_DIR, root / PACKAGE, ignore=COPY_IGNORE)
    private = root / PACKAGE / "_private"
    for path in [
        private / "storage" / "DeclarativeBase.py",
        *(private / "alembic" / "versions").glob("*.py"),
    ]:
        path.write_text(path.read_text().replace(SCHEMA, "pl_renamed"))
    ini = private / "alembic.ini"
    ini.write_text(
        re.sub(r"(?m)^sqlalchemy\.url = .*$", f"sqlalchemy.url = {POSTGRES_URL}", ini.read_text())
    )

    sql = run_alembic(private, "upgrade", "head", "--sql").stdout
    assert 'CREATE SCHEMA IF NOT EXISTS "pl_renamed"' in sql
    assert "CREATE TABLE pl_renamed.alembic_version" in sql
    assert SCHEMA not in sql


def test_a_project_builds_with_the_fixed_date_where_git_is_missing(tmp_path, monkeypatch):
    from matrix.install import sources

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH
    assert sources.source_date_epoch(tmp_path) == sources.DEFAULT_SOURCE_DATE_EPOCH
