"""Layered architecture (docs/design/layers.md): one service suite over three repositories,
and a rule that holds on every entry point only while it lives in the service."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import load_snippet

layers = load_snippet("design/layers_orders")

REPOS = ["fake", "sqlite", "postgresql"]


@pytest.fixture(scope="module")
def pg(database_url):
    with layers.postgres_schema(database_url) as conn:
        yield conn


@pytest.fixture(params=REPOS)
def new_repo(request, pg):
    return layers.factories(pg)[request.param]


# The page's claim, as pytest runs it: the same checks, unchanged, on every repository.
@pytest.mark.parametrize("check", layers.SUITE, ids=lambda c: c.__name__)
def test_the_service_suite_passes_unchanged_on_every_repository(new_repo, check):
    check(layers.OrderService(new_repo()))


def test_the_suite_can_fail_a_service_that_breaks_the_rule(new_repo):
    """The control for the suite itself: without the rule, the rule's check fails (and only
    it), on every repository, so the green runs above are not vacuous."""
    results = layers.run_suite(new_repo, layers.ServiceWithoutTheRule)
    failed = [name for name, result in results.items() if result != "ok"]
    assert failed == ["check_a_shipped_order_cannot_be_cancelled"]


def test_rule_in_the_service_holds_on_both_entry_points(new_repo):
    outcome = layers.try_to_cancel_a_shipped_order(new_repo, "service")
    assert outcome == {"HTTP": (409, "shipped"), "CLI": (1, "shipped")}


def test_rule_only_in_the_http_handler_is_bypassed_by_the_cli(new_repo):
    outcome = layers.try_to_cancel_a_shipped_order(new_repo, "presentation")
    assert outcome["HTTP"] == (409, "shipped")  # the entry point that checks refuses
    assert outcome["CLI"] == (0, "cancelled")  # the other one cancels a shipped order


# --- The page's "Break it": a fake that shares its objects hides a forgotten save().
class SharingFake(layers.FakeRepository):
    """FakeRepository with `get` returning the stored object itself, not a copy."""

    def get(self, order_id):
        return self._rows.get(order_id)


class ServiceThatForgetsToSave(layers.OrderService):
    def cancel(self, order_id):
        order = self.get(order_id)
        if order.status == "shipped":
            raise layers.AlreadyShipped(f"order {order_id} has shipped")
        order.status = "cancelled"  # ... and no self.repo.save(order)
        return order


def test_break_it_a_sharing_fake_passes_a_bug_that_sqlite_and_postgresql_catch(pg):
    repos = layers.factories(pg)
    repos["sharing fake"] = SharingFake
    failed = {
        name: [n for n, r in layers.run_suite(new, ServiceThatForgetsToSave).items() if r != "ok"]
        for name, new in repos.items()
    }
    assert failed == {
        "sharing fake": [],  # the bug passes
        "fake": ["check_cancel_a_placed_order"],  # the copying fake catches it ...
        "sqlite": ["check_cancel_a_placed_order"],  # ... as the real databases do
        "postgresql": ["check_cancel_a_placed_order"],
    }


# --- The presentation layer answers bad input with a status, never an exception.
@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"[" * 4000, 400),  # RecursionError inside CPython's json, not a ValueError
        (b'{"a":' * 800, 400),
        (b"[1, 2]", 422),
        (b'{"customer": "ada", "sku": "book"}', 422),
        (b'{"customer": "ada", "sku": "book", "quantity": "2"}', 422),
        (b'{"customer": "ada", "sku": "book", "quantity": true}', 422),
        (b'{"customer": "ada", "sku": "book", "quantity": 1.5}', 422),
        (b'{"customer": "ada", "sku": "book", "quantity": 0}', 422),  # the domain's refusal
        (b'{"customer": "ada", "sku": "book", "quantity": ' + b"9" * 5000 + b"}", 413),
        (b" " * (layers.MAX_BODY + 1), 413),
        (b'{"customer": "ada", "sku": "book", "quantity": 2}', 201),  # the control
    ],
)
def test_http_answers_malformed_and_oversized_bodies_with_a_status(body, status):
    svc = layers.OrderService(layers.FakeRepository())
    got, answer = layers.handle(svc, "POST", "/orders", body)
    assert (got, type(answer)) == (status, dict)
    assert len(svc.orders_of("ada")) == (1 if status == 201 else 0)  # nothing half-stored


def test_http_and_cli_answer_unknown_targets_without_raising():
    svc = layers.OrderService(layers.FakeRepository())
    assert layers.handle(svc, "POST", "/orders/42/cancel")[0] == 404
    assert layers.handle(svc, "GET", "/nowhere")[0] == 404
    assert layers.handle(svc, "POST", "/orders/x/cancel")[0] == 404
    assert layers.admin_cli(svc, ["cancel", "42"]) == (1, "refused: no order 42")
    assert layers.admin_cli(svc, ["cancel"])[0] == 2
    assert layers.admin_cli(svc, ["cancel", "-1"])[0] == 2


def test_the_sql_repositories_really_store_in_their_database(pg):
    """The rows are in the engines, not in a Python object: read back with raw SQL."""
    conn = sqlite3.connect(":memory:")
    conn.execute(layers.SCHEMA["sqlite"])
    layers.OrderService(layers.SqlRepository(conn, "?")).place("ada", "book", 2)
    assert conn.execute("SELECT customer, quantity, status FROM orders").fetchall() == [
        ("ada", 2, "placed")
    ]
    new_pg = layers.factories(pg)["postgresql"]
    layers.OrderService(new_pg()).place("bob", "pen", 3)
    assert pg.execute("SELECT customer, quantity, status FROM orders").fetchall() == [
        ("bob", 3, "placed")
    ]


def test_main_prints_the_suite_table_and_the_bypass(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    layers.main()
    out = capsys.readouterr().out
    for name in REPOS:
        assert f"  {name:<12}{'6/6':>8}" in out
    assert out.count("<- rule bypassed") == 3


def test_the_fake_runs_the_suite_faster_than_sqlite_and_sqlite_than_postgresql(pg):
    # Noise budget: observed over 12 runs of 5 interleaved repeats, on a machine busy with
    # a full-suite flake hunt: sqlite/fake 9x-12x, postgresql/fake 95x-242x (postgresql/
    # sqlite 9x-21x). The margin of 3x per step holds because each ratio's lowest value was
    # 3 times that, and the work behind it (a new database, a round trip per statement)
    # does not shrink under load.
    timings = layers.suite_timings(layers.factories(pg))
    fake, sqlite, postgresql = (timings[name][1] for name in REPOS)
    assert 3 * fake < sqlite and 3 * sqlite < postgresql, timings
