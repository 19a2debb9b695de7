"""The SQL Server path, live, on Babelfish for PostgreSQL: T-SQL over TDS, not SQL Server.

Babelfish is the one server speaking T-SQL over TDS that can run here. Its
image, ``peek-matrix/babelfish:4.2.0``, is built by the opt-in ``nox -s
babelfish`` (13 minutes or more, docs/babelfish.md), so these tests run only where it
is in the local Docker engine and are skipped with that reason elsewhere (CI
has no such image). Every statement the checks send is the mssql engine's;
what Babelfish cannot answer must come out as what it is (an error naming
the missing feature, a revision that fails with the statement's own error),
never as a pass, and never labelled SQL Server.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import ROOT, cli

from matrix.define.targets import DEFAULT_MATRIX_FILE, load_matrix
from matrix.engines import engine_named
from matrix.provide import images
from matrix.provide.docker import LABEL_RUN, DockerProvider

pytestmark = pytest.mark.live
MATRIX = load_matrix()
TARGET = MATRIX.select(["babelfish4-tsql"])[0]
LABEL = "T-SQL over TDS on Babelfish 4.2, not SQL Server"
SPATIAL_REVISION = "57f8be797dd0"  # the tutorial's geometry revision


def _image_present() -> str | None:
    """Why the Babelfish tests cannot run here, or None when they can."""
    try:
        client = images.docker_client(timeout=10)
    except Exception as error:  # noqa: BLE001 - any reason is a reason to skip
        return f"no Docker engine: {error}"
    try:
        if images.image_size(client, TARGET.image) is None:
            return (
                f"{TARGET.image} is not in the local Docker engine; build it with "
                f"`nox -s babelfish` as {TARGET.image_doc} describes (CI has none)"
            )
    finally:
        client.close()
    return None


needs_image = pytest.mark.skipif(bool(_image_present()), reason=_image_present() or "")


def _run(reports: Path, *args: str, command: str = "run") -> dict:
    done = cli(command, *args, "--targets", TARGET.id, "--reports", str(reports), timeout=1500)
    assert (reports / "compat.json").is_file(), done.stdout + done.stderr
    report = json.loads((reports / "compat.json").read_text())
    (target,) = report["targets"]
    target["output"] = done.stdout + done.stderr
    target["returncode"] = done.returncode
    return target


def _checks(target: dict) -> dict[str, dict]:
    return {check["name"]: check for check in target["checks"]}


@pytest.fixture(scope="module")
def tutorial_run(live, tmp_path_factory) -> tuple[dict, Path]:
    reports = tmp_path_factory.mktemp("babelfish-tutorial")
    return _run(reports, "--plugin", str(ROOT / "plugin_under_test"), "--no-build-images"), reports


@pytest.fixture(scope="module")
def without_spatial(tmp_path_factory) -> Path:
    """The tutorial less its geometry revision and model, which Babelfish cannot run
    (no ``.STSrid``, no ``AsTextZM()``, no ``CREATE SPATIAL INDEX``)."""
    root = tmp_path_factory.mktemp("tutorial-without-spatial") / "plugin"
    shutil.copytree(ROOT / "plugin_under_test", root, ignore=shutil.ignore_patterns("__pycache__"))
    private = root / "peek_plugin_tutorial" / "_private"
    (private / "storage" / "SpatialFeatureTuple.py").unlink()
    (private / "alembic" / "versions" / "57f8be797dd0_added_spatialfeature_table.py").unlink()
    return root


@pytest.fixture(scope="module")
def scaled_run(live, without_spatial, tmp_path_factory) -> dict:
    reports = tmp_path_factory.mktemp("babelfish-scaled")
    return _run(reports, "--plugin", str(without_spatial), "--scale", "200", "--no-build-images")


@needs_image
def test_the_tutorial_runs_live_and_stops_at_the_revision_babelfish_cannot_run(tutorial_run):
    target, reports = tutorial_run
    assert target["label"] == LABEL and target["engine"] == "mssql"
    assert (target["server_version"], target["provider"]) == ("Babelfish 4.2.0", "docker")
    checks = _checks(target)
    upgrade = checks["upgrade_stepwise"]
    assert upgrade["status"] == "failed"
    assert [f["revision"] for f in upgrade["findings"]] == [SPATIAL_REVISION]
    # The statement's own error, not the ROLLBACK (3903) that failed after it.
    assert 'missing FROM-clause entry for table "geom"' in upgrade["reason"]
    assert "3903" not in upgrade["reason"]
    assert [e["revision"] for e in upgrade["evidence"]] == ["8a16497a79b8", "1d840cd061e3"]
    offline = checks["offline_sql"]
    assert offline["status"] == "failed"
    assert {f["revision"] for f in offline["findings"]} == {SPATIAL_REVISION}
    # Labelled as what it is in every report.
    assert f"| {TARGET.id} | {LABEL} | Babelfish 4.2.0 |" in (reports / "compat.md").read_text()
    assert f'name="{TARGET.id} ({LABEL})"' in (reports / "junit.xml").read_text()
    assert LABEL in (reports / "index.html").read_text()
    assert "SQL Server 20" not in (reports / "compat.md").read_text()


@needs_image
def test_every_check_babelfish_can_answer_passes_and_the_others_name_what_it_lacks(scaled_run):
    target = scaled_run
    statuses = {name: check["status"] for name, check in _checks(target).items()}
    answered = [
        "single_head",
        "upgrade_stepwise",
        "version_table_at_head",
        "model_matches_ddl",
        "fresh_install_matches_upgrade",
        "schema_isolation",
        "downgrade_stepwise",
        "downgrade_leaves_no_trace",
        "reupgrade",
        "offline_sql",
        "constraints_named",
    ]
    assert {name: statuses[name] for name in answered} == dict.fromkeys(answered, "passed")
    checks = _checks(target)
    # Babelfish keeps no case of index names: matched without it, and said so.
    warnings = checks["model_matches_ddl"]["warnings"]
    assert any("without their case" in w for w in warnings)
    # ... and the plugin's own autogenerate, compared the same way, is not called blind.
    assert not any("blind to the plugin schema" in w for w in warnings), warnings
    # What Babelfish lacks is an error naming it, never a pass or a plugin failure.
    assert statuses["data_survives"] == "error"
    assert "CHECKSUM_AGG" in checks["data_survives"]["reason"]
    assert statuses["migration_cost"] == "error"
    assert "sys.dm_tran_locks" in checks["migration_cost"]["reason"]
    assert target["status"] == "error" and target["returncode"] == 1


@needs_image
def test_the_benchmark_names_the_statement_babelfish_refuses(without_spatial, tmp_path):
    sizes = ("--rows", "200", "--ops", "20", "--queries", "2", "--rounds", "1", "--warmup", "0")
    _run(tmp_path, "--plugin", str(without_spatial), *sizes, "--no-build-images", command="bench")
    benchmark = json.loads((tmp_path / "benchmark.json").read_text())
    operations = {o["operation"]: o for o in benchmark["targets"][TARGET.id]["operations"]}
    assert operations["insert_commit"].get("error") is None  # one row at a time: measured
    # The ORM's batched INSERT ... OUTPUT ... SELECT ... ORDER BY sen_counter: not the
    # ROLLBACK (3903) that failed after it.
    failed = operations["insert_batch"]["error"]
    assert 'syntax error at or near "ORDER"' in failed and "3903" not in failed.split("(the")[0]
    assert "ORDER BY" in failed and "b'" not in failed  # the statement, the driver's text


@needs_image
def test_the_catalogue_snapshot_sees_what_a_downgrade_leaves_behind(without_spatial, tmp_path):
    """SQL Server's catalogue batch fails on Babelfish (STRING_AGG ... WITHIN GROUP), so
    its own batch reads the schema: a column a downgrade forgets is found, under the
    names it was created with (sys.columns folds them), and blamed on its revision."""
    root = tmp_path / "plugin"
    shutil.copytree(without_spatial, root)
    versions = root / "peek_plugin_tutorial" / "_private" / "alembic" / "versions"
    revision = versions / "1d840cd061e3_added_setting_table.py"
    text = revision.read_text()
    extra = 'op.add_column("StringIntTuple", sa.Column("extraCount", sa.Integer()), '
    text = text.replace("def upgrade():\n", f'def upgrade():\n    {extra}schema="pl_tutorial")\n')
    revision.write_text(text)
    target = _run(tmp_path / "reports", "--plugin", str(root), "--no-build-images")
    checks = _checks(target)
    assert checks["downgrade_stepwise"]["status"] == "passed", target["output"][-3000:]
    no_trace = checks["downgrade_leaves_no_trace"]
    assert (no_trace["status"], no_trace["revision"]) == ("failed", "1d840cd061e3"), no_trace
    assert "+ tables.StringIntTuple.columns.extraCount" in no_trace["detail"]


@pytest.fixture
def babelfish(live):
    """A Babelfish the docker provider started: the URL of its ``master``, its container."""
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    provider = DockerProvider(run_id, network="host", allow_build=False)
    client = images.docker_client()
    try:
        with provider.database(TARGET, log=lambda message: None) as db:
            (container,) = client.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"})
            yield db.url.set(database="master"), container
    finally:
        provider.close()
        client.close()


def _server_setting(container, name: str, value: str) -> None:
    """ALTER SYSTEM on the container's PostgreSQL side, for every later session."""
    sql = f"ALTER SYSTEM SET {name} = '{value}'"
    command = (
        'port=$(ls /tmp/.s.PGSQL.* | grep -v lock | sed "s/.*PGSQL.//"); '
        f'psql -h /tmp -p "$port" -d babelfish_db -c "{sql}" -c "SELECT pg_reload_conf()"'
    )
    code, output = container.exec_run(["bash", "-c", command], user="postgres")
    assert code == 0, output.decode()


