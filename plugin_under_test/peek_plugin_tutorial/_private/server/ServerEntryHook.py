"""Server service entry hook.

Peek's ``PluginServerEntryHookABC`` and ``PluginServerStorageEntryHookABC``
(from ``peek_plugin_base``, not installable here) are stood in for by
:class:`PluginEntryHookBase` and the ``dbMetadata`` property, which the
platform reads to migrate the schema.
"""

import logging
from collections.abc import Callable

from sqlalchemy import MetaData
from sqlalchemy.orm import Session

from peek_plugin_tutorial._private.EntryHookBase import PluginEntryHookBase
from peek_plugin_tutorial._private.storage import DeclarativeBase
from peek_plugin_tutorial._private.storage.DeclarativeBase import loadStorageTuples
from peek_plugin_tutorial._private.storage.Setting import PROPERTY1, globalSetting

logger = logging.getLogger(__name__)


class ServerEntryHook(PluginEntryHookBase):
    def __init__(self, dbSessionCreator: Callable[[], Session] | None = None):
        """``dbSessionCreator`` makes ORM sessions; Peek's platform provides it."""
        super().__init__()
        self._dbSessionCreator = dbSessionCreator

    @property
    def dbSessionCreator(self) -> Callable[[], Session] | None:
        return self._dbSessionCreator

    def load(self) -> None:
        """Load

        This will be called when the plugin is loaded, just after the db is
        migrated. Place any custom initialisation steps here.
        """
        loadStorageTuples()
        super().load()

    def start(self) -> None:
        """Start

        This will be called to start the plugin: create controllers and
        payload, observable and tuple action handlers here.
        """
        if self._dbSessionCreator is not None:
            self._settingsExample()
        super().start()

    def _settingsExample(self) -> None:
        """The tutorial's Setting table example; not code to keep in a plugin."""
        session = self._dbSessionCreator()
        try:
            # This will retrieve all the settings
            allSettings = globalSetting(session)
            logger.debug(allSettings)

            # This will retrieve the value of property1
            value1 = globalSetting(session, key=PROPERTY1)
            logger.debug("value1 = %s", value1)

            # This will set property1
            globalSetting(session, key=PROPERTY1, value="new value 1")
            session.commit()
        finally:
            session.close()

    @property
    def dbMetadata(self) -> MetaData:
        """The metadata Peek migrates: all of this plugin's tables."""
        return DeclarativeBase.metadata
