"""The declarative base and schema of every table of this plugin.

Peek gives each plugin its own schema; putting it on the ``MetaData`` means no
table has to name it, and the Alembic environment reads it back from here.
"""

import importlib
import pkgutil
from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase as _SqlaDeclarativeBase


class DeclarativeBase(_SqlaDeclarativeBase):
    """Base class of the plugin's tables (the tutorial's ``DeclarativeBase``)."""

    metadata = MetaData(schema="pl_tutorial")


metadata = DeclarativeBase.metadata


def loadStorageTuples() -> None:
    """Load Storage Tables

    This method should be called from the "load()" method of the agent, server,
    worker and client entry hook classes, and by the Alembic environment.

    Importing every module of this package registers the ORM classes with the
    metadata (so Alembic sees every table) and as tuples (so vortex can
    serialise them). Modules starting with "Declarative" hold no tables.
    """
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not module.name.startswith("Declarative"):
            importlib.import_module(f"{__package__}.{module.name}")
