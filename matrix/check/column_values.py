"""A value for any column type, and its JSON form: what the synthetic rows are made of.

Values come from each column's reflected type and one counter ``n`` that the
walk never reseeds, so every value written is distinct and a row written
later can never pass for a lost one. Time values keep to the step their
column (and the engine's driver) keeps, so that what is read back compares.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from matrix.engines import Engine

try:  # geometry columns reflect as geoalchemy2 types only once it is imported
    import geoalchemy2
except ImportError:  # a plugin environment without geoalchemy2 has no geometry
    geoalchemy2 = None


EPOCH = datetime.datetime(2020, 1, 1)


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


_WKT = {
    "POINT": "POINT({x} {y})",
    "LINESTRING": "LINESTRING({x} {y}, {x2} {y2})",
    "POLYGON": "POLYGON(({x} {y}, {x2} {y}, {x2} {y2}, {x} {y}))",
    "MULTIPOINT": "MULTIPOINT({x} {y}, {x2} {y2})",
    "MULTILINESTRING": "MULTILINESTRING(({x} {y}, {x2} {y2}))",
    "MULTIPOLYGON": "MULTIPOLYGON((({x} {y}, {x2} {y}, {x2} {y2}, {x} {y})))",
}


@dataclass(frozen=True)
class Geometry:
    """A generated geometry (or geography) value: WKT and SRID, compared as normalised WKT."""

    wkt: str
    srid: int
    kind: str = "geometry"  # or "geography": SQL Server builds each with its own type

    @property
    def ewkt(self) -> str:
        """PostGIS's extended WKT, as COPY takes it."""
        return f"SRID={self.srid};{self.wkt}" if self.srid else self.wkt


