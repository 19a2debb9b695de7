"""The plugin under test: its forms, its manifest, its environment, its preparation.

:mod:`~matrix.install.prepare` is the way in; :mod:`~matrix.protocol` is
the part the check process needs (stdlib only).
"""
