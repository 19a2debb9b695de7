"""What Peek's ``Plugin*EntryHookABC`` classes give every entry hook.

``peek_plugin_base`` is not installable here, so this plain base stands in
for it: the platform calls ``load``, ``start``, ``stop`` and ``unload`` in
that order. Each service's hook overrides ``load`` to register the storage
tuples, as the tutorial's "Add Storage Service" step asks.
"""

import logging


class PluginEntryHookBase:
    def __init__(self) -> None:
        self._logger = logging.getLogger(type(self).__module__)

    def load(self) -> None:
        """Load: initialise the plugin in this service."""
        self._logger.debug("Loaded")

    def start(self) -> None:
        """Start the plugin's work in this service."""
        self._logger.debug("Started")

    def stop(self) -> None:
        """Stop everything the plugin does in this service."""
        self._logger.debug("Stopped")

    def unload(self) -> None:
        """Release any last resources before the plugin is unlinked."""
        self._logger.debug("Unloaded")
