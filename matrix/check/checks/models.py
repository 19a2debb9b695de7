"""The models against the migrations: drift, and Peek's fresh install."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from matrix.check.checks.base import CannotJudge, CheckOutput, check, describe_error
from matrix.check.snapshot import VERSION_TABLE, SchemaState, describe
from matrix.provide import databases


@check
def model_matches_ddl(cell, out: CheckOutput) -> None:
    """The plugin's models match the migrated plugin schema, types included.

    The harness compares the ``target_metadata`` the plugin's env.py passes
    to Alembic with the live plugin schema at head, itself: scoped to that
    schema (extension objects such as PostGIS's ``spatial_ref_sys`` are never
    part of it), with type comparison, whatever env.py's own autogenerate
    options are. A difference means the next developer's ``alembic revision
    --autogenerate`` sweeps it into an unrelated revision, and that Peek's
    fresh installs (``create_all``) differ from upgraded sites.

    Separately, the plugin's own env.py is asked what autogenerate would
    propose; if it crashes or sees another schema (Peek's ``AlembicEnvBase``
    combines ``schema_translate_map`` with ``include_schemas=False``), that is
    a warning on the check, not its verdict.
    """
    metadata = cell.migrator.env.metadata
    if metadata is None:
        raise CannotJudge("env.py passes no target_metadata to Alembic, so there is no model")
    conn = cell.connection()
    differences = scoped_differences(conn, metadata, cell.schema)
    if not cell.engine.keeps_index_name_case:
        differences, folded = _without_case_only_renames(differences)
        if folded:
            out.warn(
                f"{folded} index name(s) matched without their case: {cell.engine.label} "
                "keeps no case of index names, so only the name's letters could be compared"
            )
    for difference in differences:
        text, table, kind, name = render_difference(difference, conn.dialect)
        out.find(
            "drift",
            text,
            revision=blame(cell, table, kind, name) or cell.head,
        )
    _warn_about_env_autogenerate(cell, out, len(differences))
    if not differences:
        out.covered = f"{len(metadata.tables)} tables compared, types included"


def scoped_differences(conn: sa.Connection, metadata: sa.MetaData, schema: str) -> list[Any]:
    """Alembic's comparison of ``metadata`` with ``schema`` only, types included."""

    def include_name(name, type_, parent_names):
        if type_ == "schema":
            return name == schema
        if type_ == "table":
            return name != VERSION_TABLE
        return True

    context = MigrationContext.configure(
        connection=conn,
        opts={
            "target_metadata": metadata,
            "include_schemas": True,
            "include_name": include_name,
            "compare_type": True,
            "compare_server_default": False,
        },
    )
    return _flatten(compare_metadata(context, metadata))


def _without_case_only_renames(differences: list[Any]) -> tuple[list[Any], int]:
    """The differences less each index the model and the database name alike but
    for case (same table, same columns), and how many such pairs there were."""

    def key(index: sa.Index) -> tuple:
        return (index.table.name, index.name.lower(), tuple(c.name for c in index.columns))

    added = {key(d[1]): d for d in differences if d[0] == "add_index"}
    removed = {key(d[1]): d for d in differences if d[0] == "remove_index"}
    same = {id(d) for k in added.keys() & removed.keys() for d in (added[k], removed[k])}
    return [d for d in differences if id(d) not in same], len(same) // 2


def _flatten(differences: list[Any]) -> list[Any]:
    flat = []
    for difference in differences:
        if isinstance(difference, list):
            flat.extend(difference)
        else:
            flat.append(difference)
    return flat


def render_difference(
    difference: Any, dialect: sa.Dialect | None = None
) -> tuple[str, str | None, str | None, str | None]:
    """One sentence, and the (table, kind, name) of the object, for blame.

    Types are shown as the database's dialect spells them (``TIMESTAMP WITH
    TIME ZONE``, not the generic ``DATETIME``).
    """
    action = difference[0]
    if action in ("add_table", "remove_table"):
        table = difference[1]
        where = "model" if action == "add_table" else "database"
        other = "database" if where == "model" else "model"
        return (f"table {table.name} is in the {where}, not in the {other}", table.name, None, None)
    if action in ("add_column", "remove_column"):
        _, _, table, column = difference
        where = "model" if action == "add_column" else "database"
        other = "database" if where == "model" else "model"
        return (
            f"column {table}.{column.name} is in the {where}, not in the {other}",
            table,
            "columns",
            column.name,
        )
    if action in ("add_index", "remove_index"):
        index = difference[1]
        columns = ", ".join(str(getattr(c, "name", c)) for c in index.expressions)
        where = "model" if action == "add_index" else "database (from a migration)"
        other = "database" if action == "add_index" else "model"
        return (
            f"index {index.name} on {index.table.name}({columns}) is in the {where}, "
            f"not in the {other}",
            index.table.name,
            "indexes",
            index.name,
        )
    if action in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = difference[1]
        where = "model" if action.startswith("add") else "database"
        other = "database" if where == "model" else "model"
        kind = type(constraint).__name__
        return (
            f"{kind} {constraint.name or ''} on {constraint.table.name} is in the {where}, "
            f"not in the {other}",
            constraint.table.name,
            "constraints",
            constraint.name,
        )
    if action.startswith("modify_"):
        _, _, table, column, _existing, database, model = difference
        what = action.removeprefix("modify_")
        return (
            f"column {table}.{column}: {what} is {_show(database, dialect)} in the database, "
            f"{_show(model, dialect)} in the model",
            table,
            "columns",
            column,
        )
    return (f"{action}: {difference[1:]}", None, None, None)


