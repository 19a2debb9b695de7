"""The plugin under test: its forms, its manifest, its environment, its preparation.

:mod:`~matrix.plugin.prepare` is the way in; :mod:`~matrix.plugin.model` is
the part the check process needs (stdlib only).
"""
