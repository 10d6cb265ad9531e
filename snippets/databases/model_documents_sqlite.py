"""The same orders normalized and as JSON documents in SQLite, asked the same questions.

Run: python snippets/databases/model_documents_sqlite.py
"""

from __future__ import annotations

import json
import random
import sqlite3

PRODUCTS = {
    "KB-1": ("keyboard", 45),
    "MS-2": ("mouse", 20),
    "MN-3": ("monitor", 180),
    "CB-4": ("cable", 8),
    "HS-5": ("headset", 60),
}


def sample_orders(n: int = 200, seed: int = 3) -> list[dict]:
    """The same seeded orders as the PostgreSQL version."""
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


def load_both(conn: sqlite3.Connection, orders: list[dict]) -> None:
    conn.executescript("""
        CREATE TABLE products (sku text PRIMARY KEY, name text NOT NULL, price int NOT NULL);
        CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL);
        CREATE TABLE order_items (order_id int, sku text, qty int, unit_price int NOT NULL,
                                  PRIMARY KEY (order_id, sku));
        CREATE TABLE order_docs (id int PRIMARY KEY, doc text NOT NULL CHECK (json_valid(doc)));
    """)
    conn.executemany(
        "INSERT INTO products VALUES (?, ?, ?)",
        [(sku, name, price) for sku, (name, price) in PRODUCTS.items()],
    )
    conn.executemany("INSERT INTO orders VALUES (?, ?)", [(o["id"], o["customer"]) for o in orders])
    conn.executemany(
        "INSERT INTO order_items VALUES (?, ?, ?, ?)",
        [(o["id"], i["sku"], i["qty"], i["price"]) for o in orders for i in o["items"]],
    )
    conn.executemany(
        "INSERT INTO order_docs VALUES (?, ?)", [(o["id"], json.dumps(o)) for o in orders]
    )


# --8<-- [start:questions]
QUESTIONS = {
    "revenue per product": (
        """SELECT sku, sum(unit_price * qty) FROM order_items GROUP BY sku ORDER BY sku""",
        """SELECT item.value ->> 'sku', sum((item.value ->> 'price') * (item.value ->> 'qty'))
           FROM order_docs, json_each(order_docs.doc, '$.items') AS item
           GROUP BY 1 ORDER BY 1""",
    ),
    "orders containing a monitor": (
        "SELECT count(*) FROM order_items WHERE sku = 'MN-3'",
        """SELECT count(*) FROM order_docs WHERE EXISTS (
               SELECT 1 FROM json_each(order_docs.doc, '$.items') AS item
               WHERE item.value ->> 'sku' = 'MN-3')""",
    ),
}
# --8<-- [end:questions]


def ask_both(conn: sqlite3.Connection) -> dict[str, tuple[list[tuple], list[tuple]]]:
    return {
        q: (conn.execute(rel).fetchall(), conn.execute(doc).fetchall())
        for q, (rel, doc) in QUESTIONS.items()
    }


def main() -> None:
    conn = sqlite3.connect(":memory:")
    load_both(conn, sample_orders())
    for question, (relational, document) in ask_both(conn).items():
        print(f"{question:28} same answer both ways: {relational == document}")
    print("revenue per product:", dict(conn.execute(QUESTIONS["revenue per product"][0])))
    conn.close()


if __name__ == "__main__":
    main()
