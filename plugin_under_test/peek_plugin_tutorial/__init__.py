"""Peek tutorial plugin.

Peek loads a plugin by importing this package and calling the ``peek*EntryHook``
function of each service it runs; the functions import lazily so that a
service only loads the code it needs.
"""

__version__ = "1.0.0"


def peekServerEntryHook() -> type:
    from ._private.server.ServerEntryHook import ServerEntryHook

    return ServerEntryHook


def peekClientEntryHook() -> type:
    from ._private.client.ClientEntryHook import ClientEntryHook

    return ClientEntryHook


def peekAgentEntryHook() -> type:
    from ._private.agent.AgentEntryHook import AgentEntryHook

    return AgentEntryHook


def peekWorkerEntryHook() -> type:
    from ._private.worker.WorkerEntryHook import WorkerEntryHook

    return WorkerEntryHook
