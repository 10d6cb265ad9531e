"""Isolation anomalies on PostgreSQL: two connections, one fixed interleaving, each level.

Run: python snippets/databases/isolation_anomalies.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import IsolationLevel

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

READ_UNCOMMITTED = IsolationLevel.READ_UNCOMMITTED
READ_COMMITTED = IsolationLevel.READ_COMMITTED
REPEATABLE_READ = IsolationLevel.REPEATABLE_READ
SERIALIZABLE = IsolationLevel.SERIALIZABLE


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/isolation_anomalies`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    """A uniquely named schema for this run's tables, dropped at the end."""
    schema = f"iso_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def reset(url: str, schema: str) -> None:
    """Fresh rows before each scenario: one counter at 100, two doctors on call."""
    with psycopg.connect(
        url, autocommit=True, connect_timeout=5, options=f"-c search_path={schema} {TIMEOUTS}"
    ) as conn:
        conn.execute("""
            DROP TABLE IF EXISTS counters, doctors;
            CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL);
            CREATE TABLE doctors (name text PRIMARY KEY, on_call bool NOT NULL);
            INSERT INTO counters VALUES (1, 100);
            INSERT INTO doctors VALUES ('alice', true), ('bob', true);
        """)


# --8<-- [start:sessions]
@contextmanager
def two_sessions(
    url: str, schema: str, level: IsolationLevel
) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """T1 and T2: two real connections at `level`. One thread drives both, step by step,
    in a fixed order, so every run interleaves them the same way."""
    reset(url, schema)
    t1 = psycopg.connect(url, connect_timeout=5, options=f"-c search_path={schema} {TIMEOUTS}")
    t2 = psycopg.connect(url, connect_timeout=5, options=f"-c search_path={schema} {TIMEOUTS}")
    t1.isolation_level = t2.isolation_level = level  # psycopg sends BEGIN ISOLATION LEVEL ...
    try:
        yield t1, t2
    finally:
        t1.close()
        t2.close()


def value(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


# --8<-- [end:sessions]


# --8<-- [start:lost_update]
def lost_update(url: str, schema: str, level: IsolationLevel) -> tuple[int, str | None]:
    """Both add 10 by read-modify-write. Returns (final value, T2's SQLSTATE if it failed)."""
    with two_sessions(url, schema, level) as (t1, t2):
        read1 = value(t1, "SELECT value FROM counters WHERE id = 1")  # T1 reads 100
        read2 = value(t2, "SELECT value FROM counters WHERE id = 1")  # T2 reads 100
        t1.execute("UPDATE counters SET value = %s WHERE id = 1", (read1 + 10,))
        t1.commit()  # T1 wrote 110
        error = None
        try:
            t2.execute("UPDATE counters SET value = %s WHERE id = 1", (read2 + 10,))
            t2.commit()  # T2 writes 110 too: T1's increment is gone
        except psycopg.errors.SerializationFailure as e:
            t2.rollback()
            error = e.sqlstate
        return value(t1, "SELECT value FROM counters WHERE id = 1"), error


# --8<-- [end:lost_update]


# --8<-- [start:write_skew]
def write_skew(url: str, schema: str, level: IsolationLevel) -> tuple[int, str | None]:
    """Rule: at least one doctor on call. Each checks there are two, then leaves.
    Returns (doctors on call afterwards, the SQLSTATE of whichever failed)."""
    on_call = "SELECT count(*) FROM doctors WHERE on_call"
    with two_sessions(url, schema, level) as (t1, t2):
        error = None
        try:
            if value(t1, on_call) >= 2:  # T1: 2 on call, alice may leave
                t1.execute("UPDATE doctors SET on_call = false WHERE name = 'alice'")
            if value(t2, on_call) >= 2:  # T2: still 2 in its snapshot, bob may leave
                t2.execute("UPDATE doctors SET on_call = false WHERE name = 'bob'")
            t1.commit()
            t2.commit()  # different rows: no write conflict, only a broken rule
        except psycopg.errors.SerializationFailure as e:
            t1.rollback()
            t2.rollback()
            error = e.sqlstate
        t1.rollback()
        return value(t1, on_call), error


# --8<-- [end:write_skew]


# --8<-- [start:reads]
def non_repeatable_read(url: str, schema: str, level: IsolationLevel) -> tuple[int, int]:
    """T1 reads the same row twice; T2 commits a change in between."""
    with two_sessions(url, schema, level) as (t1, t2):
        first = value(t1, "SELECT value FROM counters WHERE id = 1")
        t2.execute("UPDATE counters SET value = 999 WHERE id = 1")
        t2.commit()
        return first, value(t1, "SELECT value FROM counters WHERE id = 1")


def phantom(url: str, schema: str, level: IsolationLevel) -> tuple[int, int]:
    """T1 counts the rows matching a condition twice; T2 commits a new matching row."""
    with two_sessions(url, schema, level) as (t1, t2):
        first = value(t1, "SELECT count(*) FROM doctors WHERE on_call")
        t2.execute("INSERT INTO doctors VALUES ('carol', true)")
        t2.commit()
        return first, value(t1, "SELECT count(*) FROM doctors WHERE on_call")


def dirty_read(url: str, schema: str, level: IsolationLevel) -> int:
    """What T1 reads while T2's change is not committed yet."""
    with two_sessions(url, schema, level) as (t1, t2):
        t2.execute("UPDATE counters SET value = 999 WHERE id = 1")  # not committed
        seen = value(t1, "SELECT value FROM counters WHERE id = 1")
        t2.rollback()
        return seen


# --8<-- [end:reads]


LEVELS = {
    "READ COMMITTED": READ_COMMITTED,
    "REPEATABLE READ": REPEATABLE_READ,
    "SERIALIZABLE": SERIALIZABLE,
}


def main() -> None:
    url = database_url()
    with scratch_schema(url) as schema:
        seen = dirty_read(url, schema, READ_UNCOMMITTED)
        print(f"dirty read at READ UNCOMMITTED: T1 sees {seen} (PostgreSQL never shows 999)")
        print("non-repeatable read, T1 reads the row twice:")
        for name, level in LEVELS.items():
            first, second = non_repeatable_read(url, schema, level)
            print(f"  {name:16} {first} then {second}")
        print("phantom, T1 counts on-call doctors twice:")
        for name, level in LEVELS.items():
            first, second = phantom(url, schema, level)
            print(f"  {name:16} {first} then {second}")
        print("lost update, both add 10 to 100 (read-modify-write):")
        for name, level in LEVELS.items():
            final, error = lost_update(url, schema, level)
            what = f"T2 failed with SQLSTATE {error}" if error else "both committed"
            print(f"  {name:16} final {final}, {what}")
        print("write skew, each doctor leaves if two are on call:")
        for name, level in LEVELS.items():
            left, error = write_skew(url, schema, level)
            what = f"one failed with SQLSTATE {error}" if error else "both committed"
            print(f"  {name:16} {left} on call afterwards, {what}")


if __name__ == "__main__":
    main()
