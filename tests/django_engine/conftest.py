"""Fixtures of the pooled ENGINE's tests (defined in engine_helpers.py)."""

from engine_helpers import engine_account

__all__ = ["engine_account"]
