"""Plugin internals: nothing here is an API for other plugins."""
