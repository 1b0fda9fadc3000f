"""The shop's ORM models. ``Product`` maps the table the SQL views (and ``init_shop``) use, so the
ORM and ``current_pool`` read and write the same rows; ``Review`` is the ORM's own table."""

from __future__ import annotations

from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)
    price_cents = models.IntegerField()
    stock = models.IntegerField()

    class Meta:
        managed = False  # created by ``manage.py init_shop`` (plain SQL)
        db_table = "shop_products"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Review(models.Model):
    # No database constraint: the products table is not the ORM's to create.
    product = models.ForeignKey(Product, on_delete=models.DO_NOTHING, db_constraint=False)
    stars = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.stars}* {self.product_id}"