def _show(value: Any, dialect: sa.Dialect | None = None) -> str:
    if isinstance(value, sa.types.TypeEngine):
        try:
            return value.compile(dialect=dialect)
        except Exception:  # noqa: BLE001 - only for a message
            return repr(value)
    return repr(value)


def blame(cell, table: str | None, kind: str | None, name: str | None) -> str | None:
    """The last revision that changed this object, from the walk up."""
    if table is None:
        return None
    # A fact continues its path with "." or ends it with " = ": `columns.id` must
    # not match `columns.id_ext`.
    path = f"tables.{table}" + (f".{kind}.{name}" if kind and name else "")
    prefixes = (f"{path}.", f"{path} ")
    for revision in reversed(cell.revisions):
        change = cell.up_changes.get(revision)
        if change and any(f.startswith(prefixes) for f in change.added | change.removed):
            return revision
    return None


def _warn_about_env_autogenerate(cell, out: CheckOutput, found: int) -> None:
    try:
        proposed = _flatten(cell.migrator.autogenerate_differences(cell.url))
    except Exception as error:  # noqa: BLE001 - env.py's own autogenerate may raise anything
        out.warn(
            "`alembic revision --autogenerate` with the plugin's own env.py fails: "
            f"{describe_error(error)}. Its options make Alembic reflect outside the plugin "
            "schema (Peek's AlembicEnvBase: schema_translate_map with include_schemas=False)."
        )
        return
    if not cell.engine.keeps_index_name_case:
        proposed = _without_case_only_renames(proposed)[0]  # as the comparison above
    if len(proposed) != found:
        first = render_difference(proposed[0], cell.engine_dialect)[0] if proposed else "nothing"
        out.warn(
            f"`alembic revision --autogenerate` with the plugin's own env.py proposes "
            f"{len(proposed)} changes where the schema-scoped comparison finds {found} "
            f"(first: {first}); its env.py options make autogenerate blind to the plugin schema."
        )


@check
def fresh_install_matches_upgrade(cell, out: CheckOutput) -> None:
    """Peek's fresh install gives the schema that the migrations give.

    Peek's ``DbConnection.migrate()`` (peek-plugin-base) looks for
    ``<schema>.alembic_version``; on a database without it, and with
    ``enableCreateAll``, it runs ``ensureSchemaExists``,
    ``metadata.create_all()`` and ``alembic stamp head`` instead of the
    migrations. Whether it does depends on how Peek calls it, which is read
    from the plugin's entry hooks and the installed peek-plugin-base (see
    :func:`fresh_install_mode`): Peek 5's loader migrates every plugin whose
    entry hook is a ``PluginServerStorageEntryHookABC`` with
    ``enableCreateAll=False``, so fresh sites run the migrations too.

    The check mirrors ``create_all`` + ``stamp head`` on an empty database of
    the same server and compares the plugin schema with the one the
    migrations built: tables, columns with type, nullability and default,
    indexes, constraints, sequences. Where Peek uses ``create_all`` a
    difference means new sites and upgraded sites run on different schemas
    (a failure); where it does not, the difference is reported as a note.
    """
    mode, why = fresh_install_mode(Path(cell.plugin.import_root) / cell.plugin.package)
    metadata = cell.migrator.env.metadata
    if metadata is None:
        raise CannotJudge("env.py passes no target_metadata, so Peek could not create_all")
    blocking = mode != "migrations"
    fresh = _create_all_and_stamp(cell, metadata, out, blocking)
    if fresh is None:
        return
    judge_fresh(cell, out, fresh, blocking, why)


