"""Offline SQL: the scripts a reviewed deployment applies, rendered and applied."""

from __future__ import annotations

import re

import sqlalchemy as sa

from matrix.check.checks.base import CannotJudge, CheckOutput, check, describe_error
from matrix.check.migrator import BASE, OfflineConnect
from matrix.check.snapshot import describe
from matrix.engines.sqlscript import ScriptSyntaxError, Statement


@check
def offline_sql(cell, out: CheckOutput) -> None:
    """The offline scripts render without a database, and apply to give the same schema.

    Many sites apply migrations as reviewed scripts (``alembic upgrade head
    --sql``). Rendering refuses every connection: an env.py that connects in
    ``--sql`` mode (Peek's ``AlembicEnvBase`` has no offline branch) cannot
    give such a script, and the check says so (``not_run``); so does a
    revision that needs a live database to render (a data migration).

    A script that only parses proves nothing: on a live target the upgrade
    script is applied to an empty database of the same server, prepared as
    Peek prepares one (PostGIS, then the plugin schema, as Peek's
    ``ensureSchemaExists`` creates it before every ``alembic upgrade``; a
    script that does not create its schema itself relies on that, which is
    noted), statement by
    statement as ``psql -f`` (or batch by batch between ``GO`` lines, as
    ``sqlcmd -I``) sends it, split by a tokenizer that knows dollar quoting,
    strings and comments; the resulting schema must equal the one the online
    upgrade built. The downgrade script must then bring it back. The scripts
    are saved under ``reports/sql/<target>/``. Where no server was reached,
    the scripts are parsed with sqlglot only, which does not prove them.
    """
    lowest = _lowest_reachable(cell)
    upgrade = _render(cell, "base:heads", downgrade=False)
    downgrade = _render(cell, f"heads:{lowest}", downgrade=True)
    cell.sql_dir.mkdir(parents=True, exist_ok=True)
    (cell.sql_dir / "upgrade.sql").write_text(upgrade, encoding="utf-8")
    (cell.sql_dir / "downgrade.sql").write_text(downgrade, encoding="utf-8")
    scripts = {}
    for name, sql in (("upgrade", upgrade), ("downgrade", downgrade)):
        try:
            scripts[name] = cell.engine.split_script(sql)
        except ScriptSyntaxError as error:
            out.find("unsplittable", f"the {name} script cannot be split: {error}")
    if out.findings:
        return
    if not cell.live:
        _parse(cell, scripts, out)
        if not out.findings:
            raise CannotJudge(
                f"the scripts render and parse ({len(scripts['upgrade'])} upgrade statements); "
                "applying them needs a live server"
            )
        return
    _apply(cell, scripts, lowest, out)


def _lowest_reachable(cell) -> str:
    """Base, or the highest revision whose downgrade declares itself irreversible."""
    for revision in reversed(cell.revisions):
        if cell.downgrade_kind(revision) == "irreversible":
            return revision
    return BASE


def _render(cell, span: str, downgrade: bool) -> str:
    try:
        return cell.migrator.render(cell.engine.offline_url, span, downgrade=downgrade)
    except OfflineConnect:
        raise CannotJudge(
            "env.py connects to the database even in --sql mode (it has no offline branch, "
            "as Peek's AlembicEnvBase), so no script can be rendered without a server"
        ) from None
    except Exception as error:  # noqa: BLE001 - env.py and migrations may raise anything
        revision = _last_revision(cell, error)
        raise CannotJudge(
            f"revision {revision} cannot be rendered without a database "
            f"({describe_error(error)}): it needs a live connection, as data migrations do"
        ) from None


def _last_revision(cell, error: BaseException) -> str:
    """The revision being rendered when ``error`` was raised, from its traceback."""
    frames = []
    trace = error.__traceback__
    while trace is not None:
        frames.append(trace.tb_frame.f_code.co_filename)
        trace = trace.tb_next
    for filename in reversed(frames):
        for script in cell.migrator.revisions:
            if script.path and filename == script.path:
                return script.revision
    return "?"


