"""The plugin's own environment: a virtual environment the checks run in.

A verdict is about a plugin in a known environment, so each plugin gets one:
its wheel installed *with* its declared dependencies, plus what the check
process needs (SQLAlchemy and Alembic within the ranges the checks support,
the engines' drivers, sqlglot), plus what the user adds for what the plugin
needs but does not declare (``--with REQ``, ``--constraints FILE``). The
plugin's own pins win: when they fall outside the supported ranges the
resolver refuses, and the harness says which pin and which range.

Environments are cached under ``<cache>/envs/<key>``, the key being the
sha256 of everything that decides their content (the wheel's sha256, the
extra requirements, the constraints file's bytes, the check requirements,
the Python version), so a rerun costs nothing. A lock file makes two runs
that need the same environment build it once.

uv builds them when it is installed (much faster); otherwise ``python -m
venv`` and pip. The index is the tools' default, overridden the usual way
(``UV_INDEX_URL``/``PIP_INDEX_URL`` and their configuration).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

from matrix import processes
from matrix.errors import PluginError

# What the check process imports, in the ranges its code is tested with.
SUPPORTED = {"SQLAlchemy": ">=2.0,<2.2", "alembic": ">=1.12,<2"}
CHECK_REQUIREMENTS = (
    *(f"{name}{spec}" for name, spec in SUPPORTED.items()),
    "sqlglot>=30,<31",  # its parse decides offline verdicts where no server runs
)
INSTALL_TIMEOUT_S = 1800
ENV_FORMAT = 1  # bump when the layout of an environment changes


@dataclass(frozen=True)
class Environment:
    """A ready environment: its interpreter, site-packages and what it holds."""

    path: Path
    python: Path
    site_packages: Path
    versions: dict[str, str]
    reused: bool
    seconds: float


def environment_key(
    wheel_sha256: str | None,
    with_requirements: tuple[str, ...],
    constraints: bytes | None,
    drivers: tuple[str, ...],
    without_dependencies: tuple[str, ...] = (),
) -> str:
    """The sha256 of everything that decides an environment's content."""
    parts = {
        "format": ENV_FORMAT,
        "python": ".".join(map(str, sys.version_info[:3])),
        "wheel": wheel_sha256,
        "with": sorted(with_requirements),
        "constraints": hashlib.sha256(constraints).hexdigest() if constraints else None,
        "check": sorted(CHECK_REQUIREMENTS),
        "drivers": sorted(drivers),
        "no_deps": sorted(without_dependencies),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def prepare(
    cache: Path,
    *,
    wheel: Path | None,
    wheel_sha256: str | None,
    with_requirements: tuple[str, ...] = (),
    constraints: Path | None = None,
    drivers: tuple[str, ...] = (),
    without_dependencies: tuple[str, ...] = (),
    log=lambda message: None,
) -> Environment:
    """The environment for this wheel and these extras, built once and reused.

    ``without_dependencies`` are installed after the rest with ``--no-deps``:
    a platform package the migrations import one module of (Peek's
    ``peek_platform``), whose own dependency tree they do not need.
    """
    constraint_bytes = _read_constraints(constraints)
    key = environment_key(
        wheel_sha256, with_requirements, constraint_bytes, drivers, without_dependencies
    )
    path = cache / "envs" / key[:24]
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = path / "matrix-ready.json"
        if ready.is_file():
            info = json.loads(ready.read_text())
            return _environment(path, info, reused=True, started=started)
        shutil.rmtree(path, ignore_errors=True)
        log(f"creating the plugin's environment in {path}")
        requirements = [str(wheel)] if wheel else []
        requirements += [*with_requirements, *CHECK_REQUIREMENTS, *drivers]
        try:
            _create(path, requirements, constraints, exact_pins(wheel), without_dependencies)
            info = _describe(path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        ready.write_text(json.dumps(info, indent=2, sort_keys=True))
        return _environment(path, info, reused=False, started=started)


def _read_constraints(constraints: Path | None) -> bytes | None:
    if constraints is None:
        return None
    try:
        return constraints.read_bytes()
    except OSError as error:
        raise PluginError(
            f"The constraints file {constraints} cannot be read ({error.strerror}).",
            "Pass --constraints the path of a pip constraints file (one NAME<SPEC per line).",
        ) from None


def _environment(path: Path, info: dict, reused: bool, started: float) -> Environment:
    return Environment(
        path=path,
        python=Path(info["python"]),
        site_packages=Path(info["site_packages"]),
        versions=info["versions"],
        reused=reused,
        seconds=round(time.perf_counter() - started, 3),
    )


def exact_pins(wheel: Path | None) -> list[str]:
    """The wheel's own ``==`` requirements (those that apply here), as constraint lines.

    A release pinned exactly may be yanked (Peek 5.1.6's are): pip accepts a
    yanked release that a dependency pins with ``==``, uv only one pinned
    directly or by a constraint. Passing the plugin's own exact pins as
    constraints makes both resolve what the plugin declares.
    """
    if wheel is None:
        return []
    pins = []
    for requirement in declared_requirements(wheel):
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==":
            pins.append(f"{requirement.name}=={specifiers[0].version}")
    return pins


def declared_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's ``Requires-Dist`` that apply here (markers evaluated, no extras)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode("utf-8", errors="replace"))
    found = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        found.append(requirement)
    return found


def _create(
    path: Path,
    requirements: list[str],
    constraints: Path | None,
    pins: list[str],
    without_dependencies: tuple[str, ...] = (),
) -> None:
    uv = shutil.which("uv")
    python = path / "bin" / "python"
    extra = []
    if constraints is not None or pins:
        merged = path.parent / f"{path.name}.constraints.txt"
        user = constraints.read_text(encoding="utf-8") if constraints else ""
        merged.write_text(user + "\n" + "\n".join(pins) + "\n", encoding="utf-8")
        extra = ["-c", str(merged)]
    if uv:
        _install([uv, "venv", "--quiet", "--python", sys.executable, str(path)], "uv venv")
        command = [uv, "pip", "install", "--quiet", "--python", str(python)]
    else:
        _install([sys.executable, "-m", "venv", str(path)], "python -m venv")
        command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _install([*command, *extra, *requirements], "installing the plugin's environment")
    if without_dependencies:
        _install(
            [*command, "--no-deps", *without_dependencies],
            "installing --with-no-deps requirements",
        )


def _install(command: list[str], what: str) -> None:
    done = processes.run(command, what, timeout=INSTALL_TIMEOUT_S, check=False)
    if done.returncode == 0:
        return
    supported = ", ".join(f"{name}{spec}" for name, spec in SUPPORTED.items())
    raise PluginError(
        f"{what} failed: the plugin's requirements cannot be installed together with the "
        f"check process's ({supported}):\n{processes.tail(done.stdout + done.stderr)}",
        "Read the resolver's message above. A plugin pinned outside the supported "
        "SQLAlchemy/Alembic ranges cannot be checked; a conflict among the plugin's own "
        "dependencies is fixed with --constraints FILE (pins) or --with REQ (additions).",
    )


_DESCRIBE = """
import importlib.metadata, json, sys, sysconfig
print(json.dumps({
    "python": sys.executable,
    "site_packages": sysconfig.get_paths()["purelib"],
    "versions": {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()},
}))
"""


def _describe(path: Path) -> dict:
    done = processes.run(
        [path / "bin" / "python", "-c", _DESCRIBE], "the new environment", timeout=120, check=False
    )
    if done.returncode != 0:
        raise PluginError(
            f"The new environment in {path} does not run Python: {done.stderr.strip()}",
            "Remove it and run again.",
        )
    return json.loads(done.stdout)
