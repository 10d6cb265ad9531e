"""A graph in SQL: friends of friends and the shortest path, with a recursive CTE (SQLite).

Run: python snippets/databases/model_graph.py
"""

from __future__ import annotations

import sqlite3

FRIENDSHIPS = [
    ("ada", "bob"),
    ("bob", "cy"),
    ("cy", "dee"),
    ("dee", "eve"),
    ("ada", "fay"),
    ("fay", "cy"),
    ("eve", "gus"),
    ("bob", "hal"),
    ("hal", "gus"),
    ("ivy", "jo"),
]


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        CREATE TABLE people (name text PRIMARY KEY);
        -- an edge list; friendship is mutual, so store both directions
        CREATE TABLE friends (a text REFERENCES people, b text REFERENCES people,
                              PRIMARY KEY (a, b));
    """)
    names = sorted({n for pair in FRIENDSHIPS for n in pair})
    conn.executemany("INSERT INTO people VALUES (?)", [(n,) for n in names])
    conn.executemany("INSERT INTO friends VALUES (?, ?)", FRIENDSHIPS)
    conn.executemany("INSERT INTO friends VALUES (?, ?)", [(b, a) for a, b in FRIENDSHIPS])
    return conn


# --8<-- [start:fof]
def friends_of_friends(conn: sqlite3.Connection, person: str) -> list[str]:
    """People two hops away who are not already friends: two self-joins, no recursion."""
    rows = conn.execute(
        """SELECT DISTINCT f2.b FROM friends f1 JOIN friends f2 ON f2.a = f1.b
           WHERE f1.a = :p AND f2.b <> :p
             AND f2.b NOT IN (SELECT b FROM friends WHERE a = :p)
           ORDER BY f2.b""",
        {"p": person},
    )
    return [name for (name,) in rows]


# --8<-- [end:fof]


# --8<-- [start:path]
SHORTEST_PATH = """
    WITH RECURSIVE walk(person, path, hops) AS (
        SELECT :start, ',' || :start || ',', 0
        UNION ALL
        SELECT f.b, walk.path || f.b || ',', walk.hops + 1
        FROM walk JOIN friends f ON f.a = walk.person
        WHERE walk.path NOT LIKE '%,' || f.b || ',%'   -- no cycles (names hold no % or _)
          AND walk.hops < :max_hops                    -- and a bound, always
    )
    SELECT path FROM walk WHERE person = :goal ORDER BY hops, path LIMIT 1"""


def shortest_path(
    conn: sqlite3.Connection, start: str, goal: str, max_hops: int = 6
) -> list[str] | None:
    """Breadth-first search in SQL: extend every path by one edge per step, never revisiting
    a person on the same path; the first path that reaches the goal is a shortest one."""
    row = conn.execute(
        SHORTEST_PATH, {"start": start, "goal": goal, "max_hops": max_hops}
    ).fetchone()
    return row[0].strip(",").split(",") if row else None


# --8<-- [end:path]


def main() -> None:
    conn = connect()
    print(
        "friends of ada:",
        [b for (b,) in conn.execute("SELECT b FROM friends WHERE a = 'ada' ORDER BY b")],
    )
    print("friends of friends of ada:", friends_of_friends(conn, "ada"))
    for goal in ("gus", "eve", "jo"):
        path = shortest_path(conn, "ada", goal)
        shown = f"{' -> '.join(path)} ({len(path) - 1} hops)" if path else "no path"
        print(f"shortest path ada -> {goal}: {shown}")
    conn.close()


if __name__ == "__main__":
    main()
