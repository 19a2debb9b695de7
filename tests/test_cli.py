"""Bad input: one clear paragraph, exit 2, no traceback, before anything starts.

One table feeds a malformed value for every input the command line
validates (the matrix file and each of its fields, ``--targets``, every
``MATRIX_*`` URL, the reports folder, the plugin in each of its forms and
its ``plugin_package.json``, ``--with``, ``--constraints``, the policy file)
and asserts the exit status, the phrases of the cause and the fix, and that
no traceback shows. All of them fail before any server or environment is
made, so this is the unit tier.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import ROOT, assert_clear_error, cli
from plugin_factory import PluginSpec, healthy_revisions, write_plugin

from matrix.cli import main
from matrix.define.targets import load_matrix
from matrix.errors import MatrixFileError
from matrix.results import REPORT_SCHEMA_VERSION

MATRIX_FILE = ROOT / "matrix" / "define" / "targets.toml"
Make = Callable[[Path], list[str]]


def healthy(tmp: Path, name: str = "valid") -> Path:
    return write_plugin(tmp / "src", PluginSpec(name, healthy_revisions()))


def run_args(tmp: Path, *extra: str, plugin: Path | str | None = None) -> list[str]:
    plugin = plugin or healthy(tmp)
    reports = tmp / "reports"
    return [
        "run",
        "--plugin",
        str(plugin),
        "--targets",
        "pg15-postgis33",
        "--reports",
        str(reports),
        *extra,
    ]


def manifest(edit: Callable[[dict], object]) -> Make:
    def make(tmp: Path) -> list[str]:
        package = healthy(tmp, "badmanifest")
        path = package / "plugin_package.json"
        data = json.loads(path.read_text())
        path.write_text(json.dumps(edit(data)))
        return run_args(tmp, plugin=package)

    return make


def wheel(build: Callable[[zipfile.ZipFile], None], corrupt: bool = False) -> Make:
    def make(tmp: Path) -> list[str]:
        path = tmp / "peek_plugin_x-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            build(archive)
        if corrupt:
            data = bytearray(path.read_bytes())
            index = data.find(b"hello payload")
            data[index : index + 5] = b"HELLO"
            path.write_bytes(bytes(data))
        return run_args(tmp, plugin=path)

    return make


def with_env(variable: str, value: str) -> Make:
    def make(tmp: Path) -> list[str]:
        make.env = {variable: value}  # type: ignore[attr-defined]
        return run_args(tmp, "--provider", "external")

    return make


def policy(text: str) -> Make:
    def make(tmp: Path) -> list[str]:
        path = tmp / "policy.toml"
        path.write_text(text)
        return run_args(tmp, "--policy", str(path))

    return make


def matrix_file(edit: Callable[[str], str]) -> Make:
    def make(tmp: Path) -> list[str]:
        path = tmp / "targets.toml"
        path.write_text(edit(MATRIX_FILE.read_text()))
        return run_args(tmp, "--matrix", str(path))

    return make


def metadata(archive: zipfile.ZipFile) -> None:
    archive.writestr("peek_plugin_x-1.0.dist-info/METADATA", "Name: peek-plugin-x\nVersion: 1.0\n")


BAD_INPUTS: dict[str, tuple[Make, tuple[str, ...]]] = {
    "matrix file missing": (
        lambda tmp: run_args(tmp, "--matrix", str(tmp / "nope.toml")),
        ("does not exist", "--matrix"),
    ),
    "matrix file not TOML": (
        matrix_file(lambda text: text + "\n[[target]\n"),
        ("is not valid TOML", "Fix the syntax"),
    ),
    "matrix schema_version": (
        matrix_file(lambda text: text.replace("schema_version = 1", "schema_version = 7")),
        ("schema_version 7", "schema_version = 1"),
    ),
    "targets syntax": (
        lambda tmp: [*run_args(tmp), "--targets", "pg15-postgis33,,x y"],
        ("is not a comma-separated list of target ids",),
    ),
    "unknown target": (
        lambda tmp: [*run_args(tmp), "--targets", "pg99"],
        ("Unknown target id 'pg99'", "python -m matrix list"),
    ),
    "URL with a bad port": (
        with_env("MATRIX_POSTGRESQL_URL", "postgresql://u:p@127.0.0.1:notaport/db"),
        ("MATRIX_POSTGRESQL_URL is not a database URL", "%-encoded"),
    ),
    "URL of another engine": (
        with_env("MATRIX_POSTGRESQL_URL", "mssql://u:p@127.0.0.1:1433/master"),
        ("MATRIX_POSTGRESQL_URL points at a SQL Server server", "Point MATRIX_POSTGRESQL_URL"),
    ),
    "URL of an unknown engine": (
        with_env("MATRIX_POSTGRESQL_URL", "oracle://u:p@127.0.0.1/x"),
        ("MATRIX_POSTGRESQL_URL names the engine 'oracle'",),
    ),
    "reports path is a file": (
        lambda tmp: [*run_args(tmp), "--reports", str(_file(tmp))],
        ("is a file, not a folder", "--reports"),
    ),
    "reports folder cannot be made": (
        lambda tmp: [*run_args(tmp), "--reports", str(_file(tmp) / "reports")],
        ("cannot be written", "--reports"),
    ),
    "plugin path missing": (
        lambda tmp: run_args(tmp, plugin=tmp / "no" / "such.whl"),
        ("does not exist",),
    ),
    "plugin is neither path nor requirement": (
        lambda tmp: run_args(tmp, plugin="not a requirement!"),
        ("neither an existing path nor a requirement", "peek-plugin-inbox==5.1.6"),
    ),
    "plugin is some other file": (
        lambda tmp: run_args(tmp, plugin=_file(tmp)),
        ("is a file, but not a wheel (.whl) or an sdist",),
    ),
    "plugin folder holds nothing": (
        lambda tmp: run_args(tmp, plugin=tmp),
        ("holds no plugin_package.json, pyproject.toml or setup.py",),
    ),
    "corrupt wheel": (
        wheel(
            lambda a: (metadata(a), a.writestr("peek_plugin_x/data.txt", "hello payload")),
            corrupt=True,
        ),
        ("is corrupt", "fails its CRC check"),
    ),
    "wheel without plugin_package.json": (
        wheel(lambda a: (metadata(a), a.writestr("peek_plugin_x/__init__.py", "hello payload"))),
        ("holds 0 packages with a plugin_package.json", "packages: peek_plugin_x"),
    ),
    "wheel that is no zip": (
        lambda tmp: run_args(tmp, plugin=_file(tmp, "x-1.0-py3-none-any.whl")),
        ("is not a valid wheel",),
    ),
    "manifest not an object": (
        manifest(lambda data: [data]),
        ("holds a JSON list, not an object",),
    ),
    "alembicDir not a string": (
        manifest(lambda data: {**data, "storage": {"alembicDir": 7}}),
        ("storage.alembicDir = 7 is not a string",),
    ),
    "alembicDir outside the package": (
        manifest(lambda data: {**data, "storage": {"alembicDir": "../elsewhere"}}),
        ("is not a folder inside the package",),
    ),
    "alembicDir without env.py": (
        manifest(lambda data: {**data, "storage": {"alembicDir": "_private"}}),
        ("which has no env.py",),
    ),
    "requiresServices not a list": (
        manifest(lambda data: {**data, "requiresServices": "storage"}),
        ('requiresServices = "storage" is not a list',),
    ),
    "no storage service": (
        manifest(lambda data: {**data, "requiresServices": ["logic"]}),
        ("does not use Peek's storage service", "Add Storage Service"),
    ),
    "plugin.version not a string": (
        manifest(lambda data: {**data, "plugin": {"version": 5}}),
        ("plugin.version = 5 is not a string",),
    ),
    "--with not a requirement": (
        lambda tmp: [*run_args(tmp), "--with", "Twisted<<26"],
        ("--with 'Twisted<<26' is not a requirement",),
    ),
    "--constraints missing": (
        lambda tmp: [*run_args(tmp), "--constraints", str(tmp / "nope.txt")],
        ("The constraints file", "does not exist"),
    ),
    "policy missing": (
        lambda tmp: [*run_args(tmp), "--policy", str(tmp / "nope.toml")],
        ("The policy file", "does not exist"),
    ),
    "policy not TOML": (policy("[[waive]\n"), ("is not valid TOML",)),
    "policy unknown check": (
        policy('[[waive]]\ncheck = "nonsense"\nreason = "x"\n'),
        ("check 'nonsense' is not a check of the harness",),
    ),
    "policy without a reason": (
        policy('[[waive]]\ncheck = "data_survives"\n'),
        ("lacks reason",),
    ),
    "policy empty revision": (
        policy('[[waive]]\ncheck = "data_survives"\nreason = "x"\nrevision = ""\n'),
        ("revision = '' is not a non-empty string",),
    ),
    "policy bad cost": (
        policy('[cost]\nmax_revision_seconds = "fast"\n'),
        ("max_revision_seconds = 'fast' is not a number of seconds",),
    ),
    "policy unknown cost": (
        policy("[cost]\nmax_speed = 1\n"),
        ("unknown limit 'max_speed'",),
    ),
    "per-target report without its fields": (
        lambda tmp: _target_file(tmp, {"schema_version": REPORT_SCHEMA_VERSION, "target": {}}),
        ("is not a per-target report (KeyError", "do not edit them by hand"),
    ),
}


def _target_file(tmp: Path, data: dict) -> list[str]:
    path = tmp / "targets" / "pg15-postgis33.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return ["report", str(path), "--reports", str(tmp / "reports")]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_paragraph_and_exit_2(case, tmp_path, monkeypatch, capsys):
    make, phrases = BAD_INPUTS[case]
    args = make(tmp_path)
    for variable, value in (getattr(make, "env", None) or {}).items():
        monkeypatch.setenv(variable, value)
    assert_clear_error(in_process(args, capsys), *phrases)
    assert not (tmp_path / "reports" / "compat.json").exists()  # nothing ran


def in_process(args: list[str], capsys) -> subprocess.CompletedProcess:
    """``main(args)`` in this process: the same code path as the command, without its start-up."""
    code = main(args)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.mark.parametrize(
    "args",
    [["-j", "0"], ["--check-timeout", "-1"], ["--run-timeout", "soon"], ["--engine", "oracle"]],
)
def test_bad_numbers_and_choices_are_usage_errors(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main([*run_args(tmp_path), *args])
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (
            lambda t: t.replace(
                'engine = "postgresql"\nversion = "13"', 'engine = "db2"\nversion = "13"'
            ),
            "unknown engine 'db2'",
        ),
        (
            lambda t: t.replace("\nrequired = true", '\nrequired = "yes"', 1),
            "required = 'yes', not a bool",
        ),
        (
            lambda t: t.replace(
                'providers = ["docker", "native", "external"]', 'providers = ["cloud"]', 1
            ),
            "has providers ['cloud']",
        ),
        (
            lambda t: t.replace('id = "pg15-postgis33"', 'id = "pg13-postgis31"'),
            "defines target 'pg13-postgis31' twice",
        ),
        (lambda t: t.replace("ready_timeout = 90", "ready_timeout = -5"), "ready_timeout = -5"),
        (lambda t: t.replace("port = 5432", "port = 70000"), "port = 70000"),
        (
            lambda t: t.replace('flavour = "babelfish"', 'flavour = "aurora"'),
            "('babelfish4-tsql') has flavour = 'aurora': The engine 'mssql' has no flavour",
        ),
        (
            lambda t: t.replace('url_env = "MATRIX_BABELFISH_URL"', 'url_env = "babelfish url"'),
            "has url_env = 'babelfish url', not an environment variable name",
        ),
    ],
)
def test_invalid_matrix_fields_name_the_target_and_field(tmp_path, edit, phrase):
    path = tmp_path / "targets.toml"
    path.write_text(edit(MATRIX_FILE.read_text()))
    with pytest.raises(MatrixFileError) as caught:
        load_matrix(path)
    assert phrase in str(caught.value)


def test_verbose_shows_the_traceback(tmp_path):
    done = cli(*run_args(tmp_path, plugin=tmp_path), "-v", timeout=120)
    assert done.returncode == 2
    assert "Traceback" in done.stderr


def _file(tmp: Path, name: str = "a-file.txt") -> Path:
    path = tmp / name
    path.write_bytes(io.BytesIO(b"not what was asked for").getvalue())
    return path


def test_the_settings_page_lists_every_setting_and_the_code_reads_no_other():
    """matrix/settings.py's two tables and docs/settings.md's the same; no reads elsewhere."""
    import re

    from matrix.settings import FOREIGN, SETTINGS

    page = (ROOT / "docs" / "settings.md").read_text()
    own, foreign = page.split("\n## ", 2)[1:]
    assert set(re.findall(r"`(MATRIX_[A-Z_]+)`", own)) == {s.name for s in SETTINGS}
    assert set(re.findall(r"^\| `([A-Z_]+)`", foreign, re.M)) == {s.name for s in FOREIGN}

    read = re.compile(r"""["'$]\{?(MATRIX_[A-Z_]+)|(?<![\w.])(MATRIX_[A-Z_]+)(?=[=:]\S)""")
    sources = [*ROOT.joinpath("matrix").rglob("*.py"), *ROOT.joinpath("scripts").rglob("*")]
    sources += [ROOT / "noxfile.py", ROOT / ".gitlab-ci.yml", ROOT / ".ci" / "run"]
    documented = {s.name for s in SETTINGS}
    strays = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources
        if path.is_file() and path.suffix in {".py", ".sh", ".yml", ""}
        for match in read.finditer(path.read_text())
        for name in match.groups()
        if name and name not in documented
    }
    assert not strays
    names = "|".join(s.name for s in FOREIGN)
    environment = re.compile(rf"""(?:environ\.get\(|environ\[|getenv\()["']({names})["']""")
    foreign_reads = {
        f"{path.relative_to(ROOT)}: {match[1]}"
        for path in ROOT.joinpath("matrix").rglob("*.py")
        if path.name != "settings.py"
        for match in environment.finditer(path.read_text())
    }
    assert not foreign_reads, "read these through matrix/settings.py"


