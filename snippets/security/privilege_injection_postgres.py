"""SQL injection with psycopg on PostgreSQL: a query built with string formatting returns
every row for `x' OR '1'='1` and runs a second, stacked statement that drops the table;
with a parameter the same inputs match nothing and the table stays; an ordinary name (the
control) finds its one row both ways.

Run: python snippets/security/privilege_injection_postgres.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import sys
import uuid

import psycopg
from psycopg import sql

INPUTS = ["alice", "x' OR '1'='1", "x'; DROP TABLE users; --"]
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=security/privilege_injection_postgres`, which starts one and stops it"
        )
    return url


def fill(conn: psycopg.Connection) -> None:
    """(Re)create this run's users table."""
    conn.execute("""
        DROP TABLE IF EXISTS users;
        CREATE TABLE users (name text PRIMARY KEY, api_key text NOT NULL);
        INSERT INTO users VALUES ('alice', 'ak-1'), ('bob', 'ak-2'), ('carol', 'ak-3');
    """)


# --8<-- [start:find]
def find_formatted(conn: psycopg.Connection, name: str) -> list[tuple[str, str]]:
    """WRONG: the input becomes part of the SQL text."""
    cur = conn.execute(f"SELECT name, api_key FROM users WHERE name = '{name}'")
    return cur.fetchall() if cur.description else []


def find_parameterised(conn: psycopg.Connection, name: str) -> list[tuple[str, str]]:
    """Right: psycopg 3 sends the SQL and the value separately (server-side binding)."""
    return conn.execute("SELECT name, api_key FROM users WHERE name = %s", [name]).fetchall()


# --8<-- [end:find]


def attempt(find, conn: psycopg.Connection, name: str) -> str:
    fill(conn)
    try:
        rows = find(conn, name)
    except psycopg.Error as e:
        return f"{e.sqlstate} {e.diag.message_primary}"
    exists = conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()[0]
    return f"{len(rows)} of 3 rows {[r[0] for r in rows]}" + ("" if exists else ", table DROPPED")


def main() -> None:
    schema = f"injection_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(
        database_url(), autocommit=True, connect_timeout=5, options=TIMEOUTS
    ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
            for name in INPUTS:
                print(f"name = {name!r}")
                for find in (find_formatted, find_parameterised):
                    print(f"  {find.__name__:<19} -> {attempt(find, conn, name)}")
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()
