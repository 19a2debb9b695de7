"""Each engine's SQL, compiled and read without a server, as its DBA would read it.

No SQL Server can run where this harness is built, so every statement the
harness itself sends to SQL Server (databases, schema, catalogue queries,
synthetic rows, their read-back, the benchmark's raw driver) is compiled here
for the ``mssql`` dialect and checked for the forms SQL Server accepts:
nothing calls a method on a schema-qualified column, internal tables are left
out of "objects outside the schema", batches split on ``GO`` only where
``sqlcmd`` would. The same statements for PostgreSQL run live elsewhere; what
only a live SQL Server can prove is listed in the README.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
import sqlglot
from geoalchemy2 import Geometry
from helpers import parsed
from sqlalchemy.dialects import mssql, postgresql

from matrix.check import column_values, lint, survival, synthetic
from matrix.engines import ConnectFailure, ServerInfo, engine_named, engine_of
from matrix.engines.sqlscript import (
    ScriptSyntaxError,
    script_of,
    split_postgresql,
    split_tsql,
    with_numbered_parameters,
)
from matrix.errors import HarnessError

MSSQL = engine_named("mssql")
POSTGRESQL = engine_named("postgresql")
BABELFISH = engine_named("mssql", "babelfish")
FOUR_PART_METHOD = re.compile(r"\w+\.\[?\w+\]?\.\[?\w+\]?\.ST\w+\(", re.IGNORECASE)


def plugin_table() -> sa.Table:
    metadata = sa.MetaData(schema="pl_tutorial")
    return sa.Table(
        "SpatialFeature",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50)),
        sa.Column("geom", Geometry("POINT", srid=4326)),
    )


def tsql(statement: sa.ClauseElement) -> str:
    return str(statement.compile(dialect=mssql.dialect(), compile_kwargs={"literal_binds": True}))


def parses_as_tsql(sql: str) -> None:
    parsed(sql, MSSQL.sqlglot_dialect)


# -- what SQL Server accepts ----------------------------------------------------------------


def test_geometry_is_read_back_through_an_alias_never_a_four_part_name():
    sql = tsql(survival.read_statement(MSSQL, plugin_table()))
    assert "[t].[geom].STAsText() AS geom" in sql
    assert "FROM pl_tutorial.[SpatialFeature] AS t" in sql
    assert not FOUR_PART_METHOD.search(sql), sql
    assert "AsBinary" not in sql  # GeoAlchemy2's own read form, which SQL Server rejects


def test_reading_geometry_from_a_schema_qualified_column_is_refused():
    with pytest.raises(ValueError, match="aliased table"):
        MSSQL.geometry_as_text(plugin_table().c.geom)


def test_geometry_is_written_with_the_static_constructor():
    values = {"name": "r1", "geom": column_values.Geometry("POINT(1.25 2.25)", 4326)}
    sql = tsql(synthetic.insert_statement(MSSQL, plugin_table(), values))
    assert "geometry::STGeomFromText(N'POINT(1.25 2.25)', 4326)" in sql
    with pytest.raises(ValueError):
        MSSQL.geometry_from_text("POINT(1 1)'); DROP TABLE x; --", 4326)


def test_objects_outside_the_schema_leave_internal_tables_out():
    sql = MSSQL.outside_schema_sql
    assert "o.type NOT IN ('IT', 'S')" in sql  # spatial index and Query Store tables
    assert "is_ms_shipped = 0" in sql
    assert "'sys', 'INFORMATION_SCHEMA'" in sql
    parses_as_tsql(sql.replace(":schema", "N'pl_tutorial'"))


@pytest.mark.parametrize(
    "sql",
    [
        *MSSQL.create_database_sql("matrix_1"),
        *MSSQL.drop_database_sql("matrix_1"),
        MSSQL.create_schema_sql("pl_tutorial"),
        MSSQL.table_identity_sql.replace(":schema", "N'pl_tutorial'"),
        MSSQL.active_statements_sql.replace(":database", "N'matrix_1'"),
        MSSQL.list_databases_sql,
        *MSSQL.session_settings_sql(60, 30),
        *MSSQL.script_session_sql,
        MSSQL.fingerprint_sql("pl_tutorial", ["Item", "SpatialFeature"]),
        MSSQL.memory_sql,
        MSSQL.key_sequence_sql("pl_tutorial", "Item", "id")[0].replace(":table", "N'x'"),
    ],
)
def test_every_server_statement_parses_as_tsql(sql):
    parses_as_tsql(sql)


@pytest.mark.parametrize(
    "sql", ["ALTER TABLEX [x] ADD y int", "IF DB_ID(N'x') IS NULL ALTER DATABASE [x] SETT y"]
)
def test_a_statement_sqlglot_cannot_parse_is_not_taken_for_parsed(sql):
    """sqlglot warns and keeps what it cannot parse as a generic Command, without raising:
    a broken statement went through the former check; this one refuses it."""
    assert sqlglot.parse(sql, read=MSSQL.sqlglot_dialect)  # no error raised
    with pytest.raises(AssertionError, match="sqlglot could not parse"):
        parses_as_tsql(sql)


def test_database_and_schema_statements_read_as_a_dba_expects():
    assert MSSQL.create_database_sql("matrix_1") == ["CREATE DATABASE [matrix_1]"]
    (drop,) = MSSQL.drop_database_sql("matrix_1")
    assert "SET SINGLE_USER WITH ROLLBACK IMMEDIATE" in drop and "DROP DATABASE [matrix_1]" in drop
    assert MSSQL.create_schema_sql("pl_x") == (
        "IF SCHEMA_ID(N'pl_x') IS NULL EXEC(N'CREATE SCHEMA [pl_x]')"
    )
    assert MSSQL.quote("we]ird") == "[we]]ird]"
    assert MSSQL.session_settings_sql(60, 30) == ["SET LOCK_TIMEOUT 30000"]
    assert MSSQL.database_settings_sql("x", 60, 30) == []  # SQL Server has no such defaults


def test_benchmark_driver_statements_are_tsql():
    from matrix.engines.drivers import MssqlDriver

    table = plugin_table()
    insert, analyze = MssqlDriver.statements(mssql.dialect(), table, ["id", "name"])
    assert insert == "INSERT INTO pl_tutorial.[SpatialFeature] (id, name) VALUES (%s, %s)"
    assert analyze == "UPDATE STATISTICS pl_tutorial.[SpatialFeature]"
    parses_as_tsql(insert.replace("%s", "1"))
    parses_as_tsql(analyze)


# -- connection failures, classified ------------------------------------------------------------

# Recorded: pymssql raises OperationalError(e.args[0]) where e.args[0] is (number, message) of the
# login's most severe message (pymssql _pymssql.pyx connect(), _mssql.pyx
# raise_MSSQLDatabaseException and err_handler, which appends DB-Lib's own lines). The numbers and
# texts are Microsoft's, from learn.microsoft.com "Database engine events and errors" (0 to 999,
# 4000 to 4999, 17000 to 17999, 18000 to 18999) and "MSSQLSERVER_18456"; 20009 and 20003 are
# DB-Lib's (FreeTDS sybdb.h: SYBECONN, SYBETIME).
_DBLIB_TAIL = (
    "DB-Lib error message 20018, severity 14:\nGeneral SQL Server error: Check messages from the "
    "SQL Server\nDB-Lib error message 20002, severity 9:\nAdaptive Server connection failed "
    "(127.0.0.1)\n"
)
RECORDED_LOGIN_ERRORS = {
    18401: "Login failed for user 'sa'. Reason: Server is in script upgrade mode. Only "
    "administrator can connect at this time.",
    18456: "Login failed for user 'sa'.",
    4060: 'Cannot open database "matrix_1" requested by the login. The login failed.',
    17187: "SQL Server is not ready to accept new client connections. Wait a few minutes before "
    "trying again. If you have access to the error log, look for the informational message that "
    "indicates that SQL Server is ready before trying again.",
    922: "Database 'master' is being recovered. Waiting until recovery is finished.",
    20009: "DB-Lib error message 20009, severity 9:\nUnable to connect: Adaptive Server is "
    "unavailable or does not exist (127.0.0.1)\nNet-Lib error during Connection refused (111)\n",
    20003: "DB-Lib error message 20003, severity 6:\nAdaptive Server connection timed out "
    "(127.0.0.1)\n",
}


def pymssql_login_error(number: int) -> sa.exc.OperationalError:
    """A recorded login failure as SQLAlchemy hands it over: wrapped pymssql OperationalError."""
    import pymssql

    text = RECORDED_LOGIN_ERRORS[number]
    message = (text if number > 20000 else text + _DBLIB_TAIL).encode()
    return sa.exc.OperationalError("SELECT 1", {}, pymssql.OperationalError((number, message)))


@pytest.mark.parametrize(
    ("number", "failure"),
    [
        (18401, "starting"),  # first boot: "Login failed" in the text, yet it only needs time
        (18456, "authentication"),
        (4060, "no_database"),  # "The login failed." ends its text too
        (17187, "starting"),
        (922, "starting"),
        (20009, "refused"),
        (20003, "timeout"),
    ],
)
def test_sql_server_login_failures_are_classified_by_number_not_text(number, failure):
    assert MSSQL.classify(pymssql_login_error(number)) == ConnectFailure(failure)


def test_a_refused_connection_after_a_login_is_refused_not_the_earlier_logins_message():
    """pymssql keeps the process's last server message: after a login that succeeded (its
    informational 5703), a refused port raised as 5703 with that text before DB-Lib's own
    20009. Recorded live: pymssql 2.4.6, a login to Babelfish, then 127.0.0.1:1 (twice: the
    second carries 5703 without the text). 5703 is informational, severity 10 ("Database
    engine events and errors (5000 to 5999)", https://learn.microsoft.com/en-us/sql/
    relational-databases/errors-events/database-engine-events-and-errors-5000-to-5999), sent
    at every SQL Server login too. The runner waits on several servers in one process, so a
    refusal read as 5703 was "other" and its reason a language setting."""
    import pymssql

    dblib = (
        b"DB-Lib error message 20009, severity 9:\nUnable to connect: TDS server is unavailable "
        b"or does not exist (127.0.0.1)\nNet-Lib error during Connection refused (111)\n"
    )
    for raw in (b"Changed language setting to 'us_english'" + dblib * 2, dblib * 2):
        error = sa.exc.OperationalError(
            "connect", {}, pymssql.exceptions.OperationalError((5703, raw))
        )
        assert MSSQL.classify(error) == ConnectFailure.REFUSED
        text = MSSQL.driver_message(error.orig)
        assert text.startswith("Unable to connect: TDS server is unavailable") and text.endswith(
            "Connection refused (111) (error 20009)"
        ), text
    # Where DB-Lib only says "check messages from the SQL Server", the server's number stands.
    said = (
        b"Login failed for user 'sa'.DB-Lib error message 20018, severity 14:\n"
        b"General SQL Server error"
    )
    login = pymssql.exceptions.OperationalError((18456, said))
    assert MSSQL.classify(login) == ConnectFailure.AUTHENTICATION
    assert MSSQL.driver_message(login) == "Login failed for user 'sa'. (error 18456)"


def test_a_sql_server_error_reads_as_its_message_and_number_not_as_bytes():
    """pymssql's args[0] is (number, bytes): str() of it showed "(18456, b'Login failed...")"
    in every reason and finding. The engine turns it into the server's text and number."""
    from matrix.check.checks.base import describe_error
    from matrix.provide.databases import first_line

    login = pymssql_login_error(18456)
    assert str(login.orig).startswith("(18456, b")  # what reached the reports before
    assert first_line(login) == "Login failed for user 'sa'. (error 18456)"
    assert describe_error(login) == "OperationalError: Login failed for user 'sa'. (error 18456)"
    assert first_line(pymssql_login_error(4060)) == (
        'Cannot open database "matrix_1" requested by the login. The login failed. (error 4060)'
    )