def judge_fresh(cell, out: CheckOutput, fresh: SchemaState, blocking: bool, why: str) -> None:
    """The schema create_all + stamp gave against the migrated one; a failure only where Peek
    installs fresh sites that way (``blocking``), else a note; ``why`` says which it is."""
    if fresh != cell.head_state:
        diff = describe(cell.head_state.facts, fresh.facts)
        count = len(diff.splitlines())
        if blocking:
            message = (
                f"a fresh install (create_all + stamp head) differs from the migrated schema "
                f"in {count} facts (- only after the migrations, + only after create_all)"
            )
        else:
            message = (
                f"create_all + stamp head would differ from the migrated schema in {count} "
                "facts, but Peek does not use it for this plugin"
            )
        out.find(
            "fresh_install_differs", message, revision=cell.head, detail=diff, blocking=blocking
        )
    out.covered = f"{why}; " + (
        "create_all + stamp head gives the migrated schema"
        if fresh == cell.head_state
        else "fresh sites run the migrations"
    )


def _create_all_and_stamp(cell, metadata: sa.MetaData, out: CheckOutput, blocking: bool):
    """Peek's ``_doCreateAll`` on the empty sibling database; its state, or None.

    Where Peek migrates fresh sites (``blocking`` false), what create_all or
    stamp would do wrong is a note, as a schema difference is.
    """
    url = cell.siblings["fresh"]
    engine = databases.connect_engine(url)
    try:
        with engine.connect() as conn:
            if sa.inspect(conn).has_table(VERSION_TABLE, schema=cell.schema):
                raise CannotJudge("the empty database already has a version table")
            conn.execute(sa.text(cell.engine.create_schema_sql(cell.schema)))
            conn.commit()
        try:
            metadata.create_all(engine)
        except sa.exc.SQLAlchemyError as error:
            out.find(
                "create_all_failed",
                f"metadata.create_all() fails on an empty database: {describe_error(error)}",
                revision=cell.head,
                blocking=blocking,
            )
            return None
        cell.migrator.stamp(url, "heads")
        with engine.connect() as conn:
            state = cell.state(conn)
            table = f"{cell.engine.quote(cell.schema)}.{VERSION_TABLE}"
            stamped = list(conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalars())
    finally:
        engine.dispose()
    if stamped != [cell.head]:
        out.find(
            "stamp",
            f"after `alembic stamp head` the version table holds {stamped}, not [{cell.head!r}]",
            revision=cell.head,
            blocking=blocking,
        )
    return state


_CLASS = re.compile(r"class\s+\w+\s*\(([^)]*)\)")
STORAGE_HOOK = "PluginServerStorageEntryHookABC"
LOGIC_HOOK = "PluginLogicEntryHookABC"


def fresh_install_mode(package_dir: Path) -> tuple[str, str]:
    """How Peek installs this plugin on a fresh database, and why the harness thinks so.

    Peek 5's plugin loader (``peek_logic_service ... ServerPluginLoader``)
    migrates a plugin whose entry hook is a ``PluginServerStorageEntryHookABC``
    by calling its ``_migrateStorageSchema``; the installed peek-plugin-base
    says which ``enableCreateAll`` that passes to ``DbConnection``. Returns
    ``migrations`` (fresh sites run the migrations), ``create_all``, or
    ``assumed`` (no Peek entry hook: ``DbConnection``'s default,
    ``enableCreateAll=True``).
    """
    bases = set()
    for path in package_dir.rglob("*.py"):
        if "alembic" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for found in _CLASS.findall(text):
            bases.update(name.strip() for name in found.split(","))
    if STORAGE_HOOK in bases:
        enabled = _create_all_flag()
        where = f"its entry hook inherits {STORAGE_HOOK}, whose _migrateStorageSchema passes"
        if enabled is False:
            return "migrations", f"{where} enableCreateAll=False to DbConnection"
        return "create_all", f"{where} enableCreateAll={enabled} to DbConnection"
    if LOGIC_HOOK in bases:
        return "create_all", f"its entry hook inherits {LOGIC_HOOK} (DbConnection's default)"
    return (
        "assumed",
        "no Peek entry hook found: DbConnection's default enableCreateAll=True assumed",
    )


def _create_all_flag() -> bool | None:
    """``enableCreateAll`` in the installed peek-plugin-base's ``_migrateStorageSchema``."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(f"peek_plugin_base.server.{STORAGE_HOOK}")
    if spec is None or spec.origin is None:
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_migrateStorageSchema":
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DbConnection":
                    for keyword in call.keywords:
                        if keyword.arg == "enableCreateAll" and isinstance(
                            keyword.value, ast.Constant
                        ):
                            return bool(keyword.value.value)
                    return True  # DbConnection's default
    return None
