"""The shop app: views on ``current_pool`` (and one on the ORM connection, for comparison)."""
