"""ORM table classes of the plugin's ``pl_tutorial`` schema."""
