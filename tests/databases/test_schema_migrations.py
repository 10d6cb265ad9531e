"""Schema design and migrations (docs/databases/schema-migrations.md)."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

schema_normalization = load_snippet("databases/schema_normalization")
schema_migration = load_snippet("databases/schema_migration")


def test_the_wide_table_lets_one_course_have_two_teachers():
    teachers = schema_normalization.update_anomaly_before(schema_normalization.denormalized())
    assert teachers == [("databases", "codd"), ("databases", "gray")]


def test_normalized_tables_change_the_fact_in_one_place():
    assert schema_normalization.update_after(schema_normalization.normalized()) == [
        ("databases", "gray")
    ]


def test_deleting_the_last_enrollment_loses_the_teacher_only_in_the_wide_table():
    assert schema_normalization.deletion_anomaly(schema_normalization.denormalized()) == []
    assert schema_normalization.deletion_anomaly(schema_normalization.normalized()) == [("cerf",)]


def test_renaming_in_one_step_fails_the_old_code_s_writes(database_url):
    ok, failed, rows, errors = schema_migration.rename_in_one_step(database_url)
    assert failed >= 20 and errors == {"42703 UndefinedColumn"}
    assert rows == schema_migration.INITIAL_ROWS + ok  # failed writes are simply missing


def test_expand_contract_loses_no_write_under_live_traffic(database_url):
    for _ in range(2):
        ok, failed, rows, steps = schema_migration.expand_contract(database_url)
        assert failed == 0
        assert rows == schema_migration.INITIAL_ROWS + ok
        assert len(steps) == 5 and ok >= 50 + 5 * 20  # traffic flowed during every step


def test_writer_wait_has_a_deadline(database_url):
    with schema_migration.users_table(database_url) as (_, schema):
        writer = schema_migration.Writer(database_url, schema)  # never started
        with pytest.raises(TimeoutError, match="writer stuck"):
            writer.wait_for(ok=1, timeout=0.1)
