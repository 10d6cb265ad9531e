"""Transactions and ACID (docs/databases/acid.md): each letter, proven on SQLite and PostgreSQL."""

from __future__ import annotations

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
    assert [sqlstate for _, sqlstate, _ in rejected] == ["23514", "23503", "23505", "23502"]
    assert [name for _, _, name in rejected] == [
        "CheckViolation",
        "ForeignKeyViolation",
        "UniqueViolation",
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
    ]
    assert acid_sqlite.isolation(path) == (100, 100, 101)
    assert acid_sqlite.durability(path) == 1


def test_sqlite_ignores_foreign_keys_unless_asked(tmp_path):
    path = tmp_path / "bank.db"
    acid_sqlite.create(path)
    let_through = {w for w, _ in acid_sqlite.consistency(path)} - {
        w for w, _ in acid_sqlite.consistency(path, foreign_keys=False)
    }
    assert let_through == {"pay carol, who does not exist (FOREIGN KEY)"}
