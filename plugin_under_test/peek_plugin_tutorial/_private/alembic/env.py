"""Alembic environment of the plugin's storage, after Peek's ``AlembicEnvBase``.

Peek migrates each plugin inside the plugin's own schema. This environment:

- loads every table class (``loadStorageTuples``) so autogenerate sees them;
- takes the schema from the declarative metadata, never from a constant, so a
  copy of the plugin under another name migrates its own schema;
- creates that schema when missing, since Peek gives a plugin an empty
  database;
- keeps Alembic's version table inside the schema, so plugins sharing one
  database keep separate histories;
- limits autogenerate to the schema, so other plugins' tables and PostGIS's
  own are never proposed for removal;
- compares column types, and renders the portable geometry type.

Unlike Peek's, it also runs offline (``alembic upgrade head --sql``) for both
PostgreSQL and SQL Server URLs, without any database.

The URL is the ``sqlalchemy.url`` main option. A caller that already holds a
connection (a test, or a platform migrating in-process) may pass it as
``config.attributes["connection"]``; its transaction is then the caller's to
commit.
"""

from logging.config import fileConfig

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool, text

from peek_plugin_tutorial._private.storage import DeclarativeBase
from peek_plugin_tutorial._private.storage.geometry import MssqlGeometry

DeclarativeBase.loadStorageTuples()

config = context.config
metadata = DeclarativeBase.metadata
schemaName = metadata.schema

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _createSchemaSql(dialect) -> str:
    """The statement that creates the plugin schema if it does not exist.

    Online, both forms are idempotent. Offline SQL Server scripts get a bare
    ``CREATE SCHEMA``, which SQL Server accepts only alone in its batch: it is
    emitted before ``BEGIN TRANSACTION`` and, like every statement of
    Alembic's mssql output, followed by a ``GO`` batch separator.
    """
    quotedSchema = dialect.identifier_preparer.quote_identifier(schemaName)
    if dialect.name == "postgresql":
        return f"CREATE SCHEMA IF NOT EXISTS {quotedSchema}"
    if dialect.name == "mssql":
        createSchema = f"CREATE SCHEMA {quotedSchema}"
        if context.is_offline_mode():
            return createSchema
        return (
            f"IF SCHEMA_ID({_mssqlString(schemaName)}) IS NULL EXEC({_mssqlString(createSchema)})"
        )
    raise NotImplementedError(f"Peek storage does not support {dialect.name}")


def _mssqlString(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _includeName(name, type_, parentNames) -> bool:
    """Reflect only the plugin's schema (and not the default schema)."""
    return type_ != "schema" or name == schemaName


def _includeObject(object_, name, type_, reflected, compareTo) -> bool:
    """Peek's filter: anything that names another schema is not ours."""
    return getattr(object_, "schema", schemaName) == schemaName


def _renderItem(type_, object_, autogenContext):
    """Render types so that the migration builds the model's exact type.

    A type with variants is left to Alembic, which renders the base type and
    each ``.with_variant(...)``, calling back here for every part. The SQL
    Server geometry is imported from the plugin (migrations are loaded by
    file path, so they cannot import relatively). GeoAlchemy2's helper
    renders its own types with their import.
    """
    if type_ != "type" or getattr(object_, "_variant_mapping", None):
        return False
    if isinstance(object_, MssqlGeometry):
        autogenContext.imports.add(
            f"from {MssqlGeometry.__module__} import {MssqlGeometry.__name__}"
        )
        return f"{MssqlGeometry.__name__}(srid={object_.srid!r})"
    return alembic_helpers.render_item(type_, object_, autogenContext)


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        version_table_schema=schemaName,
        include_schemas=True,
        include_name=_includeName,
        include_object=_includeObject,
        render_item=_renderItem,
        compare_type=True,
        **kwargs,
    )


def _acceptDriverSql(mockConnection) -> None:
    """Let DDL hooks that run raw SQL write it into the offline script.

    GeoAlchemy2's SQL Server table hooks (0.20 on) run ``exec_driver_sql``,
    which Alembic's offline mock connection lacks; routed through
    ``execute`` the statement is written out like any other.
    """

    def execDriverSql(statement, *args, **kwargs):
        return mockConnection.execute(text(statement))

    if not hasattr(mockConnection, "exec_driver_sql"):
        mockConnection.exec_driver_sql = execDriverSql


def runMigrationsOffline() -> None:
    """Write the migration SQL to stdout without a database.

    A script that starts from an empty database (no start revision) creates
    the schema first, before its transaction, as SQL Server requires.
    """
    _configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    migrationContext = context.get_context()
    _acceptDriverSql(migrationContext.connection)
    if context.get_starting_revision_argument() is None:
        context.execute(_createSchemaSql(migrationContext.dialect))
    with context.begin_transaction():
        context.run_migrations()


def _runMigrations(connection) -> None:
    """Create the schema and migrate, all in the connection's transaction."""
    connection.execute(text(_createSchemaSql(connection.dialect)))
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def runMigrationsOnline() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _runMigrations(connection)
        return

    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _runMigrations(connection)
        connection.commit()


if context.is_offline_mode():
    runMigrationsOffline()
else:
    runMigrationsOnline()
