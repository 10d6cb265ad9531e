"""PostgreSQL's planner picks a join from its statistics; stale statistics pick the wrong one.

Run: python snippets/databases/plan_postgres.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

QUERY = """
    SELECT c.name, o.total
    FROM customers c JOIN orders o ON o.customer_id = c.id
    WHERE c.country = 'IS'
"""


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/plan_postgres`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def scratch_schema(url: str) -> Iterator[psycopg.Connection]:
    """A connection whose search_path is a fresh schema; the schema is dropped at the end."""
    schema = f"plan_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        try:
            yield conn
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# --8<-- [start:setup]
def create_tables(conn: psycopg.Connection, customers: int = 10_000) -> None:
    """Customers in 100 countries, 'IS' only 10 of them; 5 orders each. Then ANALYZE."""
    conn.execute("""
        CREATE TABLE customers (id int PRIMARY KEY, name text, country text)
            WITH (autovacuum_enabled = false);  -- no background ANALYZE behind our back
        CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, total int)
            WITH (autovacuum_enabled = false);
    """)
    conn.execute(
        """INSERT INTO customers
           SELECT i, 'customer ' || i, CASE WHEN i < 10 THEN 'IS' ELSE 'C' || mod(i, 99) END
           FROM generate_series(0, %s - 1) AS i""",
        (customers,),
    )
    conn.execute(
        "INSERT INTO orders (customer_id, total)"
        " SELECT mod(i, %s), i FROM generate_series(1, %s) AS i",
        (customers, 5 * customers),
    )
    conn.execute("CREATE INDEX ON orders (customer_id)")
    conn.execute("ANALYZE customers; ANALYZE orders")


# --8<-- [end:setup]


# --8<-- [start:explain]
def plan(conn: psycopg.Connection, analyze: bool = False) -> dict[str, Any]:
    """EXPLAIN (FORMAT JSON): the plan tree as nested dicts."""
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    row = conn.execute(f"EXPLAIN ({options}) {QUERY}").fetchone()
    assert row is not None
    return row[0][0]["Plan"]


def node_types(node: dict[str, Any]) -> list[str]:
    """Every node of the plan, top-down: ['Hash Join', 'Seq Scan', 'Hash', 'Seq Scan']."""
    return [node["Node Type"]] + [t for child in node.get("Plans", []) for t in node_types(child)]


def join_type(node: dict[str, Any]) -> str:
    return next(t for t in node_types(node) if t in ("Nested Loop", "Hash Join", "Merge Join"))


def customer_scan(node: dict[str, Any]) -> dict[str, Any]:
    """The node that reads customers: its estimated vs actual rows are the statistics at work."""
    if node.get("Relation Name") == "customers":
        return node
    return next(customer_scan(c) for c in node.get("Plans", []) if "customers" in str(c))


# --8<-- [end:explain]


# --8<-- [start:story]
def planner_story(conn: psycopg.Connection) -> list[tuple[str, str, int, int]]:
    """(moment, chosen join, estimated IS customers, actual IS customers) at three moments."""
    moments = []

    def record(moment: str) -> None:
        root = plan(conn, analyze=True)
        scan = customer_scan(root)
        moments.append((moment, join_type(root), scan["Plan Rows"], int(scan["Actual Rows"])))

    create_tables(conn)
    record("fresh statistics, 10 customers in IS")
    conn.execute("UPDATE customers SET country = 'IS' WHERE mod(id, 2) = 0")  # now 5000 are
    record("half the customers moved to IS, stale statistics")
    conn.execute("ANALYZE customers")
    record("after ANALYZE")
    return moments


# --8<-- [end:story]


def forced_costs(conn: psycopg.Connection) -> dict[str, float]:
    """The estimated total cost of each join method, by disabling the other two."""
    costs = {}
    switches = {"Nested Loop": "nestloop", "Hash Join": "hashjoin", "Merge Join": "mergejoin"}
    for wanted in switches:
        with conn.transaction():
            for other, setting in switches.items():
                if other != wanted:
                    conn.execute(f"SET LOCAL enable_{setting} = off")
            root = plan(conn)
            assert join_type(root) == wanted
            costs[wanted] = root["Total Cost"]
    return costs


def main() -> None:
    url = database_url()
    with scratch_schema(url) as conn:
        for moment, join, estimated, actual in planner_story(conn):
            print(f"{moment:50} {join:12} estimated ~{estimated} IS customers, actual {actual}")
        print("estimated cost of each join for the same query (lowest wins):")
        for join, cost in sorted(forced_costs(conn).items(), key=lambda kv: kv[1]):
            print(f"  {join:12} {cost:.1f}")


if __name__ == "__main__":
    main()
