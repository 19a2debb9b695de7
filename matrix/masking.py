"""Secrets never reach a log or a report.

Passwords are generated per run (or read from the environment) and registered
here as soon as they exist; every text the harness prints or writes passes
through :func:`mask`.
"""

from __future__ import annotations

import secrets
import string
import threading

from sqlalchemy.engine import URL

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"


def register(secret: str | None) -> None:
    """Remember a secret so that :func:`mask` hides it everywhere."""
    if secret and len(secret) >= 4:
        with _lock:
            _secrets.add(secret)


def register_url(url: URL) -> None:
    register(url.password if isinstance(url.password, str) else None)


def mask(text: str) -> str:
    """Replace every registered secret in ``text``."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    return text


def generate_password(length: int = 24) -> str:
    """A password that meets SQL Server's complexity rules.

    SQL Server wants at least three of: upper case, lower case, digits,
    symbols. All four are guaranteed here; the symbols avoid characters that
    need quoting in a URL or a shell.
    """
    pools = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "-_.~"]
    chars = [secrets.choice(pool) for pool in pools]
    alphabet = "".join(pools)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    password = "".join(chars)
    register(password)
    return password
