"""Constraint names: what a revision drops must have been created under a name every engine gives.

A constraint created without a name is named by the server: PostgreSQL after
its table and columns (``Item_pkey``, ``Item_itemId_fkey``, ``Item_name_key``),
the same on every site; SQL Server with a random suffix (``PK__Item__3213E83F…``),
different on every site. A revision that later drops it by ``None`` cannot
even be rendered (Alembic raises ``CompileError``: "it has no name"), and one
that drops it by PostgreSQL's name works on PostgreSQL only.

The harness does not guess this from a server: it follows the DDL Alembic
itself would execute. Every revision's ``upgrade()`` runs from base to head,
then every ``downgrade()`` from head down, in Alembic's offline mode for the
target's dialect with each DDL construct recorded instead of compiled: no
connection, so the verdict is the same whether a server was reached or not,
and a drop by ``None`` is seen before its ``CompileError``. A constraint the
DDL creates without a name (SQLAlchemy's naming convention, when the plugin's
MetaData has one, names it for every engine) is remembered with the revision
that created it; a drop that names it by ``None``, or by the name only
PostgreSQL gives it, is blamed on the dropping revision, with the creating
one named.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from alembic.ddl.base import RenameTable
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from matrix.check.cell import plugin_metadata
from matrix.check.checks.base import CheckOutput, check, describe_error

# PostgreSQL's names for unnamed constraints (ChooseConstraintName: <table>_<columns>_<label>),
# truncated to NAMEDATALEN - 1 bytes.
_PG_LABELS = {"primary key": "pkey", "foreign key": "fkey", "unique": "key", "check": "check"}
_PG_NAME_BYTES = 63
_KINDS = {
    sa.PrimaryKeyConstraint: "primary key",
    sa.ForeignKeyConstraint: "foreign key",
    sa.UniqueConstraint: "unique",
    sa.CheckConstraint: "check",
}
# A constraint dropped in a revision's raw SQL: ALTER TABLE [schema.]table DROP CONSTRAINT name.
_RAW_DROP = re.compile(
    r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?:[\"\[]?\w+[\"\]]?\.)?[\"\[]?(\w+)[\"\]]?"
    r"\s+DROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?[\"\[]?(\w+)[\"\]]?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Created:
    """A constraint the DDL created, and the name the DDL gave it (None: the server's choice)."""

    table: str
    kind: str
    columns: tuple[str, ...]
    name: str | None
    revision: str
    how: str  # "upgrade" or "downgrade": which function of the revision created it

    @property
    def postgresql_name(self) -> str:
        """The name PostgreSQL gives it when the DDL gives none (a key's has no columns)."""
        columns = () if self.kind == "primary key" else self.columns
        return _pg_name(self.table, columns, _PG_LABELS[self.kind])

    def describe(self) -> str:
        return f"{self.kind} {self.table}({', '.join(self.columns)})"


@dataclass
class Ledger:
    """The constraints alive in the walk, by table."""

    tables: dict[str, list[Created]] = field(default_factory=dict)

    def add(self, created: Created | None) -> None:
        if created is not None:
            self.tables.setdefault(created.table, []).append(created)

    def unnamed(self, table: str, kind: str | None) -> list[Created]:
        return [
            c
            for c in self.tables.get(table, [])
            if c.name is None and (kind is None or c.kind == kind)
        ]

    def named(self, table: str, name: str) -> Created | None:
        return next((c for c in self.tables.get(table, []) if c.name == name), None)

    def remove(self, created: Created) -> None:
        self.tables[created.table].remove(created)


@dataclass(frozen=True)
class Unpromised:
    """A drop by a name no engine promised: by whom, what, and who created it."""

    revision: str
    how: str
    table: str
    name: str | None
    created: tuple[Created, ...]


@check
def constraints_named(cell, out: CheckOutput) -> None:
    """Every constraint a revision drops was created under the name it is dropped by.

    See the module's docstring for how the DDL is followed. A finding blames
    the revision that drops the constraint and names the revision that
    created it without a name; on an engine whose unnamed constraints get a
    name of their own, different on every site (SQL Server), it blocks, and on
    one that names them the same everywhere (PostgreSQL) it is a portability
    note. An unnamed constraint no revision drops is no finding. The fix is a
    naming convention on the plugin's MetaData (``MetaData(schema=...,
    naming_convention={...})``): Alembic's operations then name every
    constraint they create the same on every engine, and a revision drops it
    by that name (``op.f("...")``).
    """
    metadata = cell.migrator.env.metadata or plugin_metadata(cell.plugin.package)
    dialect, events, unreadable = follow_ddl(
        cell.migrator.revisions, cell.engine.offline_url, metadata
    )
    for revision, how, error in unreadable:
        if how == "downgrade" and cell.downgrade_kind(revision) == "irreversible":
            continue  # declared: the walk down ends there, as a site's does
        out.warn(
            f"the {how}() of {revision} raised when followed offline ({describe_error(error)}); "
            "what it would drop after that point is not judged"
            + ("" if how == "upgrade" else ", nor the downgrades below it")
        )
    blocking = not cell.engine.stable_constraint_names
    found = unpromised_drops(events, dialect)
    for drop in found:
        out.find(
            "unpromised_name",
            drop_message(drop, cell.engine.label, blocking),
            revision=drop.revision,
            detail=ADVICE,
            blocking=blocking,
        )
    if not found:
        drops = sum(isinstance(construct, sa.schema.DropConstraint) for *_, construct in events)
        out.covered = (
            f"{drops} constraint drops in {len(cell.revisions)} revisions, each by the name "
            "it was created with"
        )


def drop_message(drop: Unpromised, engine: str, blocking: bool) -> str:
    creators = "; ".join(
        f"{c.describe()}, created without a name by {c.revision}"
        + (" (its downgrade)" if c.how == "downgrade" else "")
        for c in drop.created
    )
    if drop.name is None:
        what = (
            "drops a constraint by None, which Alembic cannot render on any engine "
            "(CompileError: it has no name)"
        )
    elif blocking:
        what = (
            f"drops {drop.name!r}, the name PostgreSQL would give it; {engine} gives an "
            "unnamed constraint a name of its own, different on every site"
        )
    else:
        what = (
            f"drops {drop.name!r}, the name {engine} gives an unnamed constraint, which an "
            "engine naming it itself (SQL Server: a random suffix per site) does not"
        )
    return f"{drop.revision} (its {drop.how}()) {what}: " + (
        creators or "created outside the DDL followed"
    )


ADVICE = (
    "Name constraints the same on every engine: give the plugin's MetaData a naming "
    "convention, e.g. MetaData(schema=..., naming_convention={'pk': 'pk_%(table_name)s', "
    "'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s', "
    "'uq': 'uq_%(table_name)s_%(column_0_name)s', "
    "'ck': 'ck_%(table_name)s_%(constraint_name)s', "
    "'ix': 'ix_%(table_name)s_%(column_0_name)s'}), so that Alembic's operations name what "
    "they create; drop by that name (op.f(...)). A constraint already created without a name "
    "on SQL Server sites must be found by its columns (sys.foreign_keys, "
    "sys.key_constraints) before it can be dropped."
)


# -- following the DDL -------------------------------------------------------------------------


def follow_ddl(scripts, offline_url: str, metadata: sa.MetaData | None):
    """Every DDL construct the revisions execute: upgrades from base, then downgrades from head.

    Returns the dialect, ((revision, "upgrade"|"downgrade", construct), ...) and
    the functions that raised before their end (a data migration needs a
    database). The walk down stops at a downgrade that raises, as a site's would.
    """
    opts = {"as_sql": True, "output_buffer": io.StringIO(), "literal_binds": True}
    if metadata is not None:
        opts["target_metadata"] = metadata  # its naming convention names Alembic's constraints
    context = MigrationContext.configure(url=offline_url, opts=opts)
    events: list[tuple[str, str, object]] = []
    unreadable: list[tuple[str, str, BaseException]] = []
    current: list[tuple[str, str]] = [("", "")]

    def record(construct, *args, **kwargs) -> None:
        if isinstance(construct, str):
            construct = sa.text(construct)
        events.append((*current[0], construct))

    context.impl._exec = record  # nothing is compiled, so a drop by None is seen, not raised
    # Table hooks that send raw SQL (GeoAlchemy2's on SQL Server) call exec_driver_sql, which
    # Alembic's offline connection lacks: what they send is recorded like any other statement.
    context.connection.exec_driver_sql = lambda statement, *args, **kwargs: record(statement)
    with Operations.context(context):
        for how, ordered in (("upgrade", scripts), ("downgrade", list(reversed(scripts)))):
            for script in ordered:
                current[0] = (script.revision, how)
                try:
                    getattr(script.module, how)()
                except Exception as error:  # noqa: BLE001 - a revision may raise anything
                    unreadable.append((script.revision, how, error))
                    if how == "downgrade":
                        break
    return context.dialect, events, unreadable


def unpromised_drops(events, dialect: sa.Dialect) -> list[Unpromised]:
    """The drops of constraints by a name the DDL that created them never gave."""
    ledger = Ledger()
    found: list[Unpromised] = []
    for revision, how, construct in events:
        if isinstance(construct, sa.schema.CreateTable):
            table = construct.element
            for constraint in table.constraints:
                ledger.add(created_by(constraint, table.name, revision, how, dialect))
        elif isinstance(construct, sa.schema.AddConstraint):
            element = construct.element
            ledger.add(created_by(element, element.table.name, revision, how, dialect))
        elif isinstance(construct, sa.schema.DropConstraint):
            element = construct.element
            name = ddl_name(element, dialect)
            found.append(_dropped(ledger, element.table.name, name, _kind(element), revision, how))
        elif isinstance(construct, sa.schema.DropTable):
            ledger.tables.pop(construct.element.name, None)
        elif isinstance(construct, RenameTable):
            moved = ledger.tables.pop(construct.table_name, [])
            new = str(construct.new_table_name)
            ledger.tables[new] = [replace(created, table=new) for created in moved]
        elif isinstance(construct, sa.TextClause):
            for table, name in _RAW_DROP.findall(construct.text):
                found.append(_dropped(ledger, table, name, None, revision, how))
    return [drop for drop in found if drop is not None]


def _dropped(ledger: Ledger, table: str, name: str | None, kind, revision: str, how: str):
    """Judge one drop and forget what it dropped: an Unpromised when the name was never given."""
    if name is not None:
        created = ledger.named(table, name)
        if created is not None:
            ledger.remove(created)
            return None
        guessed = [c for c in ledger.unnamed(table, kind) if c.postgresql_name == name]
        for created in guessed:
            ledger.remove(created)
        if not guessed:
            return None  # created by raw SQL or before the history: not this check's to judge
        return Unpromised(revision, how, table, name, tuple(guessed))
    candidates = ledger.unnamed(table, kind)
    own = [
        c for c in candidates if how == "downgrade" and (c.revision, c.how) == (revision, "upgrade")
    ]
    if len(own) == 1:
        candidates = own  # a downgrade undoes what its own upgrade created
    if len(candidates) == 1:
        ledger.remove(candidates[0])
    return Unpromised(revision, how, table, None, tuple(candidates))


def created_by(constraint, table: str, revision: str, how: str, dialect) -> Created | None:
    """The constraint as the ledger keeps it; None for a table's empty primary key."""
    kind = _kind(constraint)
    columns = tuple(c.name for c in getattr(constraint, "columns", ()))
    if kind == "foreign key" and not columns:
        columns = tuple(element.parent.name for element in constraint.elements)
    if kind is None or (kind == "primary key" and not columns):
        return None  # every Table has a PrimaryKeyConstraint; an empty one is no constraint
    return Created(table, kind, columns, ddl_name(constraint, dialect), revision, how)


def _kind(constraint) -> str | None:
    """The constraint's kind; None for op.drop_constraint(..., type_=None), which is any kind."""
    for cls, kind in _KINDS.items():
        if isinstance(constraint, cls):
            return kind
    return None


def ddl_name(constraint, dialect: sa.Dialect) -> str | None:
    """The name the DDL gives: the constraint's own, its naming convention's, or None."""
    if constraint.name is None:
        return None
    return dialect.identifier_preparer.format_constraint(constraint, _alembic_quote=False)


def _pg_name(table: str, columns: tuple[str, ...], label: str) -> str:
    """PostgreSQL's makeObjectName: the longer of table and columns is cut until it fits."""
    first, second = table, "_".join(columns)
    overhead = len(label) + 1 + (1 if second else 0)
    while len((first + second).encode()) + overhead > _PG_NAME_BYTES:
        if len(first.encode()) >= len(second.encode()):
            first = first[:-1]
        else:
            second = second[:-1]
    return "_".join(part for part in (first, second, label) if part)