def _parse(cell, scripts: dict[str, list[Statement]], out: CheckOutput) -> None:
    import sqlglot

    for name, statements in scripts.items():
        for statement in statements:
            try:
                sqlglot.parse(statement.text, read=cell.engine.sqlglot_dialect)
            except sqlglot.errors.SqlglotError as error:
                out.find(
                    "unparsable",
                    f"the {name} script has a statement {cell.engine.label} cannot parse "
                    f"(line {statement.line}): {str(error).splitlines()[0]}",
                    revision=statement.revision,
                    detail=statement.text,
                )


def _apply(cell, scripts: dict[str, list[Statement]], lowest: str, out: CheckOutput) -> None:
    conn = cell.open(cell.siblings["script"])
    try:
        if not creates_schema(scripts["upgrade"], cell.schema):
            # Peek's DbConnection runs ensureSchemaExists before every upgrade.
            conn.execute(sa.text(cell.engine.create_schema_sql(cell.schema)))
            out.find(
                "schema_from_platform",
                f"the upgrade script does not create the schema {cell.schema}: it applies where "
                "Peek has created it (ensureSchemaExists), so it was applied to a database "
                "prepared that way",
                blocking=False,
            )
        if not _run_script(conn, cell, "upgrade", scripts["upgrade"], out):
            return
        applied = cell.state(conn)
        if cell.head_state is None:
            raise CannotJudge(
                "the upgrade script applies, but the online upgrade did not reach head (see "
                "upgrade_stepwise): there is no schema to compare the script's with",
                because="upgrade_stepwise",
            )
        if applied != cell.head_state:
            out.find(
                "script_differs",
                "the upgrade script builds another schema than the online upgrade "
                "(- online, + script)",
                revision=cell.head,
                detail=describe(cell.head_state.facts, applied.facts),
            )
            return
        if not _run_script(conn, cell, "downgrade", scripts["downgrade"], out):
            return
        back = cell.state(conn)
        expected = _expected_at(cell, lowest)
        if expected is not None and back != expected:
            out.find(
                "script_differs",
                f"the downgrade script does not bring the schema back to {lowest} "
                "(- expected, + after the script)",
                revision=lowest,
                detail=describe(expected.facts, back.facts),
            )
            return
    finally:
        engine = conn.engine
        conn.close()
        engine.dispose()
    out.covered = (
        f"{len(scripts['upgrade'])} upgrade and {len(scripts['downgrade'])} downgrade "
        f"statements applied, same schema as online"
    )


def creates_schema(statements: list[Statement], schema: str) -> bool:
    """Whether a statement of the script creates ``schema`` (bare, quoted or bracketed,
    also inside SQL Server's ``EXEC('CREATE SCHEMA ...')``)."""
    pattern = re.compile(
        rf"CREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?[\[\"`]?{re.escape(schema)}[\]\"`]?(?![\w$])",
        re.IGNORECASE,
    )
    return any(pattern.search(statement.text) for statement in statements)


def _expected_at(cell, revision: str):
    if cell.head_state is None:
        return None
    if revision == BASE:
        return cell.base_state
    state = cell.head_state
    for above in reversed(cell.revisions):
        if above == revision:
            return state
        change = cell.up_changes.get(above)
        if change is None:
            return None
        state = state.revert(change)
    return None


def _run_script(
    conn: sa.Connection, cell, name: str, statements: list[Statement], out: CheckOutput
) -> bool:
    """Send each statement as a client would; the first failure is the finding."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        for setting in cell.engine.script_session_sql:
            cursor.execute(setting)
        for statement in statements:
            try:
                cursor.execute(statement.text)
            except Exception as error:  # noqa: BLE001 - the driver's own error class
                where = (
                    f"revision {statement.revision}"
                    if statement.revision
                    else "before the first revision: the version table or env.py's own SQL"
                )
                out.find(
                    "script_failed",
                    f"the {name} script fails at line {statement.line} ({where}): "
                    f"{describe_error(error)}",
                    revision=statement.revision,
                    detail=statement.text,
                )
                return False
    finally:
        cursor.close()
    return True
