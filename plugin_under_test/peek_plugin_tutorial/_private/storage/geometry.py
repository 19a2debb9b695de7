"""SQL Server's native ``geometry`` type, for the one column type that differs.

GeoAlchemy2's ``Geometry`` targets PostGIS (its SQL Server support is recent),
so the plugin's spatial columns are declared as
``Geometry(...).with_variant(MssqlGeometry(srid=...), "mssql")``. This type
moves values as WKT in both directions: writes go through
``geometry::STGeomFromText(wkt, srid)`` and reads through ``.STAsText()``.
"""

from sqlalchemy import Column, String, Table, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import UserDefinedType


class _GeometryFromText(FunctionElement):
    """``geometry::STGeomFromText(wkt, srid)``: a static method call."""

    inherit_cache = True


@compiles(_GeometryFromText)
def _compileGeometryFromText(element, compiler, **kw):
    return f"geometry::STGeomFromText({compiler.process(element.clauses, **kw)})"


class _AsText(FunctionElement):
    """``<geometry>.STAsText()``: an instance method call."""

    type = String()
    inherit_cache = True


@compiles(_AsText)
def _compileAsText(element, compiler, **kw):
    (geometry,) = element.clauses
    return f"{_methodTarget(geometry, compiler, **kw)}.STAsText()"


def _methodTarget(element, compiler, **kw) -> str:
    """Render the column a method is called on as ``table.column``.

    SQL Server reads a dotted name positionally, so ``schema.table.column``
    followed by ``.STAsText()`` would be taken for a four-part object name.
    A schema-qualified table in FROM is still exposed under its bare name,
    which is the form SQL Server's documentation uses for method calls.
    """
    table = getattr(element, "table", None)
    if isinstance(element, Column) and isinstance(table, Table) and table.schema:
        quote = compiler.preparer.quote
        return f"{quote(table.name)}.{quote(element.name)}"
    return compiler.process(element, **kw)


def wktForSrid(value: str, srid: int) -> str:
    """Return the WKT of a WKT or EWKT (``SRID=n;WKT``) string.

    ``STGeomFromText`` takes no SRID prefix; an EWKT SRID other than the
    column's is refused, as PostGIS refuses it for a typed column.
    """
    prefix, separator, wkt = value.partition(";")
    if not separator:
        return value
    name, _, number = prefix.partition("=")
    if name.strip().upper() != "SRID" or int(number) != srid:
        raise ValueError(f"{value!r} is not in SRID {srid}")
    return wkt


class MssqlGeometry(UserDefinedType):
    """SQL Server ``geometry`` column taking and giving WKT strings."""

    cache_ok = True

    def __init__(self, srid: int = 4326) -> None:
        self.srid = srid

    def get_col_spec(self, **kw) -> str:
        return "geometry"

    def bind_processor(self, dialect):
        def process(value):
            return None if value is None else wktForSrid(value, self.srid)

        return process

    def bind_expression(self, bindvalue):
        return _GeometryFromText(bindvalue, literal_column(str(int(self.srid))))

    def column_expression(self, column):
        return _AsText(column)
