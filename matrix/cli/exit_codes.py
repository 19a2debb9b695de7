"""The command line's exit codes, which every subcommand returns."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INCOMPLETE = 1  # a target failed, errored or was not run; the gate refused
    USAGE = 2  # bad input or environment: one paragraph with the cause and the fix
    INTERRUPTED = 130