@needs_image
def test_babelfish_never_passes_for_sql_server_even_when_it_reports_2022(babelfish):
    """Babelfish reports a SQL Server ProductVersion, 2022's when
    ``babelfishpg_tds.product_version`` says so (babelfishpg_tds guc.c): by that
    alone the harness called it SQL Server 2022. Its BabelfishVersion says what it is."""
    url, container = babelfish
    _server_setting(container, "babelfishpg_tds.product_version", "16.0.4135.4")
    mssql = engine_named("mssql")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            product = conn.exec_driver_sql(
                "SELECT CAST(SERVERPROPERTY('ProductVersion') AS VARCHAR(64))"
            ).scalar()
            info = mssql.server_info(conn)
    finally:
        engine.dispose()
    assert mssql.release_of(product) == "2022"  # what the version alone would have proven
    assert info.server_version == "Babelfish 4.2.0"
    assert mssql.wrong_server("2022", None, info) == (
        "T-SQL over TDS on Babelfish 4.2.0, not SQL Server answered, not SQL Server 2022"
    )
    assert engine_named(TARGET.engine, TARGET.flavour).wrong_server("4.2", None, info) is None


@needs_image
def test_a_sql_server_target_pointed_at_babelfish_is_never_passed(babelfish, tmp_path):
    """Posing as SQL Server 2022 (``babelfishpg_tsql.version``, so that SQLAlchemy's
    mssql dialect reads a version from @@VERSION), Babelfish still fails that dialect's
    first transaction (docs/babelfish.md), and it cannot drop a database the SQL
    Server way (no ALTER DATABASE): the target errors with its own cause, and the
    failed drop after it is said, not swapped in."""
    url, container = babelfish
    _server_setting(
        container, "babelfishpg_tsql.version", "Microsoft SQL Server 2022 (RTM) - 16.0.4135.4"
    )
    matrix = tmp_path / "targets.toml"
    matrix.write_text(DEFAULT_MATRIX_FILE.read_text().replace("min_memory_mb = 2000", ""))
    reports = tmp_path / "reports"
    done = cli(
        *("run", "--matrix", str(matrix), "--plugin", str(ROOT / "plugin_under_test")),
        *("--targets", "mssql2022", "--provider", "external", "--reports", str(reports)),
        env={"MATRIX_MSSQL_URL": url.set(drivername="mssql").render_as_string(False)},
    )
    output = done.stdout + done.stderr
    (target,) = json.loads((reports / "compat.json").read_text())["targets"]
    assert target["status"] == "error" and target["label"] == "SQL Server 2022", output
    assert "ALTER DATABASE" not in target["reason"]
    assert "failed too" in output and "ALTER DATABASE" in output


