"""The shop's tables and a little seed data (plain SQL: this app has no ORM models)."""

from __future__ import annotations

from mysqlpool_ext import current_pool

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS shop_users (
        id INT AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        email VARCHAR(190) NOT NULL UNIQUE
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS shop_products (
        id INT AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        price_cents INT NOT NULL,
        stock INT NOT NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS shop_orders (
        id INT AUTO_INCREMENT PRIMARY KEY,
        user_id INT NOT NULL,
        product_id INT NOT NULL,
        qty INT NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (user_id) REFERENCES shop_users (id),
        FOREIGN KEY (product_id) REFERENCES shop_products (id)
    ) ENGINE=InnoDB""",
)


def create_schema() -> None:
    """Create the tables; seed one user and two products where there are none."""
    with current_pool.connection() as conn:
        for statement in SCHEMA:
            conn.execute_query(statement)
        if not conn.execute_query("SELECT 1 FROM shop_users LIMIT 1"):
            conn.execute_query(
                "INSERT INTO shop_users (name, email) VALUES (%s, %s)", ("Ada", "ada@example.com")
            )
        if not conn.execute_query("SELECT 1 FROM shop_products LIMIT 1"):
            conn.execute_query(
                "INSERT INTO shop_products (name, price_cents, stock) VALUES (%s, %s, %s)",
                [("teapot", 2500, 100), ("kettle", 4000, 50)],
                exec_many=True,
            )