def test_a_failed_statement_reads_as_its_message_and_number_not_as_bytes():
    """Recorded from pymssql 2.4.6 (live on Babelfish in test_babelfish.py): a failed
    statement is ``raise OperationalError, e.args[0]`` (_pymssql.pyx, Cursor.execute),
    which spreads the pair into ``args == (number, bytes)``, where a failed login has
    it as ``args[0]``; SQL Server's statement errors (error 300 among them) take that path."""
    import pymssql

    from matrix.check.checks.base import describe_error
    from matrix.engines.mssql_errors import error_number

    denied = pymssql.OperationalError(
        300,
        b"VIEW SERVER STATE permission was denied on object 'server', database 'master'."
        + _DBLIB_TAIL.encode(),
    )
    assert denied.args[0] == 300  # two arguments, not one pair
    wrapped = sa.exc.OperationalError("SELECT ...", {}, denied)
    assert error_number(wrapped) == 300
    assert describe_error(wrapped) == (
        "OperationalError: VIEW SERVER STATE permission was denied on object 'server', "
        "database 'master'. (error 300)"
    )
    assert MSSQL.missing_permission(wrapped).endswith("(2022 and later)")


def test_a_real_pymssql_error_without_a_server_reads_as_db_libs_words():
    """No server on 127.0.0.1:1: the real driver's DB-Lib error, decoded."""
    from matrix.provide.databases import first_line

    engine = sa.create_engine(MSSQL.offline_url, connect_args=MSSQL.connect_args(2))
    try:
        with pytest.raises(sa.exc.OperationalError) as caught:
            engine.connect()
    finally:
        engine.dispose()
    text = first_line(caught.value)
    assert "b'" not in text and "DB-Lib error message" not in text, text
    assert text.startswith("Unable to connect") and text.endswith("(error 20009)"), text