def value_for(
    type_: sa.types.TypeEngine,
    n: int,
    column: sa.Column | None = None,
    engine: Engine | None = None,
) -> Any:
    """A valid value of ``type_`` derived from ``n``, unique where the type allows.

    A date-time holds only what its column keeps through ``engine``'s driver
    (:func:`time_step`), so that it reads back as it was written.
    """
    type_ = getattr(type_, "impl_instance", None) or type_
    geometry = _geometry(type_, n)
    if geometry is not None:
        return geometry
    name = type(type_).__name__.upper()
    if isinstance(type_, sa.Boolean):
        return n % 2 == 0
    if isinstance(type_, sa.Enum):
        return type_.enums[n % len(type_.enums)] if type_.enums else None
    if isinstance(type_, sa.Float):  # before Numeric: 2.1 made them siblings
        return n + 0.5
    if isinstance(type_, sa.Integer):
        if isinstance(type_, sa.SmallInteger):
            return n % 32767
        if name == "TINYINT":  # SQL Server's: 0 to 255
            return n % 256
        return n
    if isinstance(type_, sa.Numeric):
        precision, scale = type_.precision or 18, type_.scale or 0
        whole = n % (10 ** max(precision - scale, 1))
        value = decimal.Decimal(whole) + (decimal.Decimal("0.5") if scale else 0)
        return value if type_.asdecimal else float(value)
    if isinstance(type_, sa.DateTime):
        step = time_step(engine, type_)
        within_a_minute = max(1, min(1000, datetime.timedelta(minutes=1) // step))
        stamp = EPOCH + datetime.timedelta(minutes=n) + step * (n % within_a_minute)
        return stamp.replace(tzinfo=datetime.UTC) if type_.timezone else stamp
    if isinstance(type_, sa.Date):
        return EPOCH.date() + datetime.timedelta(days=n % 30000)
    if isinstance(type_, sa.Time):
        seconds = n % 86400
        moment = datetime.time(seconds // 3600, seconds // 60 % 60, seconds % 60)
        return moment.replace(tzinfo=datetime.UTC) if getattr(type_, "timezone", False) else moment
    if isinstance(type_, sa.Interval):
        return datetime.timedelta(seconds=n)
    if isinstance(type_, sa.Uuid):
        value = uuid.UUID(int=n)
        return value if type_.as_uuid else str(value)
    if isinstance(type_, sa.JSON):
        return {"n": n}
    if isinstance(type_, sa.ARRAY):
        item = value_for(type_.item_type, n)
        return None if item is None else [item]
    if name in ("INET", "CIDR"):
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}" + (
            "/32" if name == "CIDR" else ""
        )
    if name in ("MACADDR", "MACADDR8"):
        return ":".join(f"{(n >> s) & 255:02x}" for s in (40, 32, 24, 16, 8, 0))
    if name in ("TSVECTOR", "MONEY"):
        return f"r{n}" if name == "TSVECTOR" else n
    if isinstance(type_, sa.LargeBinary):
        return f"r{n}".encode()
    if isinstance(type_, sa.String):  # Text, Unicode, CHAR, VARCHAR, NVARCHAR...
        return _text(n, type_.length)
    return None


def time_step(engine: Engine | None, type_: sa.types.TypeEngine) -> datetime.timedelta:
    """The step generated date-times take: kept exactly by the column and by the driver.

    The finer of the two rounded up to a power of ten of a second (SQL Server's
    ``datetime`` keeps 1/300 s, whose multiples of 10 ms are exact), or the
    column's own step from a second up (``smalldatetime``: the minute).
    """
    if engine is None:
        return datetime.timedelta(microseconds=1)
    kept = engine.time_resolution(type_) or datetime.timedelta(microseconds=1)
    finest = max(kept, engine.driver_time_step)
    if finest >= datetime.timedelta(seconds=1):
        return finest
    step = datetime.timedelta(microseconds=1)
    while step < finest:
        step *= 10
    return step


def _text(n: int, length: int | None) -> str:
    """``r<n>``, or ``n`` in base 36 squeezed into a short column."""
    text = f"r{n}"
    if length is None or len(text) <= length:
        return text
    digits = ""
    while n:
        n, rest = divmod(n, 36)
        digits = _BASE36[rest] + digits
    return (digits or "0")[-length:]


def _geometry(type_: sa.types.TypeEngine, n: int) -> Geometry | None:
    if geoalchemy2 is None or not isinstance(type_, geoalchemy2.types._GISType):
        return None
    kind = (type_.geometry_type or "POINT").upper().rstrip("ZM")
    x, y = (n % 170) - 85 + 0.25, (n % 80) - 40 + 0.25
    wkt = _WKT.get(kind, _WKT["POINT"]).format(x=x, y=y, x2=x + 1, y2=y + 1)
    srid = type_.srid if type_.srid and type_.srid > 0 else 0
    if isinstance(type_, geoalchemy2.Geography):
        return Geometry(wkt, srid or 4326, "geography")
    return Geometry(wkt, srid)


def encode(value: Any) -> Any:
    """A generated value as JSON, its Python type kept (a tag for those JSON lacks)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Geometry):
        return {"$": "geometry", "wkt": value.wkt, "srid": value.srid, "kind": value.kind}
    if isinstance(value, decimal.Decimal):
        return {"$": "decimal", "v": str(value)}
    if isinstance(value, datetime.datetime):
        return {"$": "datetime", "v": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$": "date", "v": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"$": "time", "v": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"$": "timedelta", "v": value.total_seconds()}
    if isinstance(value, bytes | memoryview):
        return {"$": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, uuid.UUID):
        return {"$": "uuid", "v": str(value)}
    return {"$": "json", "v": value}


def decode(value: Any) -> Any:
    if not isinstance(value, dict) or "$" not in value:
        return value
    kind = value["$"]
    if kind == "geometry":
        return Geometry(value["wkt"], value["srid"], value.get("kind", "geometry"))
    readers = {
        "decimal": decimal.Decimal,
        "datetime": datetime.datetime.fromisoformat,
        "date": datetime.date.fromisoformat,
        "time": datetime.time.fromisoformat,
        "timedelta": lambda v: datetime.timedelta(seconds=v),
        "bytes": base64.b64decode,
        "uuid": uuid.UUID,
        "json": lambda v: v,
    }
    return readers[kind](value["v"])


def is_geometry(type_: sa.types.TypeEngine) -> bool:
    """Whether a column holds geometry (a geoalchemy2 type), read back as WKT."""
    return geoalchemy2 is not None and isinstance(type_, geoalchemy2.types._GISType)
