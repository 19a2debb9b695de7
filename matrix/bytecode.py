"""Compiled modules kept in the harness's cache when the environment forbids writing them.

Where ``PYTHONDONTWRITEBYTECODE`` is set (some CI images and sandboxes set it
to keep source trees clean), every process compiles every module it imports
again: about a second for the harness's own start, and as much for each
process it starts in a plugin's environment, whose packages uv installs
without bytecode. The harness keeps that bytecode under its cache instead
(``<cache>/pycache``, Python's ``pycache_prefix``), never next to anyone's
sources, for its own process and for the processes it starts. Where writing
bytecode is allowed, nothing changes.

Stdlib only: it runs before anything else is imported.
"""

from __future__ import annotations

import os
import sys

from matrix import settings

FORBIDDEN = "PYTHONDONTWRITEBYTECODE"
PREFIX = "PYTHONPYCACHEPREFIX"


def prefix() -> str | None:
    """Where the harness keeps bytecode: None when Python may write it, or was told where."""
    if not os.environ.get(FORBIDDEN) or os.environ.get(PREFIX):
        return None
    return str(settings.cache_dir() / "pycache")


def keep_in_cache() -> None:
    """This process: bytecode under the cache from now on, when it may not be written beside."""
    where = prefix()
    if where is not None:
        sys.pycache_prefix = where
        sys.dont_write_bytecode = False


def child_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a Python process of the harness: bytecode under the same cache."""
    where = prefix()
    if where is None:
        return env
    child = {k: v for k, v in env.items() if k != FORBIDDEN}
    child[PREFIX] = where
    return child
