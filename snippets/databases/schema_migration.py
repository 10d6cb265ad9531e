"""Renaming a column under live traffic: in one step writes fail; expand/contract loses none.

Run: python snippets/databases/schema_migration.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

INITIAL_ROWS = 2000


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/schema_migration`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def users_table(url: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """A fresh schema with users(id, fullname NOT NULL) holding INITIAL_ROWS rows."""
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.execute("SET lock_timeout = '2s'")  # DDL must not queue forever behind traffic
        conn.execute("CREATE TABLE users (id serial PRIMARY KEY, fullname text NOT NULL)")
        conn.execute(
            "INSERT INTO users (fullname) SELECT 'old user ' || i FROM generate_series(1, %s) i",
            (INITIAL_ROWS,),
        )
        try:
            yield conn, schema
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# --8<-- [start:writer]
class Writer(threading.Thread):
    """The application: inserts users as fast as it can. `version` is the deployed code:
    v1 writes the old column `fullname`, v2 the new column `display_name`."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(daemon=True)
        self.url, self.schema = url, schema
        self.version, self.ok, self.failed = 1, 0, 0
        self.errors: set[str] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        options = f"-c search_path={self.schema} {TIMEOUTS}"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5, options=options) as conn:
            while not self.stopping.is_set():
                column = "fullname" if self.version == 1 else "display_name"
                try:
                    conn.execute(f"INSERT INTO users ({column}) VALUES (%s)", (f"user {self.ok}",))
                    self.ok += 1
                except psycopg.Error as error:
                    self.failed += 1
                    self.errors.add(f"{error.sqlstate} {type(error).__name__}")

    def wait_for(self, *, ok: int = 0, failed: int = 0, timeout: float = 5.0) -> None:
        """Let traffic flow: wait (with a deadline) until counters reach the given values."""
        deadline = time.monotonic() + timeout
        while self.ok < ok or self.failed < failed:
            if time.monotonic() > deadline or not self.is_alive():
                raise TimeoutError(f"writer stuck at ok={self.ok}, failed={self.failed}")
            time.sleep(0.001)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
        if self.is_alive():  # one INSERT can take at most statement_timeout (10 s)
            raise TimeoutError("the writer did not stop within 10 s")


# --8<-- [end:writer]


# --8<-- [start:naive]
def rename_in_one_step(url: str) -> tuple[int, int, int, set[str]]:
    """Migrate, then deploy code for the new name. Returns (ok, failed, rows, errors)."""
    with users_table(url) as (conn, schema):
        writer = Writer(url, schema)
        writer.start()
        try:
            writer.wait_for(ok=50)
            conn.execute("ALTER TABLE users RENAME COLUMN fullname TO display_name")
            writer.wait_for(failed=20)  # v1 is still running: the deploy is not instant
            writer.version = 2
            writer.wait_for(ok=writer.ok + 50)
        finally:
            writer.stop()
        row = conn.execute("SELECT count(*) FROM users").fetchone()
        return writer.ok, writer.failed, (row[0] if row else 0), writer.errors


# --8<-- [end:naive]


# --8<-- [start:expand_contract]
SYNC = """
    CREATE FUNCTION sync_names() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN  -- old code writes fullname, new code display_name: keep both filled
        NEW.display_name := coalesce(NEW.display_name, NEW.fullname);
        NEW.fullname := coalesce(NEW.fullname, NEW.display_name);
        RETURN NEW;
    END $$;
    CREATE TRIGGER sync_names BEFORE INSERT OR UPDATE ON users
        FOR EACH ROW EXECUTE FUNCTION sync_names();
"""


def expand_contract(url: str, batch: int = 500) -> tuple[int, int, int, list[str]]:
    """The same rename in five safe steps while the writer keeps writing."""
    steps = []
    with users_table(url) as (conn, schema):
        writer = Writer(url, schema)
        writer.start()
        try:
            writer.wait_for(ok=50)

            def step(name: str) -> None:  # after each step, let at least 20 more writes through
                steps.append(f"{name} (writes so far: ~{writer.ok})")
                writer.wait_for(ok=writer.ok + 20)

            conn.execute("ALTER TABLE users ADD COLUMN display_name text")  # metadata only
            conn.execute(SYNC)
            step("1 expand: add nullable display_name, trigger syncs both columns")
            while True:  # short transactions: no long lock, no giant WAL burst
                cur = conn.execute(
                    """UPDATE users SET display_name = fullname WHERE id IN (
                           SELECT id FROM users WHERE display_name IS NULL LIMIT %s)""",
                    (batch,),
                )
                if cur.rowcount == 0:
                    break
            step("2 backfill old rows in batches")
            conn.execute("""ALTER TABLE users ADD CONSTRAINT display_name_present
                            CHECK (display_name IS NOT NULL) NOT VALID""")  # new rows only
            conn.execute("ALTER TABLE users VALIDATE CONSTRAINT display_name_present")  # no block
            step("3 enforce: CHECK NOT VALID, then VALIDATE")
            writer.version = 2
            step("4 deploy code that writes display_name")
            with conn.transaction():  # together: between the two, v2 rows would lack fullname
                conn.execute("DROP TRIGGER sync_names ON users")
                conn.execute("ALTER TABLE users DROP COLUMN fullname")
            step("5 contract: drop the trigger and the old column")
        finally:
            writer.stop()
        row = conn.execute("SELECT count(*), count(display_name) FROM users").fetchone()
        assert row is not None and row[0] == row[1], "a row without display_name"
        return writer.ok, writer.failed, row[0], steps


# --8<-- [end:expand_contract]


def main() -> None:
    url = database_url()
    ok, failed, rows, errors = rename_in_one_step(url)
    print(f"rename in one step:  ~{ok} writes ok, ~{failed} failed with {sorted(errors)}")
    print(
        f"  {INITIAL_ROWS} rows before + writes ok == rows in the table:", rows == INITIAL_ROWS + ok
    )
    ok, failed, rows, steps = expand_contract(url)
    print("expand / contract, while the writer kept writing:")
    for step in steps:
        print(f"  {step}")
    print(f"  ~{ok} writes ok, {failed} failed")
    print(
        f"  {INITIAL_ROWS} rows before + writes ok == rows in the table:", rows == INITIAL_ROWS + ok
    )


if __name__ == "__main__":
    main()