def test_the_target_is_not_run_pointing_at_its_document_where_the_image_is_absent(tmp_path):
    if why := _no_engine():
        pytest.skip(why)
    matrix = tmp_path / "targets.toml"
    text = DEFAULT_MATRIX_FILE.read_text()
    matrix.write_text(
        text.replace("peek-matrix/babelfish:4.2.0", "peek-matrix/babelfish:0.0.0-absent")
    )
    reports = tmp_path / "reports"
    done = cli(
        "run",
        "--matrix",
        str(matrix),
        "--plugin",
        str(ROOT / "plugin_under_test"),
        "--targets",
        TARGET.id,
        "--provider",
        "docker",
        "--reports",
        str(reports),
        env={"MATRIX_BABELFISH_URL": ""},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (target,) = json.loads((reports / "compat.json").read_text())["targets"]
    assert target["status"] == "not_run"
    assert "peek-matrix/babelfish:0.0.0-absent is not present" in target["reason"]
    assert "docs/babelfish.md" in target["reason"]
    assert "pull" not in target["reason"]  # no registry serves it: never asked


def _no_engine() -> str | None:
    try:
        images.docker_client(timeout=10).close()
    except Exception as error:  # noqa: BLE001 - any reason is a reason to skip
        return f"no Docker engine: {error}"
    return None
