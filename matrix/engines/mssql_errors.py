"""How pymssql reports an error: its number and words, read for what they are.

pymssql raises SQL Server's (and DB-Lib's) errors as ``(number, message)``
pairs with the message as bytes: the server's text, then DB-Lib's own lines.
The mssql engine classifies failures by the number and shows the words;
both come from here, so that one reading serves both.
"""

from __future__ import annotations


def error_number(error: BaseException) -> int | None:
    """The SQL Server (or DB-Lib) error number of a pymssql error, wrapped or not.

    pymssql's DB-API errors carry ``(number, message)`` (see :func:`_numbered`);
    its ``_mssql`` exceptions have ``number`` as an attribute.
    """
    original = getattr(error, "orig", None) or error
    number = getattr(original, "number", None)
    if isinstance(number, int):
        return number
    said = reported(original)
    return said[0] if said else None


# DB-Lib's "General SQL Server error: Check messages from the SQL Server": the server
# spoke, and its number and message (before DB-Lib's lines) are the error.
DBLIB_SEE_SERVER = 20018
_DBLIB_HEADER = "DB-Lib error message "


def _numbered(error: BaseException) -> tuple[int, object] | None:
    """``(number, message)`` of a pymssql DB-API error: ``args[0]`` after a failed login,
    ``args`` after a failed statement (``_pymssql.pyx``'s ``raise OperationalError,
    e.args[0]`` spreads the pair; seen live through pymssql 2.4.6)."""
    args = getattr(error, "args", None) or ()
    pair = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
    if len(pair) == 2 and isinstance(pair[0], int):
        return pair[0], pair[1]
    return None


def reported(error: BaseException) -> tuple[int, str] | None:
    """The error's number and words: the server's, or DB-Lib's where DB-Lib's is its own.

    pymssql keeps the last server message of the *process*: after a login
    that succeeded (its informational 5701 "Changed database context", 5703
    "Changed language setting"), a later connection refused outright is
    raised as ``(5703, b"Changed language setting ...DB-Lib error message
    20009, ...Unable to connect ...")`` (seen live, pymssql 2.4.6, a refused
    port after a login to Babelfish). So where DB-Lib's first error is its
    own (not 20018, "check messages from the SQL Server"), no server answered
    this call: DB-Lib's number and words are the error, and whatever came
    before them belongs to an earlier connection.
    """
    numbered = _numbered(error)
    if numbered is None:
        return None
    number, raw = numbered
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    server, *dblib = text.split(_DBLIB_HEADER)
    if dblib:
        head, *lines = dblib[0].splitlines()
        own = head.split(",", 1)[0]
        if own.isdigit() and int(own) != DBLIB_SEE_SERVER:
            return int(own), "; ".join(line for line in lines if line.strip())
    message = " ".join(server.split())
    if not message and dblib:  # DB-Lib's own lines after its header
        message = "; ".join(line for line in dblib[0].splitlines()[1:] if line.strip())
    return number, message or text.strip()
