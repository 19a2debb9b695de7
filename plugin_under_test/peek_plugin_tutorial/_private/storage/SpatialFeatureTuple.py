"""A table with a spatial column, indexed, on PostGIS and on SQL Server alike."""

from geoalchemy2 import Geometry
from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column

from peek_plugin_tutorial._private.PluginNames import tutorialTuplePrefix
from peek_plugin_tutorial._private.storage.DeclarativeBase import DeclarativeBase
from peek_plugin_tutorial._private.storage.geometry import MssqlGeometry
from peek_plugin_tutorial._private.tuples import Tuple, addTupleType


@addTupleType
class SpatialFeatureTuple(Tuple, DeclarativeBase):
    __tupleType__ = tutorialTuplePrefix + "SpatialFeatureTuple"
    __tablename__ = "SpatialFeature"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str | None]
    # GeoAlchemy2 would name its own index exactly like the one below, so its
    # automatic index is off and the index is declared where it can be seen.
    geom = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False).with_variant(
            MssqlGeometry(srid=4326), "mssql"
        )
    )

    __table_args__ = (Index("idx_SpatialFeature_geom", geom, postgresql_using="gist"),)
