"""Transactions and ACID (docs/databases/acid.md): each letter, proven on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import load_snippet
from tests.snippet_output import ROOT

acid_sqlite = load_snippet("databases/acid_sqlite")
acid_postgres = load_snippet("databases/acid_postgres")

RULES = ["CHECK", "FOREIGN KEY", "UNIQUE", "NOT NULL"]


@pytest.fixture
def schema(database_url):
    with acid_postgres.scratch_schema(database_url) as name:
        yield name


def test_postgres_rolls_back_a_transfer_that_fails_halfway(database_url, schema):
    assert acid_postgres.atomicity(database_url, schema, autocommit=False) == {
        "alice": 100,
        "bob": 50,
    }


def test_postgres_without_a_transaction_loses_the_debit(database_url, schema):
    after = acid_postgres.atomicity(database_url, schema, autocommit=True)
    assert sum(after.values()) == 120  # 30 left alice and arrived nowhere


def test_postgres_constraints_reject_bad_rows_with_their_sqlstate(database_url, schema):
    rejected = acid_postgres.consistency(database_url, schema)
    assert [sqlstate for _, sqlstate, _ in rejected] == [
        "23514",
        "23503",
        "23505",
        "23502",
        "23502",  # a PRIMARY KEY column is NOT NULL in PostgreSQL
    ]
    assert [name for _, _, name in rejected] == [
        "CheckViolation",
        "ForeignKeyViolation",
        "UniqueViolation",
        "NotNullViolation",
        "NotNullViolation",
    ]
    with acid_postgres.connect(database_url, schema) as conn:  # nothing got in
        assert acid_postgres.balances(conn) == {"alice": 100, "bob": 50}
        assert conn.execute("SELECT count(*) FROM transfers").fetchone() == (0,)


def test_postgres_hides_uncommitted_changes_from_other_connections(database_url, schema):
    assert acid_postgres.isolation(database_url, schema) == (100, 100, 101)


def test_postgres_committed_row_is_seen_by_a_new_connection(database_url, schema):
    assert acid_postgres.durability(database_url, schema) == 1


def test_postgres_snippet_drops_its_schema(database_url):
    with acid_postgres.scratch_schema(database_url) as name:
        pass
    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()
    assert found is None


def test_postgres_snippet_without_database_url_says_how_to_get_one():
    env = {"PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "snippets/databases/acid_postgres.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0
    assert "DATABASE_URL" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_sqlite_rolls_back_and_enforces_every_rule(tmp_path):
    path = tmp_path / "bank.db"
    acid_sqlite.create(path)
    assert acid_sqlite.atomicity(path) == {"alice": 100, "bob": 50}
    names = [name for _, name in acid_sqlite.consistency(path)]
    assert names == [
        "SQLITE_CONSTRAINT_CHECK",
        "SQLITE_CONSTRAINT_FOREIGNKEY",
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "SQLITE_CONSTRAINT_NOTNULL",
    ]  # and not the NULL primary key: see the next test
    assert acid_sqlite.isolation(path) == (100, 100, 101)
    assert acid_sqlite.durability(path) == 1


def test_sqlite_ignores_foreign_keys_unless_asked(tmp_path):
    path = tmp_path / "bank.db"
    acid_sqlite.create(path)
    let_through = {w for w, _ in acid_sqlite.consistency(path)} - {
        w for w, _ in acid_sqlite.consistency(path, foreign_keys=False)
    }
    assert let_through == {"pay carol, who does not exist (FOREIGN KEY)"}


def test_sqlite_accepts_null_in_a_text_primary_key_unless_declared_not_null(tmp_path):
    """SQLite's documented legacy: PRIMARY KEY implies NOT NULL only for INTEGER PRIMARY
    KEY, WITHOUT ROWID and STRICT tables, or with an explicit NOT NULL."""
    path = tmp_path / "bank.db"
    acid_sqlite.create(path)
    accepted = set(acid_sqlite.ATTEMPTS) - {w for w, _ in acid_sqlite.consistency(path)}
    assert accepted == {"open an account with no id (PRIMARY KEY)"}
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE loose (id text PRIMARY KEY)")
    conn.execute("INSERT INTO loose VALUES (NULL)")
    conn.execute("INSERT INTO loose VALUES (NULL)")  # two NULLs: not even unique
    assert conn.execute("SELECT count(*) FROM loose WHERE id IS NULL").fetchone() == (2,)
    for table in [
        "CREATE TABLE strict_pk (id text PRIMARY KEY NOT NULL)",
        "CREATE TABLE strict_pk (id text PRIMARY KEY) WITHOUT ROWID",
        "CREATE TABLE strict_pk (id text PRIMARY KEY) STRICT",  # SQLite 3.37+
    ]:
        conn.execute("DROP TABLE IF EXISTS strict_pk")
        conn.execute(table)
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            conn.execute("INSERT INTO strict_pk VALUES (NULL)")
    conn.close()
