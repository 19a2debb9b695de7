"""Small Peek-style plugins written on the fly, each with one chosen defect.

Every check of the harness must be shown to fail on exactly the defect it
claims to catch. These plugins follow the Peek layout (plugin_package.json
with a storage section, ``_private/storage/DeclarativeBase.py``, an Alembic
folder) but are not the tutorial plugin: each gets its own package and schema
name, which also proves the harness works for plugins it has never seen.

Two env.py flavours: ``peek`` is Peek's own ``AlembicEnvBase`` inlined
(online only, ``schema_translate_map={None: schema}``,
``include_schemas=False``), as every published Peek plugin has; ``offline``
also renders ``--sql`` scripts, with ``CREATE SCHEMA`` first (unless
``offline_schema`` is off, a defect of its own).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool, text

from {package}._private.storage import DeclarativeBase

DeclarativeBase.loadStorageTuples()
config = context.config
metadata = DeclarativeBase.metadata
VERSION_TABLE_SCHEMA = {version_table_schema}


def include_name(name, type_, parent_names):
    return type_ != "schema" or name == metadata.schema


def configure(**kwargs):
    context.configure(
        target_metadata=metadata,
        version_table_schema=VERSION_TABLE_SCHEMA,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        **kwargs,
    )


if context.is_offline_mode():
    configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        if {offline_schema}:
            context.execute('CREATE SCHEMA IF NOT EXISTS "' + metadata.schema + '"')
        context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text('CREATE SCHEMA IF NOT EXISTS "' + metadata.schema + '"'))
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
"""

PEEK_ENV_PY = """
\"\"\"Peek's AlembicEnvBase (peek-plugin-base 5.1.6), inlined: online only.\"\"\"
from alembic import context
from sqlalchemy import engine_from_config, pool, text

from {package}._private.storage import DeclarativeBase

DeclarativeBase.loadStorageTuples()
config = context.config
metadata = DeclarativeBase.metadata
schema = metadata.schema


def include_object(object, name, type_, reflected, compare_to):
    return not (hasattr(object, "schema") and object.schema != schema)


connectable = engine_from_config(
    config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with connectable.connect() as connection:
    with connectable.connect() as conn:
        conn.execute(text('CREATE SCHEMA IF NOT EXISTS "%s" ' % schema))
        conn.commit()
    context.configure(
        connection=connection.execution_options(schema_translate_map={{None: schema}}),
        target_metadata=metadata,
        include_object=include_object,
        include_schemas=False,
        version_table_schema={version_table_schema},
    )
    with context.begin_transaction():
        context.run_migrations()
"""

DECLARATIVE_BASE = """
import importlib
import os
import pkgutil

from sqlalchemy.orm import DeclarativeBase as _Base
from sqlalchemy.schema import MetaData

metadata = MetaData(schema="{schema}", naming_convention={naming_convention})


class DeclarativeBase(_Base):
    metadata = metadata


def loadStorageTuples():
    for module in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if not module.name.startswith("Declarative"):
            importlib.import_module(__package__ + "." + module.name)
"""

ITEM_MODEL = """
from sqlalchemy import Column, Index, Integer, String

from {package}._private.storage.DeclarativeBase import DeclarativeBase


class Item(DeclarativeBase):
    __tablename__ = "Item"
    id = Column(Integer, primary_key=True, autoincrement=True)
    name = Column(String(50))
    {extra_columns}
"""