def test_the_summary_ends_with_the_next_step(capsys):
    from helpers import checks, judged, report, target

    from matrix.cli.console import print_summary
    from matrix.results import Finding

    dropped = Finding("table_dropped", "table cache dropped with its rows", "4795161756fc")
    failed = target(
        "pg15-postgis33", with_checks=checks(data_survives=judged("data_survives", dropped))
    )
    print_summary(report(failed), Path("reports/chat"))
    said = " ".join(capsys.readouterr().out.split())
    assert "next: read the Why section of reports/chat/compat.md (or index.html)" in said
    assert "paste the entry into peek-matrix-policy.toml beside the plugin (--policy FILE" in said
    print_summary(report(), Path("reports"))
    assert "next: python -m matrix gate --reports reports" in capsys.readouterr().out


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (sub)command's parser, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _subcommands(child, (*path, name))


def test_every_command_explains_itself_with_an_example_and_no_markup():
    from matrix.cli import build_parser

    found = list(_subcommands(build_parser()))
    assert {" ".join(path) for path, _ in found} >= {
        "",
        "run",
        "list",
        "report",
        "bench",
        "html",
        "images",
        "images build",
        "images list",
        "build",
        "gate",
        "publish",
    }
    for path, parser in found:
        text = parser.format_help()
        assert parser.description and len(parser.description) > 60, path
        assert "examples:" in text or "the loop" in text, path
        assert "``" not in text and ":mod:" not in text and ":class:" not in text, path


