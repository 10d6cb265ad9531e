"""SQLite beside PostgreSQL: the lost-update and write-skew schedules, on one database file.

Run: python snippets/databases/isolation_sqlite.py
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path


def open_two(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")  # readers keep a snapshot, like MVCC
    setup.executescript("""
        DROP TABLE IF EXISTS counters; DROP TABLE IF EXISTS doctors;
        CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL);
        CREATE TABLE doctors (name text PRIMARY KEY, on_call bool NOT NULL);
        INSERT INTO counters VALUES (1, 100);
        INSERT INTO doctors VALUES ('alice', true), ('bob', true);
    """)
    setup.close()
    # timeout=0: report a conflict at once instead of waiting for the other writer
    return (
        sqlite3.connect(path, isolation_level=None, timeout=0),
        sqlite3.connect(path, isolation_level=None, timeout=0),
    )


def value(conn: sqlite3.Connection, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


# --8<-- [start:schedules]
def lost_update(path: Path) -> tuple[int, str | None]:
    """Same schedule as on PostgreSQL: both read 100, T1 writes 110 and commits, then T2."""
    t1, t2 = open_two(path)
    t1.execute("BEGIN")
    t2.execute("BEGIN")
    read1 = value(t1, "SELECT value FROM counters WHERE id = 1")
    read2 = value(t2, "SELECT value FROM counters WHERE id = 1")  # T2's snapshot starts here
    t1.execute("UPDATE counters SET value = ? WHERE id = 1", (read1 + 10,))
    t1.execute("COMMIT")
    error = None
    try:  # T2's snapshot is older than the last commit: it may not become a writer
        t2.execute("UPDATE counters SET value = ? WHERE id = 1", (read2 + 10,))
        t2.execute("COMMIT")
    except sqlite3.OperationalError as e:
        t2.execute("ROLLBACK")
        error = e.sqlite_errorname
    final = value(t1, "SELECT value FROM counters WHERE id = 1")
    t1.close()
    t2.close()
    return final, error


def write_skew(path: Path) -> tuple[int, str | None]:
    on_call = "SELECT count(*) FROM doctors WHERE on_call"
    t1, t2 = open_two(path)
    t1.execute("BEGIN")
    t2.execute("BEGIN")
    if value(t1, on_call) >= 2:
        t1.execute("UPDATE doctors SET on_call = false WHERE name = 'alice'")
    error = None
    try:
        if value(t2, on_call) >= 2:  # T2 may read while T1 writes (WAL mode) ...
            t2.execute("UPDATE doctors SET on_call = false WHERE name = 'bob'")  # ... not write
    except sqlite3.OperationalError as e:
        t2.execute("ROLLBACK")
        error = e.sqlite_errorname
    t1.execute("COMMIT")
    left = value(t1, on_call)
    t1.close()
    t2.close()
    return left, error


# --8<-- [end:schedules]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "iso.db"
        final, error = lost_update(path)
        print(f"lost update: final {final}, T2 failed with {error}")
        left, error = write_skew(path)
        print(f"write skew:  {left} on call afterwards, one failed with {error}")
        print("SQLite has one writer at a time: every schedule it lets through is serializable")


if __name__ == "__main__":
    main()
