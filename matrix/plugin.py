"""The plugin under test: found, built into a wheel, installed, read.

The harness takes any Peek-style plugin, never edits it, and reads it the way
Peek's own runtime does: ``plugin_package.json`` names the services, its
``storage.alembicDir`` names the Alembic folder, and the harness builds the
Alembic ``Config`` itself (script location and URL), as Peek's
``DbConnection`` does. A project folder is built into a wheel and installed
into a private folder, so what is proven is what would be published.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from email.parser import Parser
from pathlib import Path

from alembic.config import Config
from packaging.requirements import Requirement
from sqlalchemy.engine import URL

from matrix.errors import PluginError

PLUGIN_PACKAGE_JSON = "plugin_package.json"
DEFAULT_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest a zip holds
BUILD_LEFTOVERS = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", ".git", ".nox", ".venv"
)


@dataclass(frozen=True)
class Plugin:
    """A Peek storage plugin, ready to import from ``import_root``."""

    package: str
    version: str
    import_root: Path
    alembic_dir: Path
    source: str  # "wheel" or "in-place"
    wheel: Path | None = None
    wheel_sha256: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {k: None if v is None else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str | None]) -> Plugin:
        wheel = data.get("wheel")
        return cls(
            package=data["package"],
            version=data["version"],
            import_root=Path(data["import_root"]),
            alembic_dir=Path(data["alembic_dir"]),
            source=data["source"],
            wheel=Path(wheel) if wheel else None,
            wheel_sha256=data.get("wheel_sha256"),
        )

    def alembic_config(self, url: URL | str, **kwargs) -> Config:
        """The Alembic config Peek's server would build for this plugin."""
        config = Config(**kwargs)
        config.set_main_option("script_location", str(self.alembic_dir))
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
        return config


def resolve_plugin(path: Path, workdir: Path, dist_dir: Path | None = None) -> Plugin:
    """Make a plugin importable from a wheel, a project folder or a package folder.

    - a ``.whl`` file is installed as it is;
    - a project folder (with ``pyproject.toml`` or ``setup.py``) is built into a
      wheel with ``python -m build``, then installed;
    - a package folder (with ``plugin_package.json``) is used in place.
    """
    path = path.resolve()
    if path.is_file() and path.suffix == ".whl":
        return install_wheel(path, workdir)
    if not path.is_dir():
        raise PluginError(
            f"The plugin path {path} is neither a folder nor a wheel.",
            "Pass --plugin with a plugin project folder, its package folder or a .whl.",
        )
    if (path / PLUGIN_PACKAGE_JSON).is_file():
        return _plugin_at(path.parent, path.name, source="in-place")
    if (path / "pyproject.toml").is_file() or (path / "setup.py").is_file():
        return install_wheel(build_wheel(path, dist_dir or workdir / "dist"), workdir)
    raise PluginError(
        f"{path} holds no {PLUGIN_PACKAGE_JSON}, pyproject.toml or setup.py.",
        "Point --plugin at the plugin project folder (the one with pyproject.toml) "
        "or at its package folder (the one with plugin_package.json).",
    )


