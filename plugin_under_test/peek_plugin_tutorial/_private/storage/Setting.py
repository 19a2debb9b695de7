"""Plugin settings: named groups of typed key/value properties.

A port of Peek's noop plugin ``Setting.py`` to SQLAlchemy 2.x. The tables are
the noop's: ``Setting`` (one row per group, e.g. "Global") and a vertical
``SettingProperty`` table holding one value per row in a column chosen by the
``type`` discriminator. Where the noop built a type map at mapper configuration
time, single-table inheritance does the same job: each value type is a mapped
subclass, so a loaded row comes back as the class that knows its column and
values round-trip with their Python type (an int stays an int, a bool a bool)
on every database.
"""

import builtins
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, Index, String, select
from sqlalchemy.orm import (
    Mapped,
    Session,
    attribute_keyed_dict,
    joinedload,
    mapped_column,
    relationship,
)

from peek_plugin_tutorial._private.PluginNames import tutorialTuplePrefix
from peek_plugin_tutorial._private.storage.DeclarativeBase import DeclarativeBase
from peek_plugin_tutorial._private.tuples import Tuple, addTupleType


@addTupleType
class Setting(Tuple, DeclarativeBase):
    """A named group of properties, keyed by property name."""

    __tablename__ = "Setting"
    __tupleType__ = tutorialTuplePrefix + __tablename__

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str | None]

    properties: Mapped[dict[str, "SettingProperty"]] = relationship(
        collection_class=attribute_keyed_dict("key"),
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"Setting({self.name!r})"


@addTupleType
class SettingProperty(Tuple, DeclarativeBase):
    """One property of a setting; subclasses say where its value is stored."""

    __tablename__ = "SettingProperty"
    __tupleType__ = tutorialTuplePrefix + __tablename__

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    settingId: Mapped[int] = mapped_column(
        ForeignKey(Setting.id, ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(50), nullable=False)
    type: Mapped[str | None] = mapped_column(String(16))

    int_value: Mapped[int | None]
    char_value: Mapped[str | None]
    boolean_value: Mapped[bool | None]

    __table_args__ = (Index("idx_SettingProperty_settingId", settingId),)
    __mapper_args__ = {"polymorphic_on": type}

    #: The Python type of the values and the attribute that stores them.
    pythonType: ClassVar[builtins.type] = object
    valueAttribute: ClassVar[str] = ""

    @classmethod
    def accepts(cls, value: Any) -> bool:
        """Whether ``value`` has this property's type (a bool is no int here)."""
        if isinstance(value, bool) and cls.pythonType is not bool:
            return False
        return isinstance(value, cls.pythonType)

    @property
    def value(self) -> Any:
        return getattr(self, self.valueAttribute)

    @value.setter
    def value(self, value: Any) -> None:
        if not self.accepts(value):
            raise TypeError(
                f"{type(self).__name__} {self.key!r} needs a "
                f"{self.pythonType.__name__}, not {value!r}"
            )
        setattr(self, self.valueAttribute, value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}={self.value!r}>"


@addTupleType
class StringSettingProperty(SettingProperty):
    __tupleType__ = tutorialTuplePrefix + "StringSettingProperty"
    __mapper_args__ = {"polymorphic_identity": "string"}
    pythonType = str
    valueAttribute = "char_value"


@addTupleType
class IntegerSettingProperty(SettingProperty):
    __tupleType__ = tutorialTuplePrefix + "IntegerSettingProperty"
    __mapper_args__ = {"polymorphic_identity": "integer"}
    pythonType = int
    valueAttribute = "int_value"


@addTupleType
class BooleanSettingProperty(SettingProperty):
    __tupleType__ = tutorialTuplePrefix + "BooleanSettingProperty"
    __mapper_args__ = {"polymorphic_identity": "boolean"}
    pythonType = bool
    valueAttribute = "boolean_value"


class PropertyKey:
    """A property name with its default value and the class that stores it."""

    def __init__(self, name: str, defaultValue: Any, propertyClass: type[SettingProperty]) -> None:
        if not propertyClass.accepts(defaultValue):
            raise TypeError(f"Default {defaultValue!r} does not suit {propertyClass}")
        self.name = name
        self.defaultValue = defaultValue
        self.propertyClass = propertyClass

    def __repr__(self) -> str:
        return self.name


def _getSetting(
    ormSession: Session,
    name: str,
    propertyDict: dict[str, PropertyKey],
    key: Any = None,
    value: Any = None,
) -> Any:
    """Read or write the properties of setting ``name``.

    The setting and all its properties load in one query, whatever the
    number of properties. Missing setting and property rows are created with
    their defaults, like the noop does, but nothing is committed: that is the
    caller's decision.
    """
    setting = ormSession.scalars(
        select(Setting)
        .where(Setting.name == name)
        .order_by(Setting.id)
        .options(joinedload(Setting.properties))
    ).first()
    if setting is None:
        setting = Setting(name=name)
        ormSession.add(setting)

    for prop in propertyDict.values():
        existing = setting.properties.get(prop.name)
        if not isinstance(existing, prop.propertyClass):
            setting.properties[prop.name] = prop.propertyClass(
                key=prop.name, value=prop.defaultValue
            )

    if key is None:
        return {propName: setting.properties[propName].value for propName in propertyDict}

    keyName = str(key)
    if keyName not in propertyDict:
        raise KeyError(f"Key {keyName} is not defined in setting {name}")

    if value is not None:
        setting.properties[keyName].value = value

    return setting.properties[keyName].value


# =============================================================================
# GLOBAL PROPERTIES
# =============================================================================

PROPERTY1 = PropertyKey("Property1", "value1", StringSettingProperty)
PROPERTY2 = PropertyKey("Property2", 2, IntegerSettingProperty)
PROPERTY3 = PropertyKey("Property3", False, BooleanSettingProperty)

globalProperties: dict[str, PropertyKey] = {
    prop.name: prop for prop in (PROPERTY1, PROPERTY2, PROPERTY3)
}


def globalSetting(ormSession: Session, key: Any = None, value: Any = None) -> Any:
    """Read all global settings, read one, or set one (the caller commits).

    ``globalSetting(session)`` returns ``{name: value}`` for every property,
    defaults included; ``globalSetting(session, key=PROPERTY1)`` returns that
    property's value and ``globalSetting(session, key=PROPERTY1, value=...)``
    sets it and returns it.
    """
    return _getSetting(ormSession, "Global", globalProperties, key=key, value=value)
