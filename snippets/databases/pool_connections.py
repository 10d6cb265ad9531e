"""A new PostgreSQL connection per request vs a pool, and a pool that runs out (PoolTimeout).

Run: python snippets/databases/pool_connections.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"
LIMITS = {"connect_timeout": 5, "options": TIMEOUTS}  # for every connection, pooled or not
REQUESTS, ROUNDS = 20, 5  # per variant and round; the ratio's spread narrows with rounds


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/pool_connections`, which starts one and stops it afterwards"
        )
    return url


# --8<-- [start:cost]
def request_with_new_connection(url: str) -> int:
    """TCP handshake, startup message, authentication, a new backend process — then a query."""
    with psycopg.connect(url, **LIMITS) as conn:
        row = conn.execute("SELECT 1").fetchone()
        return row[0] if row else 0


def request_with_pool(pool: ConnectionPool) -> int:
    """Borrow an open connection, query, give it back: leaving the block commits (rolls
    back on an exception); session settings such as SET stay with the connection."""
    with pool.connection() as conn:
        row = conn.execute("SELECT 1").fetchone()
        return row[0] if row else 0


def compare(url: str, n: int = REQUESTS, rounds: int = ROUNDS) -> tuple[float, float]:
    """Median seconds per request: (new connection each time, pooled)."""
    new, pooled = [], []
    with ConnectionPool(url, min_size=2, max_size=2, kwargs=LIMITS, open=True) as pool:
        pool.wait(timeout=5)  # readiness: min_size connections are open
        for _ in range(rounds):  # interleaved, so both see the same machine load
            for sample, run in (
                (new, lambda: request_with_new_connection(url)),
                (pooled, lambda: request_with_pool(pool)),
            ):
                start = time.perf_counter()
                for _ in range(n):
                    run()
                sample.append((time.perf_counter() - start) / n)
    return statistics.median(new), statistics.median(pooled)


# --8<-- [end:cost]


# --8<-- [start:exhaustion]
def exhaust(url: str, size: int = 2, timeout: float = 0.2) -> tuple[str, float]:
    """Hold every connection of the pool, then ask for one more."""
    with ConnectionPool(
        url, min_size=size, max_size=size, timeout=timeout, kwargs=LIMITS, open=True
    ) as pool:
        pool.wait(timeout=5)
        held = [pool.getconn() for _ in range(size)]  # e.g. slow requests holding them
        start = time.perf_counter()
        try:
            with pool.connection():  # waits up to `timeout` for one to come back
                outcome = "got a connection"
        except PoolTimeout as error:
            outcome = f"{type(error).__name__}: {error}"
        waited = time.perf_counter() - start
        for conn in held:
            pool.putconn(conn)
        return outcome, waited


# --8<-- [end:exhaustion]


def main() -> None:
    url = database_url()
    new, pooled = compare(url)
    print(
        f"new connection per request: {new * 1000:.2f} ms per request"
        f" (median of {ROUNDS} x {REQUESTS})"
    )
    print(f"connection from a pool:     {pooled * 1000:.2f} ms per request")
    print(f"the pool was {new / pooled:.1f}x faster")
    outcome, waited = exhaust(url)
    print(f"pool of 2, both busy, a third request: {outcome}")
    print(f"it waited {waited:.2f} s, the pool's timeout, instead of forever")


if __name__ == "__main__":
    main()
