"""Server service entry hook.

Peek's ``PluginServerEntryHookABC`` and ``PluginServerStorageEntryHookABC``
(from ``peek_plugin_base``, not installable here) are replaced by a plain class
with the same methods: the platform calls ``load``, ``start``, ``stop`` and
``unload`` in that order, and reads ``dbMetadata`` to migrate the schema.
"""

import logging
from collections.abc import Callable

from sqlalchemy import MetaData
from sqlalchemy.orm import Session

from peek_plugin_tutorial._private.storage import DeclarativeBase
from peek_plugin_tutorial._private.storage.DeclarativeBase import loadStorageTuples
from peek_plugin_tutorial._private.storage.Setting import PROPERTY1, globalSetting

logger = logging.getLogger(__name__)


class ServerEntryHook:
    def __init__(self, dbSessionCreator: Callable[[], Session] | None = None):
        """``dbSessionCreator`` makes ORM sessions; Peek's platform provides it."""
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
        logger.debug("Loaded")

    def start(self) -> None:
        """Start

        This will be called to start the plugin: create controllers and
        payload, observable and tuple action handlers here.
        """
        if self._dbSessionCreator is not None:
            self._settingsExample()
        logger.debug("Started")

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

    def stop(self) -> None:
        """Stop

        This method is called by the platform to tell the plugin to shut down
        and stop everything it's doing.
        """
        logger.debug("Stopped")

    def unload(self) -> None:
        """Unload

        This method is called after stop is called, to unload any last
        resources before the plugin is unlinked from the platform.
        """
        logger.debug("Unloaded")

    @property
    def dbMetadata(self) -> MetaData:
        """The metadata Peek migrates: all of this plugin's tables."""
        return DeclarativeBase.metadata
