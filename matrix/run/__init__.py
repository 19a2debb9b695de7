"""The run: the stages from provide to bench, composed for every target of one run.

:mod:`~matrix.run.runner` starts the targets' servers (provide) while the
plugin is built and probed (install), and per target runs the check process
(check, then bench) under its timeouts. It writes through a report writer
the command line gives it, so that it imports no later stage.
"""
