"""The tutorial's first table: a row of one string and one integer."""

from sqlalchemy.orm import Mapped, mapped_column

from peek_plugin_tutorial._private.PluginNames import tutorialTuplePrefix
from peek_plugin_tutorial._private.storage.DeclarativeBase import DeclarativeBase
from peek_plugin_tutorial._private.tuples import Tuple, addTupleType


@addTupleType
class StringIntTuple(Tuple, DeclarativeBase):
    __tupleType__ = tutorialTuplePrefix + "StringIntTuple"
    __tablename__ = "StringIntTuple"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    string1: Mapped[str | None]
    int1: Mapped[int | None]
