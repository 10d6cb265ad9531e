"""Three fixes for the lost update on PostgreSQL: FOR UPDATE, a version column, a retry loop.

Run: python snippets/databases/isolation_fixes.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from psycopg import IsolationLevel

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

T = TypeVar("T")


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/isolation_fixes`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    schema = f"fix_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def connect(url: str, schema: str, level: IsolationLevel | None = None) -> psycopg.Connection:
    conn = psycopg.connect(url, connect_timeout=5, options=f"-c search_path={schema} {TIMEOUTS}")
    conn.isolation_level = level
    return conn


def reset(url: str, schema: str) -> None:
    with psycopg.connect(
        url, autocommit=True, connect_timeout=5, options=f"-c search_path={schema} {TIMEOUTS}"
    ) as conn:
        conn.execute("""
            DROP TABLE IF EXISTS counters;
            CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL, version int NOT NULL);
            INSERT INTO counters VALUES (1, 100, 1);
        """)


def final_value(url: str, schema: str) -> int:
    with connect(url, schema) as conn:
        row = conn.execute("SELECT value FROM counters WHERE id = 1").fetchone()
        assert row is not None
        return row[0]


# --8<-- [start:wait]
def wait_until_blocked(url: str, waiter_pid: int, timeout: float = 5.0) -> list[int]:
    """Poll pg_blocking_pids() until the waiter's backend waits on a lock; return who blocks it."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as observer:
        while time.monotonic() < deadline:
            row = observer.execute("SELECT pg_blocking_pids(%s)", (waiter_pid,)).fetchone()
            if row and row[0]:
                return row[0]
            time.sleep(0.005)
    raise TimeoutError(f"backend {waiter_pid} never waited for a lock")


# --8<-- [end:wait]


# --8<-- [start:for_update]
def with_for_update(url: str, schema: str) -> tuple[int, bool]:
    """Both read with SELECT ... FOR UPDATE. Returns (final value, whether T2 had to wait)."""
    reset(url, schema)
    with connect(url, schema) as t1, connect(url, schema) as t2:
        read1 = t1.execute("SELECT value FROM counters WHERE id = 1 FOR UPDATE").fetchone()
        assert read1 is not None  # T1 now holds the row lock until it commits

        def t2_increment() -> None:  # T2 in a thread: its FOR UPDATE blocks
            row = t2.execute("SELECT value FROM counters WHERE id = 1 FOR UPDATE").fetchone()
            assert row is not None  # ... and returns T1's committed value, 110
            t2.execute("UPDATE counters SET value = %s WHERE id = 1", (row[0] + 10,))
            t2.commit()

        t1_pid, t2_pid = t1.info.backend_pid, t2.info.backend_pid
        worker = threading.Thread(target=t2_increment)
        worker.start()
        blockers = wait_until_blocked(url, t2_pid)
        t1.execute("UPDATE counters SET value = %s WHERE id = 1", (read1[0] + 10,))
        t1.commit()  # releases the lock: T2 wakes up
        worker.join(timeout=10)
        if worker.is_alive():  # T2 never got the lock (lock_timeout would have raised)
            raise TimeoutError("T2 was still waiting 10 s after T1 committed")
    return final_value(url, schema), t1_pid in blockers


# --8<-- [end:for_update]


# --8<-- [start:optimistic]
def optimistic_increment(conn: psycopg.Connection, read: tuple[int, int]) -> bool:
    """Write only if nobody changed the row since we read it (same version)."""
    value, version = read
    cur = conn.execute(
        "UPDATE counters SET value = %s, version = version + 1 WHERE id = 1 AND version = %s",
        (value + 10, version),
    )
    conn.commit()
    return cur.rowcount == 1  # 0 rows: someone else wrote first


def with_version_column(url: str, schema: str) -> tuple[int, int]:
    """The lost-update schedule with a version check. Returns (final value, T2's attempts)."""
    reset(url, schema)
    select = "SELECT value, version FROM counters WHERE id = 1"
    with connect(url, schema) as t1, connect(url, schema) as t2:
        read1, read2 = t1.execute(select).fetchone(), t2.execute(select).fetchone()
        assert read1 and read2  # both read (100, version 1)
        assert optimistic_increment(t1, read1)  # T1 writes 110, version 2
        attempts = 1
        while not optimistic_increment(t2, read2):  # T2's version 1 is stale: 0 rows
            attempts += 1
            read2 = t2.execute(select).fetchone()  # read again, recompute, try again
            assert read2
    return final_value(url, schema), attempts


# --8<-- [end:optimistic]


# --8<-- [start:retry]
def retry_serialization_failures(
    conn: psycopg.Connection, work: Callable[[], T], tries: int = 5
) -> tuple[T, int]:
    """Run `work` in a transaction; on SQLSTATE 40001 roll back and run it again."""
    for attempt in range(1, tries + 1):
        try:
            result = work()
            conn.commit()
            return result, attempt
        except psycopg.errors.SerializationFailure:
            conn.rollback()  # the whole transaction, reads included, starts over
    raise RuntimeError(f"still conflicting after {tries} tries")


def increment(conn: psycopg.Connection, meanwhile: Callable[[], None] | None = None) -> int:
    row = conn.execute("SELECT value FROM counters WHERE id = 1").fetchone()
    assert row is not None
    if meanwhile:
        meanwhile()  # another transaction commits between our read and our write
    conn.execute("UPDATE counters SET value = %s WHERE id = 1", (row[0] + 10,))
    return row[0] + 10


def with_retries(url: str, schema: str) -> tuple[int, int]:
    """The lost-update schedule at REPEATABLE READ, T2 retried. Returns (final, T2 attempts)."""
    reset(url, schema)
    with (
        connect(url, schema, IsolationLevel.REPEATABLE_READ) as t1,
        connect(url, schema, IsolationLevel.REPEATABLE_READ) as t2,
    ):

        def t1_commits() -> None:
            increment(t1)
            t1.commit()

        interleave = [t1_commits]  # T1 sneaks in during T2's first attempt only
        _, attempts = retry_serialization_failures(
            t2, lambda: increment(t2, interleave.pop() if interleave else None)
        )
    return final_value(url, schema), attempts


# --8<-- [end:retry]


def main() -> None:
    url = database_url()
    with scratch_schema(url) as schema:
        final, waited = with_for_update(url, schema)
        print(f"SELECT ... FOR UPDATE: final {final}; T2 waited for T1's row lock: {waited}")
        final, attempts = with_version_column(url, schema)
        print(
            f"version column:        final {final};"
            f" T2's stale write matched 0 rows, it succeeded on attempt {attempts}"
        )
        final, attempts = with_retries(url, schema)
        print(f"retry on 40001:        final {final}; T2 committed on attempt {attempts}")


if __name__ == "__main__":
    main()
