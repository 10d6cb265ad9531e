"""Isolation levels and anomalies (docs/databases/isolation.md), on real PostgreSQL and SQLite."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

isolation_anomalies = load_snippet("databases/isolation_anomalies")
isolation_fixes = load_snippet("databases/isolation_fixes")
isolation_sqlite = load_snippet("databases/isolation_sqlite")

RC = isolation_anomalies.READ_COMMITTED
RR = isolation_anomalies.REPEATABLE_READ
SER = isolation_anomalies.SERIALIZABLE


@pytest.fixture
def schema(database_url):
    with isolation_anomalies.scratch_schema(database_url) as name:
        yield name


def test_postgres_never_reads_uncommitted_data(database_url, schema):
    for level in (isolation_anomalies.READ_UNCOMMITTED, RC):
        assert isolation_anomalies.dirty_read(database_url, schema, level) == 100


def test_non_repeatable_read_at_read_committed_only(database_url, schema):
    assert isolation_anomalies.non_repeatable_read(database_url, schema, RC) == (100, 999)
    for level in (RR, SER):
        assert isolation_anomalies.non_repeatable_read(database_url, schema, level) == (100, 100)


def test_phantom_at_read_committed_only(database_url, schema):
    assert isolation_anomalies.phantom(database_url, schema, RC) == (2, 3)
    for level in (RR, SER):  # PostgreSQL's snapshot also hides phantoms at REPEATABLE READ
        assert isolation_anomalies.phantom(database_url, schema, level) == (2, 2)


def test_lost_update_at_read_committed(database_url, schema):
    assert isolation_anomalies.lost_update(database_url, schema, RC) == (110, None)


def test_lost_update_is_a_serialization_failure_at_repeatable_read(database_url, schema):
    for level in (RR, SER):
        assert isolation_anomalies.lost_update(database_url, schema, level) == (110, "40001")


def test_write_skew_allowed_at_repeatable_read_prevented_at_serializable(database_url, schema):
    assert isolation_anomalies.write_skew(database_url, schema, RC) == (0, None)
    assert isolation_anomalies.write_skew(database_url, schema, RR) == (0, None)  # rule broken
    assert isolation_anomalies.write_skew(database_url, schema, SER) == (1, "40001")


def test_for_update_makes_the_second_reader_wait_and_keeps_both_increments(database_url):
    with isolation_fixes.scratch_schema(database_url) as schema:
        assert isolation_fixes.with_for_update(database_url, schema) == (120, True)


def test_version_column_detects_the_stale_write_and_the_retry_succeeds(database_url):
    with isolation_fixes.scratch_schema(database_url) as schema:
        assert isolation_fixes.with_version_column(database_url, schema) == (120, 2)


def test_retrying_a_serialization_failure_keeps_both_increments(database_url):
    with isolation_fixes.scratch_schema(database_url) as schema:
        assert isolation_fixes.with_retries(database_url, schema) == (120, 2)


def test_retry_gives_up_after_its_limit(database_url):
    import psycopg

    with psycopg.connect(database_url) as conn:

        def always_conflicts() -> None:
            raise psycopg.errors.SerializationFailure("simulated 40001")

        with pytest.raises(RuntimeError, match="after 3 tries"):
            isolation_fixes.retry_serialization_failures(conn, always_conflicts, tries=3)


def test_waiting_for_a_lock_that_nobody_holds_times_out(database_url):
    import psycopg

    with psycopg.connect(database_url) as idle, pytest.raises(TimeoutError):
        isolation_fixes.wait_until_blocked(database_url, idle.info.backend_pid, timeout=0.2)


def test_sqlite_rejects_both_schedules(tmp_path):
    assert isolation_sqlite.lost_update(tmp_path / "a.db") == (110, "SQLITE_BUSY_SNAPSHOT")
    assert isolation_sqlite.write_skew(tmp_path / "b.db") == (1, "SQLITE_BUSY")
