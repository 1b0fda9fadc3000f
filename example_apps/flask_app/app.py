"""A small shop on Flask + mysqlpool_ext: users, products, orders.

Run it (see README.md beside this file):

    export MYSQLPOOL_URL=mysql://user:password@127.0.0.1:3306/shop
    flask --app example_apps.flask_app.app run

What it shows:

- ``MySQLPool()`` + ``init_app`` in an app factory; config from ``MYSQLPOOL_URL`` in the
  environment, any other key from ``FLASK_MYSQLPOOL_*`` variables (``from_prefixed_env``) or from
  ``create_app({...})``;
- ``current_pool.execute_query`` in views: each request gets one pooled connection, so
  ``LAST_INSERT_ID()`` after an INSERT is this request's id;
- ``with current_pool.transaction():`` for an order that must take stock and record the order
  together, or do neither;
- an async view with ``await current_pool.aexecute_query(...)``;
- a streamed CSV export (``stream_with_context``) that keeps the request's connection until the
  last row is sent;
- schema creation at start-up (``SHOP_CREATE_SCHEMA``) and as a CLI command (``flask init-db``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import click
from flask import Blueprint, Flask, Response, abort, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from mysqlpool_ext import current_pool
from mysqlpool_ext.flask import MySQLPool

__all__ = ["create_app", "create_schema", "mysqlpool"]

#: One extension object for every app the factory makes; each app keeps its own pools.
mysqlpool = MySQLPool(size=4)

bp = Blueprint("shop", __name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        id INT AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        email VARCHAR(190) NOT NULL UNIQUE
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS products (
        id INT AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        price_cents INT NOT NULL,
        stock INT NOT NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS orders (
        id INT AUTO_INCREMENT PRIMARY KEY,
        user_id INT NOT NULL,
        product_id INT NOT NULL,
        qty INT NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (user_id) REFERENCES users (id),
        FOREIGN KEY (product_id) REFERENCES products (id)
    ) ENGINE=InnoDB""",
)
SEED_USERS = [(1, "Ada", "ada@example.com"), (2, "Grace", "grace@example.com")]
SEED_PRODUCTS = [(1, "Keyboard", 4900, 100), (2, "Mouse", 1900, 100)]


def create_schema() -> None:
    """Create the tables and a few rows (idempotent; safe from several workers at once)."""
    for statement in SCHEMA:
        current_pool.execute_query(statement)
    current_pool.execute_query(
        "INSERT IGNORE INTO users (id, name, email) VALUES (%s, %s, %s)",
        SEED_USERS,
        exec_many=True,
    )
    current_pool.execute_query(
        "INSERT IGNORE INTO products (id, name, price_cents, stock) VALUES (%s, %s, %s, %s)",
        SEED_PRODUCTS,
        exec_many=True,
    )


class OutOfStock(Exception):
    """Raised inside the order transaction: the ``with`` block rolls everything back."""


@bp.get("/")
def index() -> ResponseReturnValue:
    version = current_pool.execute_query("SELECT VERSION()", return_one=True)[0]
    return {
        "app": "shop",
        "server_version": version,
        "endpoints": [
            "GET /users",
            "POST /users",
            "GET /users/<id>",
            "GET /users.csv",
            "GET /async/users/<id>",
            "GET /products",
            "POST /orders",
            "GET /orders",
        ],
    }


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    current_pool.execute_query("SELECT 1")
    return {"status": "ok"}


@bp.get("/users")
def list_users() -> ResponseReturnValue:
    rows = current_pool.execute_query(
        "SELECT id, name, email FROM users ORDER BY id LIMIT 100", dictcursor=True
    )
    return jsonify(rows)


@bp.get("/users/<int:uid>")
def user(uid: int) -> ResponseReturnValue:
    row = current_pool.execute_query(
        "SELECT id, name FROM users WHERE id=%s", (uid,), dictcursor=True, return_one=True
    )
    if row is None:
        abort(404)
    return row  # type: ignore[no-any-return]


@bp.get("/async/users/<int:uid>")
async def user_async(uid: int) -> ResponseReturnValue:
    """The same as ``/users/<id>`` from an async view (needs ``pip install "flask[async]"``)."""
    row = await current_pool.aexecute_query(
        "SELECT id, name FROM users WHERE id=%s", (uid,), dictcursor=True, return_one=True
    )
    if row is None:
        abort(404)
    return row  # type: ignore[no-any-return]


