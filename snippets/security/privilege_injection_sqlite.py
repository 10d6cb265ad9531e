"""SQL injection with sqlite3: a query built with string formatting returns every row for
the input `x' OR '1'='1`, the same query with a parameter returns none; an ordinary name
(the control) finds its one row both ways.

Run: python snippets/security/privilege_injection_sqlite.py
"""

from __future__ import annotations

import sqlite3

INPUTS = ["alice", "x' OR '1'='1", "x'; DROP TABLE users; --"]


def database() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        CREATE TABLE users (name TEXT PRIMARY KEY, api_key TEXT NOT NULL);
        INSERT INTO users VALUES ('alice', 'ak-1'), ('bob', 'ak-2'), ('carol', 'ak-3');
    """)
    return conn


# --8<-- [start:find]
def find_formatted(conn: sqlite3.Connection, name: str) -> list[tuple[str, str]]:
    """WRONG: the input becomes part of the SQL text."""
    return conn.execute(f"SELECT name, api_key FROM users WHERE name = '{name}'").fetchall()


def find_parameterised(conn: sqlite3.Connection, name: str) -> list[tuple[str, str]]:
    """Right: the SQL text is fixed; the input travels separately, as a value."""
    return conn.execute("SELECT name, api_key FROM users WHERE name = ?", (name,)).fetchall()


# --8<-- [end:find]


def attempt(find, conn: sqlite3.Connection, name: str) -> str:
    try:
        rows = find(conn, name)
    except sqlite3.Error as e:
        return f"{type(e).__name__}: {e}"
    return f"{len(rows)} of 3 rows {[r[0] for r in rows]}"


def main() -> None:
    conn = database()
    for name in INPUTS:
        print(f"name = {name!r}")
        for find in (find_formatted, find_parameterised):
            print(f"  {find.__name__:<19} -> {attempt(find, conn, name)}")
    tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    print(f"tables afterwards: {[t for (t,) in tables]}")


if __name__ == "__main__":
    main()
