"""Small Peek-style sites: plugins from :mod:`plugin_factory`, two releases each, a site file.

Each plugin is written twice, as the release a site runs today (``previous``)
and as this release (``current``), both with Peek's own env.py
(``AlembicEnvBase`` inlined: online only, one transaction); the site file
lists them in load order with their package folders as requirements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from plugin_factory import CREATE_ITEM, DROP_ITEM, PluginSpec, Revision, write_plugin

from matrix.define.targets import load_matrix

ROOT = Path(__file__).resolve().parent.parent
PG_TARGET = "pg15-postgis33"


def item_history(*later: Revision) -> list[Revision]:
    """Item created at a1, then ``later``."""
    return [Revision("a1", None, CREATE_ITEM, DROP_ITEM, "create Item"), *later]


@dataclass
class SitePlugin:
    name: str
    previous: list[Revision] | None  # None: no previous release, installed fresh
    current: list[Revision]


def write_site(root: Path, plugins: list[SitePlugin]) -> Path:
    """Both releases of every plugin under ``root``, and ``root/site.toml`` listing them."""
    entries = []
    for plugin in plugins:
        current = write_plugin(root / "current", _spec(plugin.name, plugin.current))
        entry = f'[[plugin]]\nrequirement = "{current}"\n'
        if plugin.previous is None:
            entry += 'fresh = "a new plugin in this release"\n'
        else:
            previous = write_plugin(root / "previous", _spec(plugin.name, plugin.previous))
            entry += f'previous = "{previous}"\n'
        entries.append(entry)
    path = root / "site.toml"
    path.write_text('schema_version = 1\nname = "test site"\n\n' + "\n".join(entries))
    return path


def _spec(name: str, revisions: list[Revision]) -> PluginSpec:
    return PluginSpec(name, revisions=revisions, env="peek", extra_columns="")


@dataclass
class SiteRun:
    exit_code: int
    output: str
    reports: Path

    @property
    def report(self) -> dict:
        return json.loads((self.reports / "compat.json").read_text())

    def target(self, target_id: str = PG_TARGET) -> dict:
        return next(t for t in self.report["targets"] if t["id"] == target_id)

    def check(self, plugin: str, name: str, target_id: str = PG_TARGET) -> dict:
        row = next(p for p in self.target(target_id)["plugins"] if p["name"] == plugin)
        return next(c for c in row["checks"] if c["name"] == name)

    def blocking(self, plugin: str, name: str) -> list[dict]:
        return [f for f in self.check(plugin, name)["findings"] if f["blocking"]]


def run_site(server_url, site: Path, reports: Path, *args: str, timeout: float = 900) -> SiteRun:
    """``python -m matrix site`` on the session's server, as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "matrix", "site", "--site", str(site), "--reports", str(reports)]
        + ["--targets", PG_TARGET, "--provider", "external", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "MATRIX_POSTGRESQL_URL": server_url.render_as_string(hide_password=False),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return SiteRun(done.returncode, done.stdout + done.stderr, reports)


MATRIX = load_matrix()
