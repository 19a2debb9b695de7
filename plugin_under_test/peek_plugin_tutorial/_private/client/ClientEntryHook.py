"""Client service entry hook.

Peek's ``PluginClientEntryHookABC`` is stood in for by
:class:`PluginEntryHookBase`; this hook only adds what the tutorial asks.
"""

from peek_plugin_tutorial._private.EntryHookBase import PluginEntryHookBase
from peek_plugin_tutorial._private.storage.DeclarativeBase import loadStorageTuples


class ClientEntryHook(PluginEntryHookBase):
    def load(self) -> None:
        """Register the storage tuples, so that this service can serialise them."""
        loadStorageTuples()
        super().load()
