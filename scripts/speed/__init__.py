"""Helpers of ``scripts/harness_speed.py``: the harness's runs, the peer stack, the profile.

Kept apart from the script so that each part reads on its own: how a run is
timed and its memory sampled (:mod:`bench.harness`, :mod:`bench.memory`),
how the peer stack a plugin author would assemble is installed and run
(:mod:`bench.peer`), where the check process spends its time
(:mod:`bench.profile`), and how rounds become figures (:mod:`bench.stats`).
"""
