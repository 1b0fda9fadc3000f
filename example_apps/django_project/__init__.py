"""A small Django shop on mysqlpool_ext: see README.md beside this file."""
