"""Errors a user can act on.

Every failure that comes from the user's input or environment (a malformed
matrix file, a daemon that is down, a port in use) is raised as a
:class:`HarnessError` carrying the cause and the fix. The CLI prints it as one
paragraph and exits non-zero; the traceback is shown only with ``-v``.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A problem the user can fix: says what went wrong and what to do."""

    def __init__(self, cause: str, fix: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.cause} {self.fix}".strip()


class MatrixFileError(HarnessError):
    """The matrix definition file cannot be used."""


class PluginError(HarnessError):
    """The plugin cannot be found, built or read as a Peek storage plugin."""


class ProviderUnavailable(HarnessError):
    """A provider cannot serve a target here (no daemon, no binaries, no URL)."""