def build_wheel(project: Path, dist_dir: Path) -> Path:
    """Build the project's sdist and wheel reproducibly; return the wheel's path.

    The build runs on a clean copy of the project: setuptools reuses a stale
    ``build/`` folder, which would ship a deleted revision in the wheel. The
    wheel is built from the sdist, as an installer would, and
    ``SOURCE_DATE_EPOCH`` pins the timestamps inside it, so that the same
    source gives the same bytes, and so the sha256 the release gate checks.
    """
    dist_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch(project)}
    command = [sys.executable, "-m", "build"]
    if _has_uv():
        command += ["--installer", "uv"]
    with tempfile.TemporaryDirectory(prefix="matrix-build-") as scratch:
        source, out = Path(scratch) / project.name, Path(scratch) / "out"
        shutil.copytree(project, source, ignore=BUILD_LEFTOVERS)
        done = subprocess.run(
            [*command, "--outdir", str(out), str(source)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise PluginError(
                f"Building the wheel of {project} failed:\n{tail}",
                "Fix the build error above; `python -m build` in the project folder reproduces it.",
            )
        for built in out.iterdir():
            shutil.copyfile(built, dist_dir / built.name)
        (wheel,) = out.glob("*.whl")
    return dist_dir / wheel.name


def source_date_epoch(project: Path) -> str:
    """The commit time of the project's last change, or a fixed date."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    done = subprocess.run(
        ["git", "log", "-1", "--format=%ct", "--", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    stamp = done.stdout.strip()
    return stamp if done.returncode == 0 and stamp.isdigit() else DEFAULT_SOURCE_DATE_EPOCH


def install_wheel(wheel: Path, workdir: Path) -> Plugin:
    """Install the wheel, without dependencies, into a private folder.

    The harness's own environment must already hold what the plugin requires;
    a missing requirement is named rather than silently downloaded.
    """
    _check_requirements(wheel)
    target = workdir / "site"
    done = subprocess.run(
        [*_pip_install(), "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PluginError(
            f"Installing {wheel.name} failed: {done.stderr.strip()}",
            "Check that the file is a valid wheel (`python -m zipfile -l` lists it).",
        )
    package = _package_in_wheel(wheel)
    return _plugin_at(
        target,
        package,
        source="wheel",
        wheel=wheel,
        wheel_sha256=sha256_of(wheel),
        version=wheel.name.split("-")[1],
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_in_wheel(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        found = [
            name.split("/")[0]
            for name in archive.namelist()
            if name.count("/") == 1 and name.endswith("/" + PLUGIN_PACKAGE_JSON)
        ]
    if len(found) != 1:
        raise PluginError(
            f"The wheel {wheel.name} holds {len(found)} packages with a "
            f"{PLUGIN_PACKAGE_JSON} at their top; expected exactly one.",
            f"Include {PLUGIN_PACKAGE_JSON} as package data of the plugin package "
            "(tool.setuptools.package-data in pyproject.toml).",
        )
    return found[0]


def _check_requirements(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise PluginError(f"{wheel.name} has no METADATA.", "Rebuild the wheel.")
        metadata = Parser().parsestr(archive.read(meta_name).decode())
    missing = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(str(requirement))
            continue
        if installed not in requirement.specifier and requirement.specifier:
            missing.append(f"{requirement} (found {installed})")
    if missing:
        raise PluginError(
            f"The plugin requires {', '.join(missing)}, missing from the harness's environment.",
            "Install them next to the harness: pip install "
            + " ".join(repr(m.split(" (")[0]) for m in missing),
        )


def _plugin_at(
    import_root: Path,
    package: str,
    *,
    source: str,
    wheel: Path | None = None,
    wheel_sha256: str | None = None,
    version: str | None = None,
) -> Plugin:
    package_json = import_root / package / PLUGIN_PACKAGE_JSON
    try:
        manifest = json.loads(package_json.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PluginError(
            f"{package_json} cannot be read as JSON ({error}).",
            "Fix the file: Peek reads it to find the plugin's services.",
        ) from None
    storage = manifest.get("storage")
    if (
        "storage" not in manifest.get("requiresServices", [])
        or not isinstance(storage, dict)
        or not storage.get("alembicDir")
    ):
        raise PluginError(
            f"The plugin {package} does not use Peek's storage service: "
            f'{package_json} lacks "storage" in "requiresServices" or a '
            '"storage": {"alembicDir": ...} section.',
            'Add both, as in the Peek tutorial\'s "Add Storage Service" step; '
            "the harness only tests plugins with storage.",
        )
    alembic_dir = import_root / package / storage["alembicDir"]
    if not (alembic_dir / "env.py").is_file():
        raise PluginError(
            f"storage.alembicDir of {package} points at {alembic_dir}, which has no env.py.",
            "Check the path in plugin_package.json and that the wheel includes the "
            "alembic folder (env.py, script.py.mako, versions/*.py).",
        )
    return Plugin(
        package=package,
        version=version or str(manifest.get("version", "unknown")),
        import_root=import_root,
        alembic_dir=alembic_dir,
        source=source,
        wheel=wheel,
        wheel_sha256=wheel_sha256,
    )


def _pip_install() -> list[str]:
    """pip of this interpreter, or uv's where the venv has no pip (uv venvs)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "install", "--quiet"]
    return ["uv", "pip", "install", "--quiet", "--python", sys.executable]


def _has_uv() -> bool:
    return shutil.which("uv") is not None