@bp.post("/users")
def add_user() -> ResponseReturnValue:
    data = request.get_json(silent=True) or {}
    name, email = data.get("name"), data.get("email")
    if not isinstance(name, str) or not isinstance(email, str) or not name or not email:
        return {"error": "name and email are required"}, 400
    current_pool.execute_query("INSERT INTO users (name, email) VALUES (%s, %s)", (name, email))
    # Same request, same connection: LAST_INSERT_ID() is the id of *our* INSERT.
    uid = current_pool.execute_query("SELECT LAST_INSERT_ID()", return_one=True)[0]
    return {"id": uid, "name": name, "email": email}, 201


@bp.get("/users.csv")
def export_users() -> Response:
    """A streamed export: the body is produced after the view returned, on the request's
    connection (``stream_with_context``); it goes back to the pool when the stream ends."""

    @stream_with_context
    def generate() -> Iterator[str]:
        yield "id,name,email\n"
        last = 0
        while True:  # in pages, so a big table never sits in memory at once
            page = current_pool.execute_query(
                "SELECT id, name, email FROM users WHERE id > %s ORDER BY id LIMIT 500", (last,)
            )
            if not page:
                return
            for uid, name, email in page:
                yield f"{uid},{name},{email}\n"
            last = page[-1][0]

    return Response(generate(), mimetype="text/csv")


@bp.get("/products")
def list_products() -> ResponseReturnValue:
    rows = current_pool.execute_query(
        "SELECT id, name, price_cents, stock FROM products ORDER BY id", dictcursor=True
    )
    return jsonify(rows)


@bp.post("/orders")
def place_order() -> ResponseReturnValue:
    """Take stock and record the order in one transaction: both happen, or neither."""
    data = request.get_json(silent=True) or {}
    try:
        user_id, product_id, qty = int(data["user_id"]), int(data["product_id"]), int(data["qty"])
    except (KeyError, TypeError, ValueError):
        return {"error": "user_id, product_id and qty (integers) are required"}, 400
    if qty <= 0:
        return {"error": "qty must be positive"}, 400
    try:
        with current_pool.transaction() as conn:
            row = conn.execute_query(
                "SELECT stock FROM products WHERE id=%s FOR UPDATE", (product_id,), return_one=True
            )
            if row is None:
                abort(404)
            if row[0] < qty:
                raise OutOfStock(f"only {row[0]} left")
            conn.execute_query(
                "UPDATE products SET stock = stock - %s WHERE id=%s", (qty, product_id)
            )
            result = conn.execute_query(
                "INSERT INTO orders (user_id, product_id, qty) VALUES (%s, %s, %s)",
                (user_id, product_id, qty),
            )
    except OutOfStock as exc:
        return {"error": f"out of stock: {exc}"}, 409
    return {"id": result.lastrowid, "user_id": user_id, "product_id": product_id, "qty": qty}, 201


@bp.get("/orders")
def list_orders() -> ResponseReturnValue:
    rows = current_pool.execute_query(
        "SELECT id, user_id, product_id, qty FROM orders ORDER BY id DESC LIMIT 100",
        dictcursor=True,
    )
    return jsonify(rows)


@click.command("init-db")
def init_db_command() -> None:
    """Create the shop's tables and seed rows."""
    create_schema()
    click.echo("schema ready")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory (``flask --app example_apps.flask_app.app run`` finds it).

    Config, later wins: built-in defaults, ``FLASK_*`` environment variables (e.g.
    ``FLASK_MYSQLPOOL_STATS_ENDPOINT=/_mysqlpool/stats``), then ``config``. ``MYSQLPOOL_URL``
    is read from the environment by the extension when the config does not set it.
    """
    app = Flask(__name__)
    app.config.from_mapping(SHOP_CREATE_SCHEMA=True)
    app.config.from_prefixed_env()
    if config:
        app.config.update(config)
    mysqlpool.init_app(app)
    app.register_blueprint(bp)
    app.cli.add_command(init_db_command)
    if app.config["SHOP_CREATE_SCHEMA"]:
        with app.app_context():
            create_schema()
    return app
