"""The same orders stored normalized and as JSONB documents, asked the same questions both ways.

Run: python snippets/databases/model_documents.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import random
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.types.json import Jsonb

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

PRODUCTS = {
    "KB-1": ("keyboard", 45),
    "MS-2": ("mouse", 20),
    "MN-3": ("monitor", 180),
    "CB-4": ("cable", 8),
    "HS-5": ("headset", 60),
}


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/model_documents`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def scratch_schema(url: str) -> Iterator[psycopg.Connection]:
    schema = f"model_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        try:
            yield conn
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def sample_orders(n: int = 200, seed: int = 3) -> list[dict]:
    """n orders as documents: who bought, and 1-4 items each (the same data both ways)."""
    rng = random.Random(seed)
    orders = []
    for order_id in range(1, n + 1):
        skus = rng.sample(sorted(PRODUCTS), rng.randint(1, 4))
        items = [
            {"sku": s, "name": PRODUCTS[s][0], "price": PRODUCTS[s][1], "qty": rng.randint(1, 3)}
            for s in skus
        ]
        orders.append(
            {"id": order_id, "customer": f"customer {rng.randint(1, 40)}", "items": items}
        )
    return orders


# --8<-- [start:schemas]
def load_both(conn: psycopg.Connection, orders: list[dict]) -> None:
    conn.execute("""
        -- normalized: every fact once
        CREATE TABLE products (sku text PRIMARY KEY, name text NOT NULL, price int NOT NULL);
        CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL);
        CREATE TABLE order_items (
            order_id int REFERENCES orders, sku text REFERENCES products, qty int NOT NULL,
            unit_price int NOT NULL,  -- the price paid: history, not a copy of products.price
            PRIMARY KEY (order_id, sku));
        -- document: each order is one self-contained value, product details copied in
        CREATE TABLE order_docs (id int PRIMARY KEY, doc jsonb NOT NULL);
        CREATE INDEX ON order_docs USING gin (doc jsonb_path_ops);
    """)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO products VALUES (%s, %s, %s)",
            [(sku, name, price) for sku, (name, price) in PRODUCTS.items()],
        )
        cur.executemany(
            "INSERT INTO orders VALUES (%s, %s)", [(o["id"], o["customer"]) for o in orders]
        )
        cur.executemany(
            "INSERT INTO order_items VALUES (%s, %s, %s, %s)",
            [(o["id"], i["sku"], i["qty"], i["price"]) for o in orders for i in o["items"]],
        )
        cur.executemany(
            "INSERT INTO order_docs VALUES (%s, %s)", [(o["id"], Jsonb(o)) for o in orders]
        )


# --8<-- [end:schemas]


# --8<-- [start:questions]
QUESTIONS = {
    "order 7 with its items": (
        """SELECT o.id, o.customer, p.sku, p.name, i.unit_price, i.qty
           FROM orders o JOIN order_items i ON i.order_id = o.id
           JOIN products p ON p.sku = i.sku WHERE o.id = 7 ORDER BY p.sku""",
        """SELECT d.id, d.doc->>'customer', item->>'sku', item->>'name',
                  (item->>'price')::int, (item->>'qty')::int
           FROM order_docs d, jsonb_array_elements(d.doc->'items') AS item
           WHERE d.id = 7 ORDER BY item->>'sku'""",
    ),
    "revenue per product": (
        """SELECT sku, sum(unit_price * qty) FROM order_items GROUP BY sku ORDER BY sku""",
        """SELECT item->>'sku', sum((item->>'price')::int * (item->>'qty')::int)
           FROM order_docs, jsonb_array_elements(doc->'items') AS item
           GROUP BY 1 ORDER BY 1""",
    ),
    "orders containing a monitor": (
        "SELECT count(*) FROM order_items WHERE sku = 'MN-3'",
        """SELECT count(*) FROM order_docs
           WHERE doc @> '{"items": [{"sku": "MN-3"}]}'""",  # containment, served by GIN
    ),
}


def ask_both(conn: psycopg.Connection) -> dict[str, tuple[list[tuple], list[tuple]]]:
    return {
        q: (conn.execute(rel).fetchall(), conn.execute(doc).fetchall())
        for q, (rel, doc) in QUESTIONS.items()
    }


# --8<-- [end:questions]


# --8<-- [start:rename]
def rename_product(conn: psycopg.Connection) -> tuple[int, int]:
    """Rename the monitor. Returns rows rewritten: (normalized, documents)."""
    relational = conn.execute("UPDATE products SET name = 'display' WHERE sku = 'MN-3'")
    documents = conn.execute("""
        UPDATE order_docs SET doc = jsonb_set(doc, '{items}', (
            SELECT jsonb_agg(CASE WHEN item->>'sku' = 'MN-3'
                                  THEN jsonb_set(item, '{name}', '"display"') ELSE item END)
            FROM jsonb_array_elements(doc->'items') AS item))
        WHERE doc @> '{"items": [{"sku": "MN-3"}]}'
    """)
    return relational.rowcount, documents.rowcount


# --8<-- [end:rename]


# --8<-- [start:price]
TODAYS_PRICE = """SELECT p.sku, sum(p.price * i.qty) FROM order_items i
                  JOIN products p ON p.sku = i.sku GROUP BY p.sku ORDER BY p.sku"""


def raise_price(conn: psycopg.Connection) -> dict[str, bool]:
    """The monitor now costs 200. Past revenue must not change: which queries agree?"""
    conn.execute("UPDATE products SET price = 200 WHERE sku = 'MN-3'")
    _, documents = QUESTIONS["revenue per product"]
    truth = conn.execute(documents).fetchall()  # each document kept the price paid
    return {
        "order_items.unit_price": conn.execute(QUESTIONS["revenue per product"][0]).fetchall()
        == truth,
        "products.price (today's)": conn.execute(TODAYS_PRICE).fetchall() == truth,
    }


# --8<-- [end:price]


def main() -> None:
    url = database_url()
    with scratch_schema(url) as conn:
        orders = sample_orders()
        load_both(conn, orders)
        print(f"{len(orders)} orders stored both ways")
        for question, (relational, document) in ask_both(conn).items():
            print(f"{question:28} same answer both ways: {relational == document}")
        revenue = dict(conn.execute(QUESTIONS["revenue per product"][0]).fetchall())
        print("revenue per product:", revenue)
        rel, doc = rename_product(conn)
        print(f"rename the monitor: {rel} row rewritten normalized, {doc} documents rewritten")
        before = (
            conn.execute(TODAYS_PRICE).fetchall()
            == conn.execute(QUESTIONS["revenue per product"][1]).fetchall()
        )
        print(f"revenue from products.price while no price has changed: same answer: {before}")
        print("the monitor's price rises from 180 to 200; past revenue, same answer as documents?")
        for source, same in raise_price(conn).items():
            print(f"  from {source:26} {same}")


if __name__ == "__main__":
    main()