def test_list_takes_no_option_it_would_ignore():
    from matrix.cli import build_parser

    (listing,) = [p for path, p in _subcommands(build_parser()) if path == ("list",)]
    options = {o for action in listing._actions for o in action.option_strings}
    assert options == {"-h", "--help", "--matrix", "-v", "--verbose"}


@pytest.mark.live
def test_list_shows_the_image_a_run_starts():
    """Where the matrix image is absent and the offline one present, list names the offline one."""
    from matrix.errors import HarnessError
    from matrix.provide.images import docker_client, run_image

    try:
        client = docker_client(timeout=5)
    except HarnessError as error:
        pytest.skip(f"no Docker engine: {error.cause}")
    done = cli("list", timeout=120)
    assert done.returncode == 0, done.stderr
    for target in load_matrix().targets:
        expected = run_image(client, target) or f"{target.image} (not present: a run pulls it"
        row = next(line for line in done.stdout.splitlines() if f" {target.id} " in line)
        assert expected[:40] in row, (target.id, row)
    offline = [
        t for t in load_matrix().targets if t.recipe and run_image(client, t) == t.recipe.tag
    ]
    for target in offline:  # e.g. peek-matrix/postgis:13-3.1, never postgis/postgis:13-3.1
        row = next(line for line in done.stdout.splitlines() if f" {target.id} " in line)
        assert target.image not in row, row


def test_each_server_url_serves_only_the_targets_that_name_its_variable(monkeypatch):
    """A SQL Server URL never serves the Babelfish target, nor a Babelfish URL a SQL Server one."""
    from matrix.cli.run import external_urls
    from matrix.provide.external import ExternalProvider

    targets = load_matrix().select(["mssql2022", "babelfish4-tsql"])
    monkeypatch.setenv("MATRIX_MSSQL_URL", "mssql://sa:Secret-1@127.0.0.1:1433/master")
    monkeypatch.delenv("MATRIX_BABELFISH_URL", raising=False)
    provider = ExternalProvider(external_urls(targets))
    sql_server, babelfish = targets
    assert provider.unavailable_reason(sql_server) is None
    assert provider.unavailable_reason(babelfish) == (
        "no URL given: set MATRIX_BABELFISH_URL to a server URL"
    )
    monkeypatch.setenv(
        "MATRIX_BABELFISH_URL", "mssql://babelfish_admin:Secret-2@127.0.0.1:1433/master"
    )
    urls = external_urls(targets)
    assert urls["MATRIX_MSSQL_URL"].drivername == "mssql+pymssql"
    assert urls["MATRIX_BABELFISH_URL"].drivername == "mssql+babelfish"  # its own dialect
