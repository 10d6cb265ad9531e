"""ACID on PostgreSQL: one runnable proof per letter, with the real errors and SQLSTATEs.

Run: python snippets/databases/acid_postgres.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/acid_postgres`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    """A uniquely named schema holding this run's tables, dropped at the end."""
    schema = f"acid_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.execute("""
            CREATE TABLE accounts (
                id      text PRIMARY KEY,
                balance integer NOT NULL CHECK (balance >= 0));
            CREATE TABLE transfers (
                id     serial PRIMARY KEY,
                src    text NOT NULL REFERENCES accounts,
                dst    text NOT NULL REFERENCES accounts,
                amount integer NOT NULL CHECK (amount > 0));
            INSERT INTO accounts VALUES ('alice', 100), ('bob', 50);
        """)
    try:
        yield schema
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def connect(url: str, schema: str, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(
        url, autocommit=autocommit, connect_timeout=5, options=f"-c search_path={schema} {TIMEOUTS}"
    )


def balances(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall())


# --8<-- [start:atomicity]
def transfer(
    conn: psycopg.Connection, src: str, dst: str, amount: int, crash_halfway: bool = False
) -> None:
    """Move money: debit, credit, record. `conn.transaction()` makes it all or nothing."""
    with conn.transaction():  # BEGIN ... COMMIT, or ROLLBACK if the block raises
        conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, src))
        if crash_halfway:
            raise RuntimeError("crash after the debit, before the credit")
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, dst))
        conn.execute(
            "INSERT INTO transfers (src, dst, amount) VALUES (%s, %s, %s)", (src, dst, amount)
        )


def atomicity(url: str, schema: str, autocommit: bool) -> dict[str, int]:
    """A transfer that fails halfway; returns the balances afterwards."""
    with connect(url, schema, autocommit=autocommit) as conn:
        try:
            if autocommit:  # no transaction: every statement commits on its own
                conn.execute("UPDATE accounts SET balance = balance - 30 WHERE id = 'alice'")
                raise RuntimeError("crash after the debit, before the credit")
            transfer(conn, "alice", "bob", 30, crash_halfway=True)
        except RuntimeError:
            pass
        return balances(conn)


# --8<-- [end:atomicity]


# --8<-- [start:consistency]
def consistency(url: str, schema: str) -> list[tuple[str, str, str]]:
    """Statements that break a rule; returns (what, SQLSTATE, error) for each."""
    attempts = {
        "overdraw alice (CHECK)": "UPDATE accounts SET balance = balance - 1000 WHERE id = 'alice'",
        "pay carol, who does not exist (FOREIGN KEY)": (
            "INSERT INTO transfers (src, dst, amount) VALUES ('alice', 'carol', 10)"
        ),
        "open a second 'bob' account (UNIQUE)": "INSERT INTO accounts VALUES ('bob', 0)",
        "leave the balance empty (NOT NULL)": "INSERT INTO accounts VALUES ('dave', NULL)",
        "open an account with no id (PRIMARY KEY)": "INSERT INTO accounts VALUES (NULL, 10)",
    }
    rejected = []
    with connect(url, schema) as conn:
        for what, sql in attempts.items():
            try:
                with conn.transaction():
                    conn.execute(sql)
            except psycopg.errors.IntegrityError as error:
                rejected.append((what, error.sqlstate or "", type(error).__name__))
    return rejected


# --8<-- [end:consistency]


# --8<-- [start:isolation]
def isolation(url: str, schema: str) -> tuple[int, int, int]:
    """What another connection sees before, during and after an uncommitted change."""
    with connect(url, schema) as writer, connect(url, schema, autocommit=True) as reader:

        def seen() -> int:
            return balances(reader)["alice"]

        before = seen()
        writer.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 'alice'")
        during = seen()  # the writer's transaction is still open: not visible
        writer.commit()
        return before, during, seen()


# --8<-- [end:isolation]


# --8<-- [start:durability]
def durability(url: str, schema: str) -> int:
    """Commit, close the connection, and count the row from a brand-new connection.

    That shows the commit is visible to everyone. Surviving a crash as well depends on the
    server: with synchronous_commit = on and fsync = on (the defaults) COMMIT returns only
    after its WAL record is flushed to disk; with either off, it may return before that."""
    with connect(url, schema) as conn:
        conn.execute("INSERT INTO transfers (src, dst, amount) VALUES ('bob', 'alice', 5)")
        conn.commit()  # durable only as far as the server's settings above promise
    with connect(url, schema) as fresh:
        row = fresh.execute("SELECT count(*) FROM transfers WHERE amount = 5").fetchone()
        return row[0] if row else 0


# --8<-- [end:durability]


def main() -> None:
    url = database_url()
    with scratch_schema(url) as schema:
        with connect(url, schema) as conn:
            print("start:", balances(conn))
        after = atomicity(url, schema, autocommit=False)
        total = sum(after.values())
        print(f"A  transfer crashed halfway inside a transaction: {after}, total {total}")
        after = atomicity(url, schema, autocommit=True)
        total = sum(after.values())
        print(f"   the same crash in autocommit mode:             {after}, total {total}")
        print("C  the database rejects what breaks a rule:")
        for what, sqlstate, error in consistency(url, schema):
            print(f"   {what:44} SQLSTATE {sqlstate} {error}")
        before, during, after_commit = isolation(url, schema)
        print(
            f"I  another connection sees alice = {before}, then {during} while the update is"
            f" uncommitted, then {after_commit} after COMMIT"
        )
        print(
            f"D  after COMMIT and closing the connection, a new connection counts"
            f" {durability(url, schema)} row"
        )


if __name__ == "__main__":
    main()
