"""Normalization: one wide table lets the same fact disagree with itself; split tables cannot.

Run: python snippets/databases/schema_normalization.py
"""

from __future__ import annotations

import sqlite3

ENROLLMENTS = [  # (student, email, course, teacher): the teacher is a fact about the course
    ("ana", "ana@example.org", "databases", "codd"),
    ("ben", "ben@example.org", "databases", "codd"),
    ("ana", "ana@example.org", "networks", "cerf"),
    ("cal", "cal@example.org", "databases", "codd"),
]


# --8<-- [start:before]
def denormalized() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("""CREATE TABLE enrollments (
        student text NOT NULL, email text NOT NULL, course text NOT NULL, teacher text NOT NULL,
        PRIMARY KEY (student, course))""")
    conn.executemany("INSERT INTO enrollments VALUES (?, ?, ?, ?)", ENROLLMENTS)
    return conn


def update_anomaly_before(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """A new teacher for databases, written where the code happened to look: one row."""
    conn.execute("""UPDATE enrollments SET teacher = 'gray'
                    WHERE course = 'databases' AND student = 'ana'""")
    return conn.execute("""SELECT DISTINCT course, teacher FROM enrollments
                           WHERE course = 'databases' ORDER BY teacher""").fetchall()


# --8<-- [end:before]


# --8<-- [start:after]
def normalized() -> sqlite3.Connection:
    """Each fact in one place: students, courses, and which student takes which course."""
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript("""
        CREATE TABLE students (name text PRIMARY KEY, email text NOT NULL UNIQUE);
        CREATE TABLE courses (name text PRIMARY KEY, teacher text NOT NULL);
        CREATE TABLE enrollments (student text REFERENCES students, course text REFERENCES courses,
                                  PRIMARY KEY (student, course));
    """)
    conn.executemany(
        "INSERT OR IGNORE INTO students VALUES (?, ?)", [(s, e) for s, e, _, _ in ENROLLMENTS]
    )
    conn.executemany(
        "INSERT OR IGNORE INTO courses VALUES (?, ?)", [(c, t) for _, _, c, t in ENROLLMENTS]
    )
    conn.executemany(
        "INSERT INTO enrollments VALUES (?, ?)", [(s, c) for s, _, c, _ in ENROLLMENTS]
    )
    return conn


def update_after(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    conn.execute("UPDATE courses SET teacher = 'gray' WHERE name = 'databases'")  # one row
    return conn.execute("""SELECT DISTINCT c.name, c.teacher FROM enrollments e
                           JOIN courses c ON c.name = e.course
                           WHERE c.name = 'databases'""").fetchall()


# --8<-- [end:after]


def deletion_anomaly(conn: sqlite3.Connection) -> list[tuple[str]]:
    """Ana drops networks, its only student: who teaches networks now?"""
    conn.execute("DELETE FROM enrollments WHERE student = 'ana' AND course = 'networks'")
    if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'courses'").fetchone()[0]:
        return conn.execute("SELECT teacher FROM courses WHERE name = 'networks'").fetchall()
    return conn.execute("SELECT teacher FROM enrollments WHERE course = 'networks'").fetchall()


def main() -> None:
    print("one wide table: databases is now taught by", update_anomaly_before(denormalized()))
    print("normalized:     databases is now taught by", update_after(normalized()))
    print("after the last student leaves networks, its teacher is")
    print("  in the wide table:", deletion_anomaly(denormalized()), "(the fact is gone)")
    print("  normalized:       ", deletion_anomaly(normalized()))


if __name__ == "__main__":
    main()
