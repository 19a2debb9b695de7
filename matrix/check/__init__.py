"""Stage 4, check: the check process and what it runs on one target.

:mod:`~matrix.check.process` is the program (``python -m
matrix.check.process``) that runs in the plugin's own environment; it talks
to the harness only through :mod:`matrix.protocol`.
:mod:`~matrix.check.migrator` walks the plugin's Alembic history,
:mod:`~matrix.check.snapshot` reads a schema as facts,
:mod:`~matrix.check.synthetic` writes and verifies generated rows,
:mod:`~matrix.check.cell` is what the checks of one target share, and
:mod:`~matrix.check.checks` holds the checks, one concern per module.
:mod:`~matrix.check.lint` adds squawk's static view afterwards, in the harness.
"""
