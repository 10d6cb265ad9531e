"""Composite index column order decides which queries it serves; a covering index skips the table.

Run: python snippets/databases/index_composite.py
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
            " `make run S=databases/index_composite`, which starts one and stops it afterwards"
        )
    return url


def create_visits(conn: psycopg.Connection, rows: int = ROWS) -> None:
    """A temporary table of page visits from 5,000 customers over 365 days, inserted in
    time order: one day's rows sit together in the heap, one customer's are spread out."""
    conn.execute("""
        CREATE TEMP TABLE visits (
            customer integer NOT NULL,
            day      integer NOT NULL,
            seconds  integer NOT NULL,
            note     text    NOT NULL)""")
    conn.execute(
        """
        INSERT INTO visits
        SELECT i %% 5000, (i - 1) * 365 / %s, i %% 600, repeat('x', 60)
        FROM generate_series(1, %s) AS i""",
        [rows, rows],
    )
    conn.execute("CREATE INDEX visits_customer_day ON visits (customer, day)")
    # ANALYZE reads a random sample of 300 x default_statistics_target rows (30,000 by
    # default); from a sample, the cost of `day = 100` on (customer, day) came out on
    # either side of a sequential scan's, so the plan changed from run to run. 1,000 makes
    # the sample 300,000 rows: every row here, the same statistics and plan every run.
    conn.execute("SET default_statistics_target = 1000")
    conn.execute("VACUUM ANALYZE visits")  # statistics, and the visibility map


def explain(conn: psycopg.Connection, query: str) -> dict[str, Any]:
    row = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}").fetchone()
    assert row is not None
    return row[0][0]["Plan"]


def node_types(plan: dict[str, Any]) -> Iterator[str]:
    yield plan["Node Type"]
    for child in plan.get("Plans", []):
        yield from node_types(child)


def pages(plan: dict[str, Any]) -> int:
    kinds = ["Shared Hit", "Shared Read", "Local Hit", "Local Read"]
    return sum(plan[f"{kind} Blocks"] for kind in kinds)


# --8<-- [start:order]
def column_order(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """An index on (customer, day) is sorted by customer first: it finds one customer's
    day at once, but `day = 100` alone is scattered through the whole index."""
    plans = {
        "customer = 42 AND day = 100, index (customer, day)": explain(
            conn, "SELECT * FROM visits WHERE customer = 42 AND day = 100"
        ),
        "day = 100, index (customer, day)": explain(conn, "SELECT * FROM visits WHERE day = 100"),
    }
    conn.execute("CREATE INDEX visits_day_customer ON visits (day, customer)")
    conn.execute("ANALYZE visits")
    plans["day = 100, index (day, customer)"] = explain(
        conn, "SELECT * FROM visits WHERE day = 100"
    )
    conn.execute("DROP INDEX visits_day_customer")
    return plans


# --8<-- [end:order]


# --8<-- [start:covering]
def covering(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """SELECT only columns the index holds and PostgreSQL never visits the table
    (Index Only Scan), as long as the visibility map says the pages are all-visible."""
    return {
        "SELECT day ... WHERE customer = 42": explain(
            conn, "SELECT day FROM visits WHERE customer = 42"
        ),
        "SELECT seconds ... WHERE customer = 42": explain(
            conn, "SELECT seconds FROM visits WHERE customer = 42"
        ),
    }


# --8<-- [end:covering]


def main() -> None:
    with psycopg.connect(
        database_url(), autocommit=True, connect_timeout=5, options=TIMEOUTS
    ) as conn:
        create_visits(conn)
        print(f"visits: {ROWS} rows")
        for title, results in [
            ("column order", column_order(conn)),
            ("covering index", covering(conn)),
        ]:
            print(title)
            for query, plan in results.items():
                fetches = plan.get("Heap Fetches")
                extra = f", {fetches} heap fetches" if fetches is not None else ""
                print(f"  {query:<52} {' > '.join(node_types(plan))}: ~{pages(plan)} pages{extra}")


if __name__ == "__main__":
    main()
