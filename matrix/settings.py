"""Every ``MATRIX_*`` environment variable the harness reads, in one table.

The command line resolves them (:func:`value`) and hands typed values to the
domain; nothing else reads ``MATRIX_*`` from the environment, except the two
the harness sets for its own check process. Variables of other tools that
decide what the harness records (the CI's commit, the build's date, pip's
index) are read here too, in :data:`FOREIGN`, so that a report's every input
from the environment has one place. ``docs/settings.md`` is checked against
both tables by a test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    meaning: str
    read_by: str  # who reads it: the CLI, nox, setup.sh, the CI file, the check process


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "MATRIX_PLUGIN", "plugin_under_test", "what --plugin names in the nox sessions", "CLI, nox"
    ),
    Setting(
        "MATRIX_PLUGIN_WITH",
        "",
        "extra requirements for the plugin's environment, space separated (--with)",
        "nox, CLI",
    ),
    Setting(
        "MATRIX_PLUGIN_WITH_NO_DEPS",
        "",
        "requirements installed without their dependencies, space separated (--with-no-deps)",
        "nox, CLI",
    ),
    Setting(
        "MATRIX_CONSTRAINTS",
        "",
        "a pip constraints file for the plugin's environment (--constraints)",
        "nox, CLI",
    ),
    Setting(
        "MATRIX_PREVIOUS",
        "",
        "the previous release for the upgrade checks: auto, a requirement or a path (--previous)",
        "nox, CLI",
    ),
    Setting(
        "MATRIX_POSTGRESQL_URL",
        "",
        "URL of a PostgreSQL server for the external provider (named by the matrix file)",
        "CLI",
    ),
    Setting(
        "MATRIX_MSSQL_URL",
        "",
        "URL of a SQL Server for the external provider (named by the matrix file)",
        "CLI",
    ),
    Setting(
        "MATRIX_BABELFISH_URL",
        "",
        "URL of a Babelfish for PostgreSQL (T-SQL over TDS, not SQL Server) for the external "
        "provider's babelfish4-tsql target (named by the matrix file)",
        "CLI",
    ),
    Setting("MATRIX_PROVIDER", "auto", "the provider when --provider is not given", "CLI"),
    Setting(
        "MATRIX_ALLOW_MISSING",
        "",
        "required targets the gate may waive when absent or never reached (ids, space separated)",
        "CLI",
    ),
    Setting(
        "MATRIX_CACHE_DIR",
        "~/.cache/peek-matrix",
        "downloads, built wheels, plugin environments, run records",
        "CLI",
    ),
    Setting(
        "MATRIX_PG_ROOT",
        "/usr/lib/postgresql",
        "where the native provider finds <version>/bin/initdb",
        "CLI",
    ),
    Setting("MATRIX_DEBIAN_MIRROR", "", "debootstrap's mirror for offline images", "CLI, setup.sh"),
    Setting(
        "MATRIX_BABELFISH_SOURCES",
        "",
        "the folder with Babelfish 4.2.0's sources that nox -s babelfish builds its image from",
        "nox -s babelfish",
    ),
    Setting(
        "MATRIX_IMAGE_BUILD_DIR",
        "the system temporary folder",
        "where offline images are laid out before docker import",
        "CLI",
    ),
    Setting(
        "MATRIX_INDEX_URL",
        "TWINE_REPOSITORY_URL + /simple/",
        "the simple index publish asks what it already serves",
        "CLI",
    ),
    Setting("MATRIX_SKIP_DOCKER", "0", "1: setup.sh installs and starts no Docker", "setup.sh"),
    Setting("MATRIX_SKIP_IMAGES", "0", "1: setup.sh builds no offline images", "setup.sh"),
    Setting(
        "MATRIX_CELL_SPEC",
        "",
        "set by the harness for its check process: what to check (internal)",
        "check process",
    ),
    Setting(
        "MATRIX_CELL_URL",
        "",
        "set by the harness for its check process: the database, secret (internal)",
        "check process",
    ),
)

# Other tools' variables the harness itself reads (pip, uv and twine read theirs too).
FOREIGN: tuple[Setting, ...] = (
    Setting(
        "CI_COMMIT_SHA",
        "",
        "the commit of the CI checkout: the commit of a plugin built from that tree",
        "CLI",
    ),
    Setting(
        "SOURCE_DATE_EPOCH",
        "the project's last commit time",
        "the timestamp of every file in the built sdist and wheel",
        "CLI",
    ),
    Setting(
        "PIP_INDEX_URL",
        "pip's configuration, else pip's default",
        "the index a requirement and --previous auto are looked up on",
        "CLI",
    ),
    Setting("TWINE_REPOSITORY_URL", "", "where publish uploads (required, dry run too)", "CLI"),
    Setting("TWINE_USERNAME", "", "the upload user", "CLI"),
    Setting("TWINE_PASSWORD", "", "the upload password (masked everywhere)", "CLI"),
    Setting(
        "PYTHONDONTWRITEBYTECODE",
        "",
        "set: the harness keeps its processes' bytecode in <cache>/pycache instead",
        "CLI",
    ),
    Setting(
        "PYTHONPYCACHEPREFIX",
        "",
        "where Python keeps bytecode; set, the harness leaves bytecode to it",
        "CLI",
    ),
)

BY_NAME = {setting.name: setting for setting in (*SETTINGS, *FOREIGN)}


def value(name: str) -> str:
    """The variable's value, or its default (``~`` expanded)."""
    setting = BY_NAME[name]
    raw = os.environ.get(name)
    if raw is None or raw == "":
        raw = setting.default
    return os.path.expanduser(raw) if raw.startswith("~") else raw


def cache_dir() -> Path:
    """``MATRIX_CACHE_DIR``, else ``$XDG_CACHE_HOME/peek-matrix`` or ``~/.cache/peek-matrix``."""
    explicit = optional("MATRIX_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "peek-matrix"


def optional(name: str) -> str | None:
    """The variable's value, or None when it is unset or empty (no default applies)."""
    if name not in BY_NAME:
        raise KeyError(name)
    return os.environ.get(name) or None


def words(name: str) -> tuple[str, ...]:
    """A space- or comma-separated variable as a tuple of words."""
    return tuple(os.environ.get(name, "").replace(",", " ").split())


def ci_commit() -> str | None:
    """``CI_COMMIT_SHA``: the commit CI checked out, which a tree inside the checkout is at."""
    return optional("CI_COMMIT_SHA")


def source_date_epoch() -> str | None:
    """``SOURCE_DATE_EPOCH`` when the user fixed the build's date; None lets the commit decide."""
    return optional("SOURCE_DATE_EPOCH")
