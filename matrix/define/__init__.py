"""Stage 1, define: what a plugin must be proven on, and what its maintainers accept.

:mod:`~matrix.define.targets` reads the matrix file (``targets.toml``: the
database servers, their images, which are required);
:mod:`~matrix.define.policy` reads the plugin's policy (waivers, cost limits).
"""
