"""Split a rendered SQL script into the statements a client would send.

An offline script is only proven when it applies, and applying it means
sending it the way ``psql -f`` or ``sqlcmd -i`` would: PostgreSQL scripts
statement by statement, T-SQL scripts batch by batch between ``GO`` lines.
A regular expression cannot do that: a ``;`` inside a ``DO $$ ... $$`` body,
a string or a comment is not a separator, and neither is a ``GO`` inside a
block comment. :func:`split_postgresql` and :func:`split_tsql` are small
tokenizers that know the quoting rules of each dialect.

Each statement carries the revision it belongs to, and the line it starts
on, so that a statement that fails names its revision and place. Alembic
writes ``-- Running upgrade a -> b`` before the statements of revision ``b``
and ``-- Running downgrade b -> a`` before those undoing ``b``: the revision
is the one on the right of an upgrade marker and on the left of a downgrade
marker (the last downgrade, to base, has nothing on its right). What comes
before the first marker (``CREATE SCHEMA``, the version table's creation) is
written because the script starts at that first revision, and is its.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RUNNING = re.compile(r"--[ \t]*Running (upgrade|downgrade) (.*?)[ \t]*->[ \t]*(.*?)[ \t]*$")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$")
_GO_LINE = re.compile(r"[ \t]*GO(?:[ \t]+(\d+))?[ \t]*(?:--[^\n]*)?(?:\n|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One statement (PostgreSQL) or batch (T-SQL) of a script."""

    text: str
    line: int
    revision: str | None


class ScriptSyntaxError(ValueError):
    """The script ends inside a string, identifier, comment or dollar quote."""

    def __init__(self, what: str, line: int) -> None:
        super().__init__(f"the script ends inside {what} opened at line {line}")
        self.line = line


class _Scanner:
    """Shared bookkeeping: position, line numbers, revision markers."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.i = 0
        self.statements: list[Statement] = []
        self.start = 0
        self.revision: str | None = None
        self.pending_revision: str | None = None

    def line_at(self, index: int) -> int:
        return self.sql.count("\n", 0, index) + 1

    def line_comment(self) -> None:
        end = self.sql.find("\n", self.i)
        end = len(self.sql) if end < 0 else end
        marker = _RUNNING.match(self.sql, self.i, end)
        if marker:
            self.pending_revision = revision_of_marker(*marker.groups())
        self.i = end

    def block_comment(self) -> None:
        opened, depth = self.i, 0
        while self.i < len(self.sql):
            if self.sql.startswith("/*", self.i):
                depth += 1
                self.i += 2
            elif self.sql.startswith("*/", self.i):
                depth -= 1
                self.i += 2
                if depth == 0:
                    return
            else:
                self.i += 1
        raise ScriptSyntaxError("a /* comment */", self.line_at(opened))

    def quoted(self, close: str, what: str, backslash: bool = False) -> None:
        """Skip a quoted token; a doubled ``close`` character is an escaped one."""
        opened = self.i
        self.i += 1
        while self.i < len(self.sql):
            char = self.sql[self.i]
            if backslash and char == "\\":
                self.i += 2
                continue
            if char == close:
                if self.sql.startswith(close * 2, self.i):
                    self.i += 2
                    continue
                self.i += 1
                return
            self.i += 1
        raise ScriptSyntaxError(what, self.line_at(opened))

    def emit(self, end: int) -> None:
        """Close the statement running from ``start`` to ``end``.

        Alembic writes its ``-- Running upgrade`` marker in the comments that
        precede a revision's first statement, so a marker seen since the last
        statement names the revision of this one.
        """
        if self.pending_revision is not None:
            self.revision, self.pending_revision = self.pending_revision, None
        text = self.sql[self.start : end]
        offset = _body_start(text)
        if offset < len(text):
            self.statements.append(
                Statement(text[offset:].strip(), self.line_at(self.start + offset), self.revision)
            )
        self.start = self.i

    def done(self) -> list[Statement]:
        """The statements, those before the first marker given the first marker's revision."""
        first = next((s.revision for s in self.statements if s.revision is not None), None)
        leading = next(
            (i for i, s in enumerate(self.statements) if s.revision is not None),
            len(self.statements),
        )
        return [
            Statement(s.text, s.line, first) if i < leading else s
            for i, s in enumerate(self.statements)
        ]


