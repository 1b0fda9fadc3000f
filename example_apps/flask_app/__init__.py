"""A small Flask shop on mysqlpool_ext: see README.md beside this file."""

from .app import create_app

__all__ = ["create_app"]