def test_a_pymssql_error_without_a_number_is_other_not_guessed():
    import pymssql

    assert MSSQL.classify(pymssql.OperationalError("Cannot start transaction: x")) == (
        ConnectFailure.OTHER
    )


@pytest.mark.parametrize(
    ("sqlstate", "message", "failure"),
    [
        # lc_messages = 'de_DE': the server's own words are not English (PostgreSQL's de.po)
        (
            "28P01",
            "Passwort-Authentifizierung für Benutzer »peek« fehlgeschlagen",
            "authentication",
        ),
        ("3D000", "Datenbank »x« existiert nicht", "no_database"),
        ("57P03", "das Datenbanksystem fährt gerade hoch", "starting"),
        ("28000", "Rolle »nobody« existiert nicht", "authentication"),
    ],
)
def test_postgresql_errors_with_a_sqlstate_are_classified_by_it(sqlstate, message, failure):
    """SQLSTATEs from PostgreSQL's "Appendix A. PostgreSQL Error Codes"."""
    import psycopg

    error = psycopg.errors.lookup(sqlstate)(message)
    assert POSTGRESQL.classify(error) == ConnectFailure(failure)


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        ('password authentication failed for user "peek"', "authentication"),
        ("connection to server at 127.0.0.1 failed: Connection refused", "refused"),
        ('database "x" does not exist', "no_database"),
        ("timeout expired", "timeout"),
        ("the database system is starting up", "starting"),
        ("the database system is not yet accepting connections", "starting"),
    ],
)
def test_postgresql_connection_phase_errors_have_no_sqlstate_and_read_as_libpq_says(
    message, failure
):
    """libpq gives no SQLSTATE before a connection exists (see the live test below)."""
    assert POSTGRESQL.classify(Exception(message)) == ConnectFailure(failure)


