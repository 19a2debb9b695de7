"""What the benchmark can use in a plugin it has never seen.

Operations run on the plugin's own mapped classes, filled with synthetic
values (:func:`matrix.check.synthetic.value_for`), so the figures are about its
storage code and its column types. A class is used only when the generic
operations can fill and empty its table on their own; Peek's
``globalSetting(session, key=None, value=None)`` is used when the plugin has
one. What is missing is reported by the operations that need it, not faked.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper

from matrix.check import column_values, synthetic


@dataclass
class MappedTable:
    """One of the plugin's mapped classes, filled with synthetic values."""

    mapper: Mapper

    @property
    def table(self) -> sa.Table:
        return self.mapper.local_table

    @property
    def key(self) -> sa.Column:
        return self.table.primary_key.columns[0]

    @property
    def geometry(self) -> sa.Column | None:
        return next((c for c in self.table.columns if _is_geometry(c)), None)

    def values(self, serial: int) -> dict[str, Any]:
        """Column values of one new row; the database numbers an autoincrement key.

        Geometry goes in as EWKT text, which PostGIS's constructor takes from
        the ORM and from ``COPY`` alike.
        """
        row = {}
        for column in self.table.columns:
            if (
                column is self.table.autoincrement_column
                or column.computed is not None
                or column.identity is not None
            ):
                continue
            value = column_values.value_for(column.type, serial, column)
            if value is None:
                if column.nullable or column.server_default is not None:
                    continue
                raise synthetic.Unfillable(f"no value for the NOT NULL column {column.name}")
            row[column.name] = _ewkt(value) if isinstance(value, column_values.Geometry) else value
        return row

    def rows(self, count: int, serial: Iterator[int]) -> list[dict[str, Any]]:
        """Column values of ``count`` new rows, each numbered by the next ``serial``."""
        return [self.values(next(serial)) for _ in range(count)]

    def attributes(self, count: int, serial: Iterator[int]) -> list[dict[str, Any]]:
        """The same rows keyed by attribute name, ready for the mapped class's constructor."""
        prop = self.mapper.get_property_by_column
        return [
            {prop(self.table.c[k]).key: v for k, v in row.items()}
            for row in self.rows(count, serial)
        ]


@dataclass
class Storage:
    """What the benchmark found in the plugin: tables to use and ``globalSetting``."""

    plain: MappedTable | None
    spatial: MappedTable | None
    global_setting: Callable[..., Any] | None

    @classmethod
    def discover(cls, package: str, schema: str) -> Storage:
        _import_storage(package)
        modules = [
            module
            for name, module in list(sys.modules.items())
            if name == package or name.startswith(package + ".")
        ]
        tables = [MappedTable(m) for m in _plugin_mappers(modules, schema) if _fillable(m)]
        setting = next(
            (m.globalSetting for m in modules if callable(getattr(m, "globalSetting", None))),
            None,
        )
        return cls(
            _widest(t for t in tables if t.geometry is None),
            _widest(t for t in tables if t.geometry is not None),
            setting,
        )


def _is_geometry(column: sa.Column) -> bool:
    return isinstance(column_values.value_for(column.type, 1, column), column_values.Geometry)


def _ewkt(geometry: column_values.Geometry) -> str:
    return f"SRID={geometry.srid};{geometry.wkt}" if geometry.srid else geometry.wkt


def _import_storage(package: str) -> None:
    """Import every module of ``<package>._private.storage``, Peek's storage layout.

    A mapped class joins its declarative registry only once its module is
    imported; the plugin's env.py normally did that already.
    """
    try:
        storage = importlib.import_module(f"{package}._private.storage")
    except ModuleNotFoundError:
        return
    for module in pkgutil.iter_modules(storage.__path__, storage.__name__ + "."):
        importlib.import_module(module.name)


def _plugin_mappers(modules: list[ModuleType], schema: str) -> list[Mapper]:
    """Every mapper of the plugin's declarative registries with its table in the schema."""
    registries = {}
    for module in modules:
        for value in list(vars(module).values()):
            mapper = sa.inspect(value, raiseerr=False) if isinstance(value, type) else None
            if isinstance(mapper, Mapper):
                registries[id(mapper.registry)] = mapper.registry
    mappers = [m for r in registries.values() for m in r.mappers]
    return sorted(
        (m for m in mappers if m.local_table.schema == schema),
        key=lambda m: m.class_.__name__,
    )


def _fillable(mapper: Mapper) -> bool:
    """Whether the generic operations can fill and truncate this class's table alone.

    One integer key, no inheritance, no foreign key either way (a truncate must
    not cascade) and a synthetic value for every NOT NULL column.
    """
    table = mapper.local_table
    keys = list(table.primary_key.columns)
    referenced = any(
        fk.column.table is table
        for other in table.metadata.tables.values()
        for fk in other.foreign_keys
    )
    if (
        mapper.inherits is not None
        or mapper.polymorphic_on is not None
        or len(keys) != 1
        or not isinstance(keys[0].type, sa.Integer)
        or table.foreign_keys
        or referenced
    ):
        return False
    try:
        MappedTable(mapper).values(1)
    except synthetic.Unfillable:
        return False
    return True


def _widest(tables: Iterator[MappedTable]) -> MappedTable | None:
    """The table with the most columns: the most work per row."""
    return max(tables, key=lambda t: len(t.table.columns), default=None)
