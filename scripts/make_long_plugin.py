"""Write a Peek-style plugin with a long migration history, for benchmarks.

Revision ``i`` creates table ``T<i>`` (an integer key, a string and a
timestamp) with an index, and the model holds the same tables, so every
check passes: the time a run takes is the harness's cost per revision, not
a failure's. Its env.py is Peek's ``AlembicEnvBase`` in shape (online only,
``schema_translate_map={None: schema}``), as the published plugins have;
``--offline-branch`` gives it an offline branch as well, which renders the
revisions and leaves creating the schema to the platform, as Peek's
``ensureSchemaExists`` does before it migrates.

    python scripts/make_long_plugin.py --revisions 100 OUT_DIR
    python -m matrix run --plugin OUT_DIR/peek_plugin_long --targets pg15-postgis33
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

PACKAGE = "peek_plugin_long"
SCHEMA = "pl_long"

ENV_PY = '''
"""Peek's AlembicEnvBase, inlined: ensureSchemaExists, then schema_translate_map."""
from alembic import context
from sqlalchemy import engine_from_config, pool, text

from peek_plugin_long._private.storage import DeclarativeBase

DeclarativeBase.loadStorageTuples()
metadata = DeclarativeBase.metadata
config = context.config
{offline}
engine = engine_from_config(
    config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with engine.connect() as connection:
    connection.execute(text('CREATE SCHEMA IF NOT EXISTS "%s"' % metadata.schema))
    connection.commit()
    context.configure(
        connection=connection.execution_options(schema_translate_map={None: metadata.schema}),
        target_metadata=metadata,
        include_schemas=False,
        version_table_schema=metadata.schema,
    )
    with context.begin_transaction():
        context.run_migrations()
'''

OFFLINE_BRANCH = """
if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        version_table_schema=metadata.schema,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
"""

DECLARATIVE_BASE = f'''
from sqlalchemy.orm import DeclarativeBase as _Base
from sqlalchemy.schema import MetaData

metadata = MetaData(schema="{SCHEMA}")


class DeclarativeBase(_Base):
    metadata = metadata


def loadStorageTuples():
    from {PACKAGE}._private.storage import Tables  # noqa: F401
'''

REVISION = '''"""create T{i}"""
revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None

from alembic import op
import sqlalchemy as sa


def upgrade():
    op.create_table(
        "T{i}",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=50), nullable=True),
        sa.Column("stamp", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="{schema}",
    )
    op.create_index("idx_T{i}_name", "T{i}", ["name"], schema="{schema}")


def downgrade():
    op.drop_index("idx_T{i}_name", table_name="T{i}", schema="{schema}")
    op.drop_table("T{i}", schema="{schema}")
'''


def revision_id(i: int) -> str:
    return f"r{i:04d}"


def write(out: Path, revisions: int, offline_branch: bool = False) -> Path:
    """Write the package folder under ``out`` and return it."""
    package = out / PACKAGE
    storage = package / "_private" / "storage"
    versions = package / "_private" / "alembic" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    storage.mkdir(parents=True, exist_ok=True)
    for folder in (package, package / "_private", storage):
        (folder / "__init__.py").write_text("")
    manifest = {
        "plugin": {"title": "Long history", "packageName": PACKAGE, "version": "1.0.0"},
        "requiresServices": ["logic", "storage"],
        "storage": {"alembicDir": "_private/alembic"},
    }
    (package / "plugin_package.json").write_text(json.dumps(manifest, indent=2))
    head, online = ENV_PY.split("{offline}\n")
    if offline_branch:  # the online part becomes the else branch
        online = OFFLINE_BRANCH + textwrap.indent(online, "    ")
    env_py = head + online
    (package / "_private" / "alembic" / "env.py").write_text(env_py.lstrip())
    (storage / "DeclarativeBase.py").write_text(DECLARATIVE_BASE.lstrip())
    tables = [
        "from sqlalchemy import Column, DateTime, Index, Integer, String",
        "",
        f"from {PACKAGE}._private.storage.DeclarativeBase import DeclarativeBase",
    ]
    for i in range(revisions):
        tables += textwrap.dedent(
            f"""

            class T{i}(DeclarativeBase):
                __tablename__ = "T{i}"
                id = Column(Integer, primary_key=True, autoincrement=True)
                name = Column(String(50))
                stamp = Column(DateTime)
                __table_args__ = (Index("idx_T{i}_name", "name"),)
            """
        ).splitlines()
        down = revision_id(i - 1) if i else None
        (versions / f"{revision_id(i)}_create_t{i}.py").write_text(
            REVISION.format(i=i, rev=revision_id(i), down=down, schema=SCHEMA)
        )
    (storage / "Tables.py").write_text("\n".join(tables) + "\n")
    return package


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the package folder into")
    parser.add_argument("--revisions", type=int, default=100)
    parser.add_argument(
        "--offline-branch",
        action="store_true",
        help="give env.py an offline branch that leaves the schema to the platform",
    )
    args = parser.parse_args()
    print(write(args.out, args.revisions, args.offline_branch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
