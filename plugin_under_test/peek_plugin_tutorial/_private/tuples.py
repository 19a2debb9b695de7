"""Stand-in for ``vortex.Tuple``'s ``Tuple`` and ``addTupleType``.

Vortex (not installable here) serialises tuples by their ``__tupleType__``
name and rebuilds them from a registry of those names. The storage classes
keep the tutorial's ``@addTupleType`` / ``Tuple`` shape so that swapping in
the real vortex is an import change; this module only keeps the registry.
"""

from typing import TypeVar

TupleT = TypeVar("TupleT", bound=type["Tuple"])

#: Registered tuple classes by their ``__tupleType__`` name.
TUPLE_TYPES_BY_NAME: dict[str, type["Tuple"]] = {}


class Tuple:
    """Marks a class as a vortex tuple; subclasses set ``__tupleType__``.

    It defines no ``__init__`` so the SQLAlchemy declarative constructor of
    the ORM classes that mix it in stays in effect.
    """

    __tupleType__: str

    @classmethod
    def tupleName(cls) -> str:
        return cls.__tupleType__


def addTupleType(cls: TupleT) -> TupleT:
    """Register ``cls`` under its ``__tupleType__``, refusing duplicates.

    A duplicate name would make deserialisation ambiguous, so it is an error,
    as it is in vortex; registering the same class again is harmless.
    """
    name = cls.__tupleType__
    registered = TUPLE_TYPES_BY_NAME.get(name)
    if registered is not None and registered is not cls:
        raise ValueError(f"Tuple type {name!r} is already registered by {registered!r}")
    TUPLE_TYPES_BY_NAME[name] = cls
    return cls
