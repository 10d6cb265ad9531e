"""ACID on SQLite: the same four proofs as on PostgreSQL, in a file in a temp dir.

Run: python snippets/databases/acid_sqlite.py
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

SCHEMA = """
    CREATE TABLE accounts (
        id      text PRIMARY KEY,
        balance integer NOT NULL CHECK (balance >= 0));
    CREATE TABLE transfers (
        id     integer PRIMARY KEY,
        src    text NOT NULL REFERENCES accounts,
        dst    text NOT NULL REFERENCES accounts,
        amount integer NOT NULL CHECK (amount > 0));
    INSERT INTO accounts VALUES ('alice', 100), ('bob', 50);
"""


# --8<-- [start:connect]
def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; we write BEGIN and COMMIT ourselves.
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    conn.execute("PRAGMA foreign_keys = ON")  # OFF by default, per connection!
    conn.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
    return conn


# --8<-- [end:connect]


def create(path: Path) -> None:
    conn = connect(path)
    conn.executescript(SCHEMA)
    conn.close()


def balances(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall())


# --8<-- [start:atomicity]
def transfer(
    conn: sqlite3.Connection, src: str, dst: str, amount: int, crash_halfway: bool = False
) -> None:
    conn.execute("BEGIN")
    try:
        conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, src))
        if crash_halfway:
            raise RuntimeError("crash after the debit, before the credit")
        conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, dst))
        conn.execute(
            "INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)", (src, dst, amount)
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# --8<-- [end:atomicity]


def atomicity(path: Path) -> dict[str, int]:
    conn = connect(path)
    try:
        transfer(conn, "alice", "bob", 30, crash_halfway=True)
    except RuntimeError:
        pass
    finally:
        result = balances(conn)
        conn.close()
    return result


# --8<-- [start:consistency]
ATTEMPTS = {  # what breaks a rule -> the statement; the same as acid_postgres.py (a copy:
    # snippets run alone and may not import each other)
    "overdraw alice (CHECK)": "UPDATE accounts SET balance = balance - 1000 WHERE id = 'alice'",
    "pay carol, who does not exist (FOREIGN KEY)": (
        "INSERT INTO transfers (src, dst, amount) VALUES ('alice', 'carol', 10)"
    ),
    "open a second 'bob' account (UNIQUE)": "INSERT INTO accounts VALUES ('bob', 0)",
    "leave the balance empty (NOT NULL)": "INSERT INTO accounts VALUES ('dave', NULL)",
    "open an account with no id (PRIMARY KEY)": "INSERT INTO accounts VALUES (NULL, 10)",
}


def consistency(path: Path, foreign_keys: bool = True) -> list[tuple[str, str]]:
    """Statements that break a rule; returns (what, SQLite error name) for each rejected one."""
    conn = connect(path)
    conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
    rejected = []
    for what, sql in ATTEMPTS.items():
        conn.execute("BEGIN")
        try:
            conn.execute(sql)
        except sqlite3.IntegrityError as error:
            rejected.append((what, error.sqlite_errorname))
        conn.execute("ROLLBACK")  # keep the database as it was either way
    conn.close()
    return rejected


# --8<-- [end:consistency]


def isolation(path: Path) -> tuple[int, int, int]:
    writer, reader = connect(path), connect(path)
    try:
        before = balances(reader)["alice"]
        writer.execute("BEGIN")
        writer.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 'alice'")
        during = balances(reader)["alice"]
        writer.execute("COMMIT")
        return before, during, balances(reader)["alice"]
    finally:
        writer.close()
        reader.close()


def durability(path: Path) -> int:
    conn = connect(path)
    conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every COMMIT
    conn.execute("INSERT INTO transfers (src, dst, amount) VALUES ('bob', 'alice', 5)")
    conn.close()
    fresh = connect(path)
    (count,) = fresh.execute("SELECT count(*) FROM transfers WHERE amount = 5").fetchone()
    fresh.close()
    return count


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.db"
        create(path)
        after = atomicity(path)
        total = sum(after.values())
        print(f"A  transfer crashed halfway inside a transaction: {after}, total {total}")
        print("C  the database rejects what breaks a rule:")
        for what, name in consistency(path):
            print(f"   {what:44} {name}")
        rejected = {w for w, _ in consistency(path)}
        print(f"   and accepts: {sorted(set(ATTEMPTS) - rejected)}")
        missed = rejected - {w for w, _ in consistency(path, False)}
        print(f"   with PRAGMA foreign_keys = OFF (the default) it lets through: {sorted(missed)}")
        before, during, after_commit = isolation(path)
        print(
            f"I  another connection sees alice = {before}, then {during} while the update is"
            f" uncommitted, then {after_commit} after COMMIT"
        )
        rows = durability(path)
        print(f"D  after COMMIT and closing the file, a new connection counts {rows} row")


if __name__ == "__main__":
    main()