def test_psycopg_reports_no_sqlstate_for_a_failed_login_so_the_text_decides(postgres_url):
    """On a real server: the fallback exists because the driver really gives no code."""
    wrong = postgres_url.set(password="not-the-password", drivername="postgresql+psycopg")
    missing = postgres_url.set(database="no_such_database", drivername="postgresql+psycopg")
    for url, failure in ((wrong, "authentication"), (missing, "no_database")):
        engine = sa.create_engine(url)
        try:
            with pytest.raises(sa.exc.OperationalError) as caught:
                engine.connect()
        finally:
            engine.dispose()
        assert caught.value.orig.sqlstate is None
        assert POSTGRESQL.classify(caught.value) == ConnectFailure(failure)


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        ("postgresql://u:p@127.0.0.1:notaport/db", "is not a database URL"),
        ("oracle://u:p@127.0.0.1/db", "names the engine 'oracle'"),
        ("not a url", "is not a database URL"),
    ],
)
def test_a_bad_url_names_its_source(raw, phrase):
    with pytest.raises(HarnessError, match=phrase) as caught:
        engine_of(raw, source="MATRIX_POSTGRESQL_URL")
    assert "MATRIX_POSTGRESQL_URL" in str(caught.value)


def test_offline_urls_cannot_reach_another_host():
    assert "host=/nonexistent" in POSTGRESQL.offline_url
    assert "@127.0.0.1:1/" in MSSQL.offline_url


# -- scripts, split as psql and sqlcmd send them ------------------------------------------------


