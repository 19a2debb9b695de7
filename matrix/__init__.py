"""Integration test matrix and release gate for Peek storage plugins."""

__version__ = "0.1.0"