def revision_of_marker(direction: str, before: str, after: str) -> str:
    """The revision a ``-- Running <direction> <before> -> <after>`` marker introduces.

    An upgrade runs the revision it arrives at; a downgrade undoes the one it
    leaves (``-- Running downgrade 57f8 -> 1d84`` is 57f8's downgrade, and
    ``-- Running downgrade 8a16 -> `` the last one, to base).
    """
    return after if direction == "upgrade" else before


def _body_start(text: str) -> int:
    """Where the statement's own text starts, after whitespace and leading comments."""
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
        else:
            return i
    return len(text)


def split_postgresql(sql: str) -> list[Statement]:
    """Statements separated by ``;`` outside strings, identifiers, comments and $$."""
    scan = _Scanner(sql)
    while scan.i < len(sql):
        char = sql[scan.i]
        if sql.startswith("--", scan.i):
            scan.line_comment()
        elif sql.startswith("/*", scan.i):
            scan.block_comment()
        elif char == "'":
            escaped = scan.i > 0 and sql[scan.i - 1] in "eE" and _token_start(sql, scan.i - 1)
            scan.quoted("'", "a string", backslash=escaped)
        elif char == '"':
            scan.quoted('"', "a quoted identifier")
        elif char == "$" and _token_start(sql, scan.i):
            tag = _DOLLAR_TAG.match(sql, scan.i)
            if tag is None:
                scan.i += 1  # $1, a parameter
                continue
            close = sql.find(tag.group(0), tag.end())
            if close < 0:
                raise ScriptSyntaxError(f"the dollar quote {tag.group(0)}", scan.line_at(scan.i))
            scan.i = close + len(tag.group(0))
        elif char == ";":
            end = scan.i
            scan.i += 1
            scan.emit(end)
        else:
            scan.i += 1
    scan.emit(len(sql))
    return scan.done()


def split_tsql(sql: str) -> list[Statement]:
    """Batches separated by ``GO`` lines outside strings, identifiers and comments."""
    scan = _Scanner(sql)
    at_line_start = True
    while scan.i < len(sql):
        char = sql[scan.i]
        if at_line_start:
            go = _GO_LINE.match(sql, scan.i)
            if go:
                end = scan.i
                scan.i = go.end()
                scan.emit(end)
                continue
        at_line_start = False
        if char == "\n":
            at_line_start = True
            scan.i += 1
        elif sql.startswith("--", scan.i):
            scan.line_comment()
        elif sql.startswith("/*", scan.i):
            scan.block_comment()
        elif char == "'":
            scan.quoted("'", "a string")
        elif char == '"':
            scan.quoted('"', "a quoted identifier")
        elif char == "[":
            scan.quoted("]", "a [bracketed] identifier")
        else:
            scan.i += 1
    scan.emit(len(sql))
    return scan.done()


def _token_start(sql: str, index: int) -> bool:
    """Whether ``index`` starts a token (no identifier character just before it)."""
    return index == 0 or not (sql[index - 1].isalnum() or sql[index - 1] in "_$")


_BOUND = re.compile(r"%\((\w+)\)s|%s|%%")


def with_numbered_parameters(statement: str) -> str:
    """A statement as the driver sent it, its bound parameters written ``$1``, ``$2``...

    psycopg and pymssql take ``%(name)s`` and ``%s`` placeholders, which no
    SQL parser reads (squawk calls them a syntax error); ``$n`` is how
    PostgreSQL's own protocol numbers them. ``%%`` is a literal ``%``.
    """
    numbers: dict[str, int] = {}

    def number(match: re.Match) -> str:
        if match.group(0) == "%%":
            return "%"
        key = match.group(1) or f"%s#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return _BOUND.sub(number, statement)


def script_of(sent: dict[str, int]) -> str:
    """Statements sent, in first-sent order, once each with how often they were sent."""
    return "".join(
        (f"-- sent {count} times\n" if count > 1 else "") + f"{text.rstrip().rstrip(';')};\n"
        for text, count in sent.items()
    )
