"""Reading the harness's documents (JSON and TOML files), or one paragraph saying why not.

The matrix file, a policy, a site file, a plugin's manifest, a report, a
benchmark baseline: each is read the same way, and each failure is one
:class:`~matrix.errors.HarnessError` (or the caller's subclass) naming the
file, what is wrong with it and the fix, never a traceback.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matrix.errors import HarnessError


def read_json(
    path: Path,
    what: str,
    fix: str,
    *,
    missing: str | None = None,
    missing_fix: str | None = None,
    error: type[HarnessError] = HarnessError,
) -> Any:
    """``path`` parsed as JSON. ``what`` names the file in a sentence ("matrix report").

    A missing file says ``missing`` (default: there is no ``what`` at
    ``path``) with ``missing_fix`` (default: ``fix``); an unreadable one says
    why, with ``fix``.
    """
    return _read(path, json.loads, "JSON", what, fix, missing, missing_fix, error)


def read_toml(
    path: Path,
    what: str,
    fix: str,
    *,
    missing: str | None = None,
    missing_fix: str | None = None,
    error: type[HarnessError] = HarnessError,
) -> Any:
    """``path`` parsed as TOML, with the same paragraphs as :func:`read_json`."""
    return _read(path, tomllib.loads, "TOML", what, fix, missing, missing_fix, error)


def _read(
    path: Path,
    parse: Callable[[str], Any],
    language: str,
    what: str,
    fix: str,
    missing: str | None,
    missing_fix: str | None,
    error: type[HarnessError],
) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(missing or f"There is no {what} at {path}.", missing_fix or fix) from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{path} is not a readable {what} ({problem}).", fix) from None
    try:
        return parse(text)
    except ValueError as problem:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise error(f"The {what} {path} is not valid {language}: {problem}.", fix) from None