REVISION = '''
"""{message}"""
revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None

from alembic import op
import sqlalchemy as sa


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''

CREATE_ITEM = """
op.create_table(
    "Item",
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("name", sa.String(length=50), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    schema="{schema}",
)
"""
DROP_ITEM = 'op.drop_table("Item", schema="{schema}")'
ADD_COUNT = 'op.add_column("Item", sa.Column("count", sa.Integer()), schema="{schema}")'
DROP_COUNT = 'op.drop_column("Item", "count", schema="{schema}")'
CREATE_INDEX = 'op.create_index("idx_Item_count", "Item", ["count"], schema="{schema}")'
DROP_INDEX = 'op.drop_index("idx_Item_count", table_name="Item", schema="{schema}")'


@dataclass
class Revision:
    revision: str
    down_revision: str | None
    upgrade: str
    downgrade: str
    message: str = "step"


@dataclass
class PluginSpec:
    """A plugin: its name, its model's extra columns, its revisions."""

    name: str
    revisions: list[Revision] = field(default_factory=list)
    extra_columns: str = (
        "count = Column(Integer)\n    __table_args__ = (Index('idx_Item_count', 'count'),)"
    )
    version_table_schema: str | None = "schema"
    storage_section: bool = True
    env: str = "offline"  # or "peek": Peek's AlembicEnvBase, online only
    offline_schema: bool = True
    models: dict[str, str] = field(default_factory=dict)  # extra model modules: name -> code
    naming_convention: dict[str, str] | None = None  # the MetaData's, when it has one

    @property
    def package(self) -> str:
        return f"peek_plugin_{self.name}"

    @property
    def schema(self) -> str:
        return f"pl_{self.name}"


def healthy_revisions() -> list[Revision]:
    """Two revisions that match the model exactly: the baseline every defect edits."""
    return [
        Revision("a1", None, CREATE_ITEM, DROP_ITEM, "create Item"),
        Revision(
            "b2", "a1", f"{ADD_COUNT}\n{CREATE_INDEX}", f"{DROP_INDEX}\n{DROP_COUNT}", "add count"
        ),
    ]


def write_plugin(root: Path, spec: PluginSpec) -> Path:
    """Write the plugin's package folder under ``root`` and return it."""
    package_dir = root / spec.package
    storage = package_dir / "_private" / "storage"
    versions = package_dir / "_private" / "alembic" / "versions"
    versions.mkdir(parents=True)
    storage.mkdir(parents=True, exist_ok=True)
    for folder in (
        package_dir,
        package_dir / "_private",
        package_dir / "_private" / "alembic",
        storage,
        versions,
    ):
        (folder / "__init__.py").write_text("")
    manifest = {"name": spec.package, "version": "0.0.1", "requiresServices": ["server"]}
    if spec.storage_section:
        manifest["requiresServices"].append("storage")
        manifest["storage"] = {"alembicDir": "_private/alembic"}
    (package_dir / "plugin_package.json").write_text(json.dumps(manifest, indent=2))
    schema_expr = "metadata.schema" if spec.version_table_schema == "schema" else "None"
    if spec.env == "peek":
        env_py = PEEK_ENV_PY.format(package=spec.package, version_table_schema=schema_expr)
    else:
        env_py = ENV_PY.format(
            package=spec.package,
            version_table_schema=schema_expr,
            offline_schema=spec.offline_schema,
        )
    (package_dir / "_private" / "alembic" / "env.py").write_text(env_py)
    (storage / "DeclarativeBase.py").write_text(
        DECLARATIVE_BASE.format(schema=spec.schema, naming_convention=repr(spec.naming_convention))
    )
    (storage / "Item.py").write_text(
        ITEM_MODEL.format(package=spec.package, extra_columns=spec.extra_columns)
    )
    for name, code in spec.models.items():
        (storage / f"{name}.py").write_text(textwrap.dedent(code).format(package=spec.package))
    for revision in spec.revisions:
        (versions / f"{revision.revision}.py").write_text(
            REVISION.format(
                message=revision.message,
                revision=revision.revision,
                down_revision=revision.down_revision,
                upgrade=_body(revision.upgrade, spec.schema),
                downgrade=_body(revision.downgrade, spec.schema),
            )
        )
    return package_dir


def _body(code: str, schema: str) -> str:
    code = textwrap.dedent(code).strip().format(schema=schema) or "pass"
    return textwrap.indent(code, "    ")