def test_postgresql_splitter_keeps_dollar_quoted_bodies_whole():
    sql = (
        "-- Running upgrade  -> a1\n\nCREATE TABLE t (x int);\n\n"
        "-- Running upgrade a1 -> b2\n\n"
        "DO $$ BEGIN PERFORM 1; IF true THEN PERFORM 2; END IF; END $$;\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        "INSERT INTO t VALUES (';'), (E'it\\'s; fine'), ($1);\n"
        "/* a ; comment /* nested ; */ */ SELECT 'a '' ; b';\n"
    )
    statements = split_postgresql(sql)
    assert [s.revision for s in statements] == ["a1", "b2", "b2", "b2", "b2"]
    assert statements[1].text.startswith("DO $$") and statements[1].text.endswith("END $$")
    assert statements[2].text.endswith("LANGUAGE sql")
    assert statements[3].line == 9
    assert statements[4].text.endswith("SELECT 'a '' ; b'")


def test_tsql_splitter_splits_on_go_lines_only():
    sql = (
        "CREATE SCHEMA [pl_x];\n\nGO\n\n-- Running upgrade  -> a1\n\n"
        "CREATE TABLE [pl_x].[Item] (id INTEGER NOT NULL);\nSELECT 'GO';\n/*\nGO\n*/\n\nGO\n"
        "INSERT INTO [pl_x].[GO] VALUES (1)\ngo 2\n"
    )
    batches = split_tsql(sql)
    assert [(b.revision, b.text.splitlines()[0]) for b in batches] == [
        ("a1", "CREATE SCHEMA [pl_x];"),  # before the first marker: the first revision's
        ("a1", "CREATE TABLE [pl_x].[Item] (id INTEGER NOT NULL);"),
        ("a1", "INSERT INTO [pl_x].[GO] VALUES (1)"),
    ]


# Alembic's own markers in --sql mode: MigrationStep.short_log in alembic/runtime/migration.py,
# "%s %s -> %s" % (name, from_revisions, to_revisions), written as "-- Running <short_log>".
DOWNGRADE_SCRIPT = (
    "BEGIN;\n\n-- Running downgrade 57f8be797dd0 -> 1d840cd061e3\n\n"
    'DROP INDEX pl_tutorial."idx_SpatialFeature_geom";\n\n'
    "UPDATE pl_tutorial.alembic_version SET version_num='1d840cd061e3' "
    "WHERE pl_tutorial.alembic_version.version_num = '57f8be797dd0';\n\n"
    "-- Running downgrade 8a16497a79b8 -> \n\n"
    'DROP TABLE pl_tutorial."StringIntTuple";\n\n'
    "DELETE FROM pl_tutorial.alembic_version WHERE "
    "pl_tutorial.alembic_version.version_num = '8a16497a79b8';\n\n"
    "DROP TABLE pl_tutorial.alembic_version;\n\nCOMMIT;\n"
)


def test_a_downgrade_statement_is_the_revision_it_undoes_down_to_base():
    """`downgrade 57f8 -> 1d84` undoes 57f8; the last marker, to base, has nothing after ->."""
    statements = split_postgresql(DOWNGRADE_SCRIPT)
    assert [(s.revision, s.text.split()[0]) for s in statements] == [
        ("57f8be797dd0", "BEGIN"),
        ("57f8be797dd0", "DROP"),
        ("57f8be797dd0", "UPDATE"),
        ("8a16497a79b8", "DROP"),
        ("8a16497a79b8", "DELETE"),
        ("8a16497a79b8", "DROP"),
        ("8a16497a79b8", "COMMIT"),
    ]
    batches = split_tsql(DOWNGRADE_SCRIPT.replace(";\n", ";\nGO\n"))
    assert [b.revision for b in batches][1:4] == ["57f8be797dd0", "57f8be797dd0", "8a16497a79b8"]


def test_the_version_table_belongs_to_the_first_revision_never_to_none():
    """What precedes every marker is written because the script starts at that revision."""
    sql = (
        "BEGIN;\n\nCREATE TABLE pl_x.alembic_version (version_num VARCHAR(32) NOT NULL);\n\n"
        "-- Running upgrade  -> a1\n\nCREATE TABLE pl_x.t (x int);\n\n"
        "-- Running upgrade a1 -> b2\n\nALTER TABLE pl_x.t ADD y int;\n"
    )
    assert [s.revision for s in split_postgresql(sql)] == ["a1", "a1", "a1", "b2"]
    assert split_postgresql("CREATE TABLE t (x int);")[0].revision is None  # no revision at all


@pytest.mark.parametrize(
    "sql",
    ["SELECT 'unterminated;", "DO $$ BEGIN PERFORM 1;", "/* open comment; SELECT 1;"],
)
def test_postgresql_splitter_refuses_an_unterminated_token(sql):
    with pytest.raises(ScriptSyntaxError):
        split_postgresql(sql)


def test_both_dialects_compile_the_harness_row_statements():
    table = plugin_table()
    values = {"name": "r1", "geom": column_values.Geometry("POINT(1 1)", 4326)}
    pg = str(
        synthetic.insert_statement(POSTGRESQL, table, values).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    assert "ST_GeomFromText('POINT(1 1)', 4326)" in pg


def test_sql_server_bulk_load_passes_wkt_and_srid_not_ewkt():
    """STGeomFromText takes no EWKT, and a 4326 column refuses SRID 0 (GeoAlchemy2's CHECK)."""
    table = plugin_table()
    point = column_values.Geometry("POINT(1 1)", 4326)
    sql, rows = MSSQL.bulk_statement(table, ["name", "geom"], [("r1", point), ("r2", None)])
    assert sql == (
        "INSERT INTO [pl_tutorial].[SpatialFeature] ([name], [geom]) "
        "VALUES (%s, geometry::STGeomFromText(%s, %s))"
    )
    assert rows == [("r1", "POINT(1 1)", 4326), ("r2", None, None)]
    parses_as_tsql(sql.replace("%s", "NULL"))
    assert point.ewkt == "SRID=4326;POINT(1 1)"  # what PostgreSQL's COPY takes instead


def test_sent_statements_become_a_script_squawk_can_parse(tmp_path):
    """Bound parameters as $n, repeats once with their count, a literal % kept."""
    sent = {
        with_numbered_parameters(
            "UPDATE s.\"T\" SET a=%(a)s::INTEGER, b=%(b)s WHERE id = %(a)s AND c LIKE 'x%%'"
        ): 3,
        with_numbered_parameters("INSERT INTO s.t VALUES (%s, %s)"): 1,
        "ALTER TABLE s.t ADD COLUMN d INTEGER": 1,
    }
    assert script_of(sent) == (
        "-- sent 3 times\n"
        "UPDATE s.\"T\" SET a=$1::INTEGER, b=$2 WHERE id = $1 AND c LIKE 'x%';\n"
        "INSERT INTO s.t VALUES ($1, $2);\n"
        "ALTER TABLE s.t ADD COLUMN d INTEGER;\n"
    )
    script = tmp_path / "0001_abc.sql"
    script.write_text(script_of(sent))
    found = lint.hits(lint.squawk(), script, "15")
    assert found and not [hit for hit in found if hit.startswith("syntax-error")]


@pytest.mark.parametrize(
    ("engine", "target", "postgis", "answered", "wrong"),
    [
        (POSTGRESQL, "15", "3.3", ServerInfo("15.18", "3.3.2"), None),
        (POSTGRESQL, "13", "3.1", ServerInfo("15.18", "3.3.2"), "PostgreSQL 15.18 answered"),
        (POSTGRESQL, "15", "3.3", ServerInfo("15.18", "3.30.1"), "PostGIS 3.30.1 answered"),
        (POSTGRESQL, "15", "3.3", ServerInfo("15.18", None), "PostGIS none answered"),
        (MSSQL, "2022", None, ServerInfo("16.0.4135.4"), None),
        (MSSQL, "2019", None, ServerInfo("16.0.4135.4"), "SQL Server 16.0.4135.4 answered"),
        (MSSQL, "2025", None, ServerInfo("17.0.1000.7"), None),
        # Babelfish reports SQL Server 2014's ProductVersion, or 2022's when configured to.
        (
            MSSQL,
            "2022",
            None,
            ServerInfo("Babelfish 4.2.0"),
            "T-SQL over TDS on Babelfish 4.2.0, not SQL Server answered, not SQL Server 2022",
        ),
        (BABELFISH, "4.2", None, ServerInfo("Babelfish 4.2.0"), None),
        (
            BABELFISH,
            "4.2",
            None,
            ServerInfo("Babelfish 4.3.1"),
            "T-SQL over TDS on Babelfish 4.3.1",
        ),
        (BABELFISH, "4.2", None, ServerInfo("16.0.4135.4"), "SQL Server 16.0.4135.4 answered"),
        (BABELFISH, "4.2", None, ServerInfo("4.2.0"), "SQL Server 4.2.0 answered"),
    ],
)
def test_a_server_proves_only_its_own_version(engine, target, postgis, answered, wrong):
    found = engine.wrong_server(target, postgis, answered)
    assert found == wrong if wrong is None else found.startswith(wrong)


class _Answers:
    """A connection that answers one row: recorded server behaviour, not a server."""

    def __init__(self, *row):
        self.row = row
        self.sent: list[str] = []

    def execute(self, statement):
        self.sent.append(str(statement))
        return self

    def one(self):
        return self.row


def test_sql_server_is_told_from_babelfish_by_what_it_calls_itself():
    """Recorded: SERVERPROPERTY returns NULL for a property SQL Server does not know
    ("NULL = Input isn't valid, an error, or not applicable",
    https://learn.microsoft.com/en-us/sql/t-sql/functions/serverproperty-transact-sql);
    Babelfish answers 'BabelfishVersion' (babelfishpg_tsql/src/properties.c), and its
    ProductVersion is SQL Server's (12.0.2000.8 unless babelfishpg_tds.product_version
    says 16.0.4135.4). The live answer of each Babelfish is in test_babelfish.py."""
    sql_server = _Answers("16.0.4135.4", None)
    assert MSSQL.server_info(sql_server) == ServerInfo("16.0.4135.4")
    assert "SERVERPROPERTY('BabelfishVersion')" in sql_server.sent[0]
    posing = MSSQL.server_info(_Answers("16.0.4135.4", "4.2.0"))
    assert posing == ServerInfo("Babelfish 4.2.0")
    assert MSSQL.wrong_server("2022", None, posing)
    assert BABELFISH.wrong_server("4.2", None, posing) is None


def test_babelfish_is_labelled_as_what_it_is_and_sends_sql_servers_statements():
    assert BABELFISH.target_label("4.2", None) == "T-SQL over TDS on Babelfish 4.2, not SQL Server"
    assert MSSQL.target_label("2022", None) == "SQL Server 2022"
    assert BABELFISH.name == MSSQL.name
    # Its own dialect: pymssql's, with Babelfish's gaps answered (docs/babelfish.md).
    dialect = sa.create_engine(BABELFISH.url("mssql://u:p@127.0.0.1:1/db")).dialect
    assert isinstance(dialect, mssql.pymssql.MSDialect_pymssql) and dialect.name == "mssql"
    assert engine_of(BABELFISH.url("mssql://u:p@127.0.0.1:1/db")) is BABELFISH
    assert engine_of("mssql://u:p@127.0.0.1:1/db") is MSSQL
    # The SQL Server path itself: only the statements Babelfish cannot answer differ.
    statements = [
        name
        for name in ("outside_schema_sql", "table_identity_sql", "locks_sql", "list_databases_sql")
        if getattr(BABELFISH, name) != getattr(MSSQL, name)
    ]
    assert statements == ["outside_schema_sql", "table_identity_sql"]
    assert BABELFISH.drop_database_sql("x") != MSSQL.drop_database_sql("x")
    assert BABELFISH.create_database_sql("x") == MSSQL.create_database_sql("x")
    assert BABELFISH.fingerprint_sql("s", ["t"]) == MSSQL.fingerprint_sql("s", ["t"])
    assert BABELFISH.container.host_command  # its TDS listener kept on 127.0.0.1


@pytest.mark.parametrize(
    ("stored", "table", "shown"),
    [
        # Recorded from Babelfish 4.2's construct_unique_index_name: <name><table><md5(name)>,
        # folded to lower case ...
        ("ix_child_parentchild2058dfaed3e2d7538a63f5603b2de6cc", "child", "ix_child_parent"),
        # ... and past 63 characters pltsql_truncate_identifier's 31 + md5 of the whole.
        (
            "idx_settingproperty_settingidse92e90c8f779454a6a83c65cf9f57721d",
            "SettingProperty",
            "idx_settingproperty_settingid",
        ),
        ("parent_name_key", "parent", "parent_name_key"),  # a constraint's index: as it is
        ("ix_child_parentchild" + "0" * 32, "child", "ix_child_parentchild" + "0" * 32),
    ],
)
def test_babelfish_index_names_are_shown_as_created_where_they_can_be(stored, table, shown):
    from matrix.engines.babelfish import _tsql_index_name

    assert _tsql_index_name(stored, table) == shown


def _rows(columns: str, *rows: tuple) -> list[dict]:
    return [dict(zip(columns.split(), row, strict=True)) for row in rows]


def test_babelfishs_catalogue_rows_become_sql_servers_document():
    """Recorded from Babelfish 4.2 (its batch, live in test_babelfish.py): sys.* in lower
    case, the case only in INFORMATION_SCHEMA, one row per key column, an index under its
    stored name, a sequence's values as 8 little-endian bytes, and the sequence behind an
    identity column listed among the others."""
    from matrix.engines.babelfish import _tsql_index_name
    from matrix.engines.babelfish_catalogue import babelfish_sets
    from matrix.engines.mssql_catalogue import catalogue_document

    column = "table column type max_length precision scale is_nullable default seed step "
    column += "computed is_persisted collation"
    index = "table name is_unique kind filter tessellation_scheme column is_descending_key "
    index += "is_included_column"
    sets = {
        "names": _rows("table column", ("Parent", "id"), ("Parent", "Name"), ("Child", "id"))
        + _rows("table column", ("Child", "parentId")),
        "columns": _rows(
            column,
            ("parent", "id", "int", 4, 10, 0, False, None, "1", "1", None, None, None),
            ("parent", "name", "nvarchar", 100, 0, 0, False, None, None, None, None, None, None),
            ("child", "id", "int", 4, 10, 0, False, None, "10", "5", None, None, None),
            ("child", "parentid", "int", 4, 10, 0, False, None, None, None, None, None, None),
        ),
        "keys": _rows(
            "table name type index_type column is_descending_key",
            ("parent", "parent_pkey", "PK", "NONCLUSTERED", "id", False),
            ("child", "pk_child", "PK", "NONCLUSTERED", "id", False),
        ),
        "foreign_keys": _rows(
            "table name referred_schema referred_table on_delete on_update is_disabled column "
            "referred_column",
            ("child", "fk_child_parent", "pl_x", "parent", "CASCADE", "NO_ACTION", False)
            + ("parentid", "id"),
        ),
        "checks": [],
        "indexes": _rows(
            index,
            ("child", "ix_child_parentidchild37a3b0cc48f60f0d3e4fcf5c20e648da")
            + (False, "NONCLUSTERED", None, None, "id", False, True),
            ("child", "ix_child_parentidchild37a3b0cc48f60f0d3e4fcf5c20e648da")
            + (False, "NONCLUSTERED", None, None, "parentid", True, False),
        ),
        "triggers": [],
        "modules": [],
        "sequences": _rows(
            "name type increment start is_cycling",
            ("child_id_seq", "int", (5).to_bytes(8, "little"), (10).to_bytes(8, "little"), 0),
            ("s1", "bigint", (2).to_bytes(8, "little"), (-3).to_bytes(8, "little", signed=True), 1),
        ),
        "types": [],
    }
    document = catalogue_document(babelfish_sets(sets, _tsql_index_name), "pl_x")
    child = document["tables"]["Child"]
    assert set(document["tables"]) == {"Parent", "Child"}
    assert list(child["columns"]) == ["id", "parentId"]
    assert child["columns"]["id"]["identity"] == "IDENTITY(10,5)"
    assert child["constraints"] == {
        "pk_child": "PRIMARY KEY NONCLUSTERED (id)",
        "fk_child_parent": "FOREIGN KEY (parentId) REFERENCES Parent (id) "
        "ON DELETE CASCADE ON UPDATE NO_ACTION",
    }
    assert child["indexes"] == {
        "ix_child_parentid": "NONCLUSTERED INDEX (parentId DESC) INCLUDE (id)"
    }
    assert document["tables"]["Parent"]["constraints"] == {
        "parent_pkey": "PRIMARY KEY NONCLUSTERED (id)"
    }
    assert document["sequences"] == {
        "s1": {"type": "bigint", "increment": "2", "start": "-3", "cycle": True}
    }


def test_babelfish_asks_no_catalogue_view_it_lacks():
    """Recorded: Babelfish 4.2 has no sys.partition_functions, sys.partition_schemes or
    sys.sequences (error "relation ... does not exist"), and its UNION types a column by
    a literal '' as varchar(0)."""
    from matrix.engines.babelfish_catalogue import CATALOGUE

    for sql in (BABELFISH.outside_schema_sql, CATALOGUE):
        assert "sys.partition_" not in sql and "sys.sequences" not in sql
        assert "WITHIN GROUP" not in sql and "SELECT ''" not in sql
    kinds = ("XML_SCHEMA_COLLECTION", "DATABASE_DDL_TRIGGER", "'TYPE'", "'SCHEMA'")
    assert all(kind in BABELFISH.outside_schema_sql for kind in kinds)
    assert "sys.partition_functions" in MSSQL.outside_schema_sql  # SQL Server's own, as it was


def test_an_unknown_flavour_is_bad_input_naming_the_known_ones():
    with pytest.raises(HarnessError, match="no flavour 'aurora'") as caught:
        engine_named("mssql", "aurora")
    assert "babelfish" in caught.value.fix


def test_no_lock_timeout_means_wait_as_long_as_it_takes_on_both_engines():
    """T-SQL's LOCK_TIMEOUT 0 means never wait: no limit is -1 there, 0 in PostgreSQL."""
    assert MSSQL.session_settings_sql(0, 0) == ["SET LOCK_TIMEOUT -1"]
    assert MSSQL.session_settings_sql(0, 2.5) == ["SET LOCK_TIMEOUT 2500"]
    assert "SET lock_timeout = 0" in POSTGRESQL.session_settings_sql(0, 0)


def test_a_low_memory_figure_is_a_note_never_a_refusal():
    """ "sys.dm_os_sys_info": physical_memory_kb is "the total amount of physical memory on the
    machine"; on Linux, memory.memorylimitmb "controls the memory visible to SQL Server", 80 % of
    the machine's or container's by default ("Performance best practices: SQL Server memory on
    Linux"). Whether the figure is the machine's or that share is not documented: a 2 GB
    container may report about 1,638 MB (derived, 2,048 x 0.8, not observed), which is no
    reason to refuse a server that runs. Before, committed_target_kb / 0.8 was compared."""
    from matrix.define.targets import load_matrix
    from matrix.provide.databases import memory_judgement

    needed = next(t.settings.min_memory_mb for t in load_matrix().targets if t.engine == "mssql")
    assert "physical_memory_kb" in MSSQL.memory_sql and "committed_target" not in MSSQL.memory_sql
    assert memory_judgement(MSSQL, 4096, needed) is None
    note = memory_judgement(MSSQL, 1638, needed)
    assert note and "reports 1638 MB" in note and "not refused" in note
    assert "memory.memorylimitmb" in note
