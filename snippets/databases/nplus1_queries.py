"""The N+1 query problem on PostgreSQL: detected by counting queries, fixed with a join.

Run: python snippets/databases/nplus1_queries.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

# Every wait is bounded: connecting (connect_timeout), any statement, any lock wait — a
# DROP SCHEMA queued behind a leftover lock would otherwise wait forever.
TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"

POSTS = 200


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=databases/nplus1_queries`, which starts one and stops it afterwards"
        )
    return url


# --8<-- [start:counter]
class CountingConnection(psycopg.Connection):
    """A connection that counts the statements it sends: what N+1 detectors do."""

    queries = 0

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self.queries += 1
        return super().execute(query, params, **kwargs)


@contextmanager
def at_most(conn: CountingConnection, limit: int) -> Iterator[None]:
    """Fail loudly when a block sends more queries than it should (use it in tests)."""
    before = conn.queries
    yield
    sent = conn.queries - before
    if sent > limit:
        raise AssertionError(f"{sent} queries where at most {limit} were expected: N+1?")


# --8<-- [end:counter]


@contextmanager
def blog(url: str) -> Iterator[CountingConnection]:
    """A connection to a fresh schema with 50 authors and POSTS posts; dropped at the end."""
    schema = f"nplus1_{uuid.uuid4().hex[:8]}"
    conn = CountingConnection.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS)
    try:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.execute("""
            CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL);
            CREATE TABLE posts (id int PRIMARY KEY, title text NOT NULL,
                                author_id int NOT NULL REFERENCES authors);
            INSERT INTO authors SELECT i, 'author ' || i FROM generate_series(1, 50) i;
        """)
        conn.execute(
            "INSERT INTO posts SELECT i, 'post ' || i, 1 + i %% 50 FROM generate_series(1, %s) i",
            (POSTS,),
        )
        conn.queries = 0
        yield conn
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


# --8<-- [start:nplus1]
def titles_with_authors_n_plus_1(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """What a lazy-loading ORM does: 1 query for the posts, then 1 per post for its author."""
    result = []
    for title, author_id in conn.execute("SELECT title, author_id FROM posts ORDER BY id"):
        row = conn.execute("SELECT name FROM authors WHERE id = %s", (author_id,)).fetchone()
        assert row is not None
        result.append((title, row[0]))
    return result


def titles_with_authors_join(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """One query: the database does the matching, in one round trip."""
    return conn.execute("""SELECT p.title, a.name FROM posts p
                           JOIN authors a ON a.id = p.author_id ORDER BY p.id""").fetchall()


def titles_with_authors_batched(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Two queries: posts, then all their authors at once (an ORM's "prefetch")."""
    posts = conn.execute("SELECT title, author_id FROM posts ORDER BY id").fetchall()
    ids = sorted({author_id for _, author_id in posts})
    names = dict(conn.execute("SELECT id, name FROM authors WHERE id = ANY(%s)", (ids,)))
    return [(title, names[author_id]) for title, author_id in posts]


# --8<-- [end:nplus1]


METHODS: dict[str, Callable[[psycopg.Connection], list[tuple[str, str]]]] = {
    "N+1": titles_with_authors_n_plus_1,
    "join": titles_with_authors_join,
    "batched (IN / ANY)": titles_with_authors_batched,
}


def measure(conn: CountingConnection, rounds: int = 5) -> dict[str, tuple[int, float]]:
    """Per method: (queries sent, median seconds), rounds interleaved."""
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for name, method in METHODS.items():
            before = conn.queries
            start = time.perf_counter()
            method(conn)
            times[name].append(time.perf_counter() - start)
            counts[name] = conn.queries - before
    return {name: (counts[name], statistics.median(times[name])) for name in METHODS}


def main() -> None:
    with blog(database_url()) as conn:
        results = measure(conn)
        answers = {name: method(conn) for name, method in METHODS.items()}
        print(f"listing {POSTS} posts with their authors' names:")
        for name, (queries, seconds) in results.items():
            print(f"  {name:20} {queries:4} queries  {seconds * 1000:.2f} ms")
        print("all three return the same rows:", len({tuple(a) for a in answers.values()}) == 1)
        print(f"the join was {results['N+1'][1] / results['join'][1]:.1f}x faster than N+1")
        try:
            with at_most(conn, 3):
                titles_with_authors_n_plus_1(conn)
        except AssertionError as error:
            print("the query-count check catches it:", error)


if __name__ == "__main__":
    main()
