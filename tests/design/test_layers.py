"""Layered architecture (docs/design/layers.md): one service suite over three repositories,
and a rule that holds on every entry point only while it lives in the service."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from tests.conftest import load_snippet

layers = load_snippet("design/layers_orders")

REPOS = ["fake", "sqlite", "postgresql"]


@pytest.fixture(scope="module")
def pg(database_url):
    with layers.postgres_schema(database_url) as conn:
        yield conn


@pytest.fixture(params=REPOS)
def new_repo(request):
    # Only the PostgreSQL case needs the server: without one, the fake and SQLite still run.
    pg = request.getfixturevalue("pg") if request.param == "postgresql" else None
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


# --- The presentation layer answers bad input with a status, never an exception, and it
# does so on every repository (a driver's refusal would otherwise surface as an exception).
ORDER = b'{"customer": "ada", "sku": "book", "quantity": '


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"[" * 4000, 400),  # RecursionError inside CPython's json, not a ValueError
        (b'{"a":' * 800, 400),
        (b"[1, 2]", 422),
        (b'{"customer": "ada", "sku": "book"}', 422),
        (ORDER + b'"2"}', 422),
        (ORDER + b"true}", 422),
        (ORDER + b"1.5}", 422),
        (ORDER + b"0}", 422),  # the domain's refusal
        (ORDER + b"9" * 4000 + b"}", 422),  # parses (under CPython's 4,300-digit limit)
        (b'{"customer": "a\\u0000b", "sku": "book", "quantity": 1}', 422),  # PG: DataError
        (b'{"customer": "\\ud800", "sku": "book", "quantity": 1}', 422),  # UnicodeEncodeError
        (b'{"customer": "ada", "sku": "\\ud800", "quantity": 1}', 422),
        (b'{"customer": "", "sku": "book", "quantity": 1}', 422),
        # A surrogate encoded as bytes is not UTF-8, but json.loads(bytes) decodes with
        # "surrogatepass": it becomes the same lone surrogate, and the same 422.
        (b'{"customer": "\xed\xa0\x80", "sku": "book", "quantity": 1}', 422),
        (ORDER + b"9" * 5000 + b"}", 413),
        (b" " * (layers.MAX_BODY + 1), 413),
        (ORDER + b"2}", 201),  # the control
    ],
)
def test_http_answers_malformed_and_oversized_bodies_with_a_status(new_repo, body, status):
    svc = layers.OrderService(new_repo())
    got, _, answer = layers.handle(svc, "POST", "/orders", body)
    assert (got, type(answer)) == (status, dict)
    assert len(svc.orders_of("ada")) == (1 if status == 201 else 0)  # nothing half-stored


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/orders/42/cancel", 404),  # a well-formed id no order has
        ("POST", "/orders/" + "9" * 18 + "/cancel", 404),  # the longest id the route takes
        ("POST", "/orders/" + "9" * 19 + "/cancel", 404),  # no route: SQLite overflowed here
        ("POST", "/orders/99999999999999999999/cancel", 404),
        ("POST", "/orders/" + "9" * 5000 + "/cancel", 404),  # int() would raise ValueError
        ("POST", "/orders/\u0663/cancel", 404),  # an Arabic-Indic 3: r"\d" matched it
        ("POST", "/orders/x/cancel", 404),
        ("GET", "/nowhere", 404),
    ],
)
def test_http_answers_unknown_and_unbounded_targets_with_404(new_repo, method, path, status):
    svc = layers.OrderService(new_repo())
    assert layers.handle(svc, method, path)[0] == status


def test_http_answers_a_known_path_with_the_wrong_method_405_and_allow(new_repo):
    svc = layers.OrderService(new_repo())
    for path in ("/orders", "/orders/1/cancel"):
        for method in ("GET", "PUT", "DELETE"):
            # RFC 9110 15.5.6: "The origin server MUST generate an Allow header field".
            assert layers.handle(svc, method, path)[:2] == (405, {"Allow": "POST"})


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["cancel", "42"], 1),  # a well-formed id no order has: refused by the service
        (["cancel", "9" * 18], 1),
        (["cancel"], 2),
        (["cancel", "-1"], 2),
        (["cancel", "\u00b2"], 2),  # "²": str.isdigit() is true, int() raises ValueError
        (["cancel", "\u0663"], 2),  # "٣": isdigit() and isdecimal() are true, int() gives 3
        (["cancel", "9" * 19], 2),
        (["cancel", "9" * 5000], 2),  # int() raises ValueError past 4,300 digits
        (["ship", "1"], 2),
    ],
)
def test_the_cli_answers_bad_arguments_with_an_exit_code(new_repo, argv, code):
    svc = layers.OrderService(new_repo())
    assert layers.admin_cli(svc, argv)[0] == code


def test_the_cli_refuses_an_unknown_order_by_name():
    svc = layers.OrderService(layers.FakeRepository())
    assert layers.admin_cli(svc, ["cancel", "42"]) == (1, "refused: no order 42")


# What the text check in the service protects: below it, the repositories disagree. The
# fake and SQLite store a NUL that PostgreSQL refuses; both databases refuse a lone
# surrogate the fake stores. The suite's text check holds on all three only because the
# service refuses first (the check above fails on every repository without it).
class ServiceWithoutTheTextCheck(layers.OrderService):
    def place(self, customer, sku, quantity):
        order = layers.Order(customer, sku, quantity)
        order.id = self.repo.add(order)
        return order


def test_without_the_services_text_check_the_repositories_disagree(pg):
    outcome = {}
    for name, new in layers.factories(pg).items():
        for text in ("a\x00b", "\ud800"):
            try:
                ServiceWithoutTheTextCheck(new()).place(text, "book", 1)
                outcome[name, text] = "stored"
            except (psycopg.DataError, UnicodeEncodeError) as error:
                outcome[name, text] = type(error).__name__
    assert outcome == {
        ("fake", "a\x00b"): "stored",
        ("fake", "\ud800"): "stored",
        ("sqlite", "a\x00b"): "stored",
        ("sqlite", "\ud800"): "UnicodeEncodeError",
        ("postgresql", "a\x00b"): "DataError",
        ("postgresql", "\ud800"): "UnicodeEncodeError",
    }
    results = layers.run_suite(layers.FakeRepository, ServiceWithoutTheTextCheck)
    assert results["check_text_no_database_can_store_is_refused"].startswith("FAILED")


def test_sqlite_would_overflow_on_a_65_bit_id_without_the_adapters_range_check():
    """The control for check_an_id_beyond_64_bits_is_not_found: sqlite3 itself raises."""
    conn = sqlite3.connect(":memory:")
    conn.execute(layers.SCHEMA["sqlite"])
    with pytest.raises(OverflowError):
        conn.execute("SELECT id FROM orders WHERE id = ?", (2**64,))
    assert layers.SqlRepository(conn, "?").get(2**64) is None


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
    checks = len(layers.SUITE)
    for name in REPOS:
        assert f"  {name:<12}{f'{checks}/{checks}':>8}" in out
    assert out.count("<- rule bypassed") == 3


def test_the_fake_runs_the_suite_faster_than_sqlite_and_sqlite_than_postgresql(pg):
    # Noise budget: observed over 30 runs of 5 interleaved repeats (load average 8.5-10.7,
    # a full-suite flake hunt running), as ratios of medians. In the checks alone:
    # sqlite/fake 2.1x-22x (median 3.2), postgresql/sqlite 5.2x-45x (median 15). With
    # making the empty repositories added: sqlite/fake 6.5x-27x, postgresql/sqlite 8.7x-36x.
    # (An earlier 15 runs of the checks alone gave sqlite/fake 2.8x-20x, postgresql/sqlite
    # 8.1x-34x.) The margins sit under each lowest value: 1x and 2x for the checks alone,
    # 3x for the totals; the work behind them (a SQL parse and a b-tree per statement, a
    # loopback round trip per statement, a new database or table) does not shrink under load.
    timings = layers.suite_timings(layers.factories(pg))
    checks = {name: timings[name][1] for name in REPOS}
    totals = {name: timings[name][1] + timings[name][2] for name in REPOS}
    assert checks["fake"] < checks["sqlite"] and 2 * checks["sqlite"] < checks["postgresql"], (
        timings
    )
    assert 3 * totals["fake"] < totals["sqlite"] and 3 * totals["sqlite"] < totals["postgresql"], (
        timings
    )
