"""Flask integration: ``MySQLPool(app)`` gives every request one pooled connection.

    from flask import Flask
    from mysqlpool_ext import current_pool
    from mysqlpool_ext.flask import MySQLPool

    app = Flask(__name__)
    app.config["MYSQLPOOL_URL"] = "mysql://app:secret@127.0.0.1:3306/shop"
    MySQLPool(app)                 # or ext = MySQLPool(); ext.init_app(app) in a factory

A small package, one module per idea: :mod:`.extension` (per-app state, the request scope, the
extension), :mod:`.config` (``MYSQLPOOL_*`` keys -> validated pool options) and :mod:`.cli`
(``flask mysqlpool check|stats``, imported only when Flask's command line runs it).
"""

from __future__ import annotations

from .extension import EXTENSION_KEY, FlaskContextError, MySQLPool, app_pools

__all__ = ["EXTENSION_KEY", "FlaskContextError", "MySQLPool", "app_pools"]
