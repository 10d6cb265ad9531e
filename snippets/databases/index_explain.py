"""EXPLAIN ANALYZE on PostgreSQL: the planner picks index, bitmap or sequential scan by selectivity.

Run: python snippets/databases/index_explain.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import psycopg

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

ROWS = 200_000


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/index_explain`, which starts one and stops it afterwards"
        )
    return url


# --8<-- [start:setup]
def create_orders(conn: psycopg.Connection, rows: int = ROWS) -> None:
    """A temporary table (gone when the session ends) of orders with a random amount,
    so rows with similar amounts are scattered all over the heap."""
    conn.execute("SELECT setseed(0.42)")
    conn.execute("""
        CREATE TEMP TABLE orders (
            id       integer PRIMARY KEY,
            customer integer NOT NULL,
            amount   integer NOT NULL,
            note     text    NOT NULL)""")
    conn.execute(
        """
        INSERT INTO orders
        SELECT i, i %% 5000, (random() * 1000000)::int, repeat('x', 60)
        FROM generate_series(1, %s) AS i""",
        [rows],
    )
    conn.execute("CREATE INDEX orders_amount ON orders (amount)")
    conn.execute("VACUUM ANALYZE orders")  # statistics for the planner, visibility map


# --8<-- [end:setup]


# --8<-- [start:explain]
def explain(
    conn: psycopg.Connection,
    query: str,
    params: list[Any] | None = None,
) -> dict[str, Any]:
    """Run the query under EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON); return the top plan node."""
    row = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", params).fetchone()
    assert row is not None
    return row[0][0]["Plan"]


def node_types(plan: dict[str, Any]) -> Iterator[str]:
    """Every node type in the plan tree, parents before children."""
    yield plan["Node Type"]
    for child in plan.get("Plans", []):
        yield from node_types(child)


def pages(plan: dict[str, Any]) -> int:
    """8 KiB pages the whole plan touched, in the buffer cache or read from the OS
    (a temporary table lives in the session's local buffers, other tables in shared ones)."""
    kinds = ["Shared Hit", "Shared Read", "Local Hit", "Local Read"]
    return sum(plan[f"{kind} Blocks"] for kind in kinds)


def scan_by_selectivity(conn: psycopg.Connection) -> list[tuple[float, dict[str, Any]]]:
    """Same query shape, wider and wider ranges of amount: what fraction -> which plan."""
    results = []
    for upper in [5, 20_000, 600_000]:
        plan = explain(conn, "SELECT * FROM orders WHERE amount < %s", [upper])
        results.append((plan["Actual Rows"] / ROWS, plan))
    return results


# --8<-- [end:explain]


def main() -> None:
    with psycopg.connect(
        database_url(), autocommit=True, connect_timeout=5, options=TIMEOUTS
    ) as conn:
        create_orders(conn)
        print(f"orders: {ROWS} rows, index on amount; SELECT * FROM orders WHERE amount < X")
        for fraction, plan in scan_by_selectivity(conn):
            print(
                f"  {fraction:7.3%} of rows -> {' > '.join(node_types(plan)):<36}"
                f" ~{pages(plan)} pages, {plan['Actual Total Time']:.1f} ms"
            )


if __name__ == "__main__":
    main()
