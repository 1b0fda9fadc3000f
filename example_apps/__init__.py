"""Example applications that use mysqlpool_ext the way a user would (copy them)."""
