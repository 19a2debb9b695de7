"""Worker service entry hook.

A plain class with the methods of Peek's ``PluginWorkerEntryHookABC``
(``peek_plugin_base`` is not installable here); the platform calls
``load``, ``start``, ``stop`` and ``unload`` in that order.
"""

import logging

from peek_plugin_tutorial._private.storage.DeclarativeBase import loadStorageTuples

logger = logging.getLogger(__name__)


class WorkerEntryHook:
    def load(self) -> None:
        """Load

        Registers the storage tuples, so that this service can serialise and
        deserialise them.
        """
        loadStorageTuples()
        logger.debug("Loaded")

    def start(self) -> None:
        """Start the plugin's work in this service."""
        logger.debug("Started")

    def stop(self) -> None:
        """Stop everything the plugin does in this service."""
        logger.debug("Stopped")

    def unload(self) -> None:
        """Release any last resources before the plugin is unlinked."""
        logger.debug("Unloaded")
