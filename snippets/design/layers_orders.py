"""One orders service in three layers: the same service checks pass unchanged against a fake
repository, SQLite and PostgreSQL, and a rule kept in the service holds on every entry point.

Run: python snippets/design/layers_orders.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import copy
import json
import os
import re
import sqlite3
import statistics
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"  # every wait on the server is bounded
RUNS = 5  # each suite runs this many times per repository, interleaved; the median is printed


# --8<-- [start:domain]
class OrderError(Exception):
    """A request the domain refuses (the presentation layer maps each kind to a status)."""


class NotFound(OrderError):
    pass


class InvalidOrder(OrderError):
    pass


class AlreadyShipped(OrderError):
    pass


@dataclass
class Order:
    customer: str
    sku: str
    quantity: int
    status: str = "placed"  # placed -> shipped, or placed -> cancelled
    id: int | None = None  # given by the repository when the order is added


# --8<-- [end:domain]


# --8<-- [start:port]
class OrderRepository(Protocol):
    """What the service needs from storage, and nothing else (PoEAA's Repository)."""

    def add(self, order: Order) -> int: ...
    def get(self, order_id: int) -> Order | None: ...
    def save(self, order: Order) -> None: ...
    def for_customer(self, customer: str) -> list[Order]: ...


# --8<-- [end:port]


# --8<-- [start:service]
MAX_QUANTITY = 100
MAX_TEXT = 100


def is_text(value: str) -> bool:
    """1..MAX_TEXT characters, none a control character (NUL is one: PostgreSQL cannot store
    it) or a lone surrogate (not Unicode text: UTF-8 cannot encode it)."""
    return 0 < len(value) <= MAX_TEXT and all(
        unicodedata.category(char) not in ("Cc", "Cs") for char in value
    )


class OrderService:
    """The use cases. The one domain rule that matters here lives in `cancel`. Each
    repository call commits on its own: this service controls no transaction."""

    def __init__(self, repo: OrderRepository) -> None:
        self.repo = repo

    def place(self, customer: str, sku: str, quantity: int) -> Order:
        if not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidOrder(f"quantity must be 1..{MAX_QUANTITY}, not {quantity}")
        if not (is_text(customer) and is_text(sku)):
            raise InvalidOrder(f"customer and sku must be 1..{MAX_TEXT} characters of text")
        order = Order(customer, sku, quantity)
        order.id = self.repo.add(order)
        return order

    def get(self, order_id: int) -> Order:
        order = self.repo.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        return order

    def ship(self, order_id: int) -> Order:
        order = self.get(order_id)
        if order.status != "placed":
            raise OrderError(f"order {order_id} is {order.status}")
        order.status = "shipped"
        self.repo.save(order)
        return order

    def cancel(self, order_id: int) -> Order:
        order = self.get(order_id)
        if order.status == "shipped":  # THE rule: here, and in no other layer
            raise AlreadyShipped(f"order {order_id} has shipped; return it instead")
        order.status = "cancelled"
        self.repo.save(order)
        return order

    def orders_of(self, customer: str) -> list[Order]:
        return self.repo.for_customer(customer)


# --8<-- [end:service]


# --8<-- [start:fake]
class FakeRepository:
    """In memory. It stores and returns *copies*, as a database does: a service that changes
    an order and forgets `save` loses the change here too, as it would in SQL."""

    def __init__(self) -> None:
        self._rows: dict[int, Order] = {}

    def add(self, order: Order) -> int:
        order_id = len(self._rows) + 1
        stored = copy.copy(order)
        stored.id = order_id
        self._rows[order_id] = stored
        return order_id

    def get(self, order_id: int) -> Order | None:
        row = self._rows.get(order_id)
        return None if row is None else copy.copy(row)

    def save(self, order: Order) -> None:
        assert order.id in self._rows, "save() of an order that was never added"
        self._rows[order.id] = copy.copy(order)

    def for_customer(self, customer: str) -> list[Order]:
        return [copy.copy(o) for _, o in sorted(self._rows.items()) if o.customer == customer]


# --8<-- [end:fake]


# --8<-- [start:sql]
class SqlRepository:
    """The same SQL on SQLite (sqlite3, `?` placeholders) and PostgreSQL (psycopg, `%s`)."""

    COLUMNS = "customer, sku, quantity, status, id"
    IDS = range(1, 2**63)  # both schemas' ids are 64-bit integers, given from 1

    def __init__(self, conn: Any, placeholder: str) -> None:
        self.conn, self.p = conn, placeholder

    def _run(self, sql: str, params: tuple = ()) -> Any:
        return self.conn.execute(sql.replace("?", self.p), params)

    def add(self, order: Order) -> int:
        (order_id,) = self._run(
            "INSERT INTO orders (customer, sku, quantity, status) VALUES (?, ?, ?, ?)"
            " RETURNING id",  # RETURNING: PostgreSQL, and SQLite since 3.35
            (order.customer, order.sku, order.quantity, order.status),
        ).fetchone()
        self.conn.commit()
        return order_id

    def get(self, order_id: int) -> Order | None:
        if order_id not in self.IDS:  # no row has it (and sqlite3 raises OverflowError)
            return None
        row = self._run(f"SELECT {self.COLUMNS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        return None if row is None else Order(*row)

    def save(self, order: Order) -> None:
        self._run("UPDATE orders SET status = ? WHERE id = ?", (order.status, order.id))
        self.conn.commit()

    def for_customer(self, customer: str) -> list[Order]:
        rows = self._run(
            f"SELECT {self.COLUMNS} FROM orders WHERE customer = ? ORDER BY id", (customer,)
        ).fetchall()
        return [Order(*row) for row in rows]


# --8<-- [end:sql]


SCHEMA = {
    "sqlite": "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL,"
    " sku TEXT NOT NULL, quantity INTEGER NOT NULL, status TEXT NOT NULL)",
    "postgresql": "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " customer text NOT NULL, sku text NOT NULL, quantity integer NOT NULL,"
    " status text NOT NULL)",
}


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=design/layers_orders`, which starts one and stops it afterwards"
        )
    return url


@contextmanager
def postgres_schema(url: str) -> Iterator[psycopg.Connection]:
    """A connection whose search_path is a uniquely named schema, dropped at the end."""
    schema = f"layers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"SET search_path = {schema}")
            yield conn
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


RepoFactory = Callable[[], OrderRepository]


def factories(pg: psycopg.Connection | None) -> dict[str, RepoFactory]:
    """Each call gives an empty repository: a fresh dict, SQLite database or PG table.
    (`pg` may be None where PostgreSQL's factory is never called.)"""

    def sqlite_repo() -> OrderRepository:
        conn = sqlite3.connect(":memory:")
        conn.execute(SCHEMA["sqlite"])
        return SqlRepository(conn, "?")

    def postgres_repo() -> OrderRepository:
        assert pg is not None, "no PostgreSQL connection"
        pg.execute("DROP TABLE IF EXISTS orders")
        pg.execute(SCHEMA["postgresql"])
        return SqlRepository(pg, "%s")

    return {"fake": FakeRepository, "sqlite": sqlite_repo, "postgresql": postgres_repo}


# --8<-- [start:suite]
# The service's tests. Each takes an OrderService and knows nothing of its storage.
def check_place_then_read_back(svc: OrderService) -> None:
    order = svc.place("ada", "book", 2)
    assert svc.get(order.id) == Order("ada", "book", 2, "placed", order.id)


def check_ids_are_distinct_and_lists_keep_order(svc: OrderService) -> None:
    first, _, third = svc.place("ada", "a", 1), svc.place("bob", "b", 1), svc.place("ada", "c", 3)
    assert [o.id for o in svc.orders_of("ada")] == [first.id, third.id]


def check_cancel_a_placed_order(svc: OrderService) -> None:
    order = svc.place("ada", "book", 1)
    svc.cancel(order.id)
    assert svc.get(order.id).status == "cancelled"  # read back: the change was stored


def check_a_shipped_order_cannot_be_cancelled(svc: OrderService) -> None:
    order = svc.place("ada", "book", 1)
    svc.ship(order.id)
    try:
        svc.cancel(order.id)
    except AlreadyShipped:
        pass
    else:
        raise AssertionError("a shipped order was cancelled")
    assert svc.get(order.id).status == "shipped"


def check_unknown_order_is_not_found(svc: OrderService) -> None:
    try:
        svc.cancel(999)
    except NotFound:
        return
    raise AssertionError("cancelling order 999 did not raise NotFound")


def check_quantity_out_of_range_is_refused(svc: OrderService) -> None:
    for quantity in (0, -1, MAX_QUANTITY + 1):
        try:
            svc.place("ada", "book", quantity)
        except InvalidOrder:
            continue
        raise AssertionError(f"quantity {quantity} was accepted")
    assert svc.orders_of("ada") == []


def check_text_no_database_can_store_is_refused(svc: OrderService) -> None:
    for bad in ("a\x00b", "\ud800", "", "x" * (MAX_TEXT + 1)):  # NUL, a lone surrogate
        for customer, sku in ((bad, "book"), ("ada", bad)):
            try:
                svc.place(customer, sku, 1)
            except InvalidOrder:
                continue
            raise AssertionError(f"{customer!r}, {sku!r} was accepted")
    assert svc.orders_of("ada") == []


def check_an_id_beyond_64_bits_is_not_found(svc: OrderService) -> None:
    try:
        svc.cancel(2**64)
    except NotFound:
        return
    raise AssertionError("cancelling order 2**64 did not raise NotFound")


SUITE = [
    check_place_then_read_back,
    check_ids_are_distinct_and_lists_keep_order,
    check_cancel_a_placed_order,
    check_a_shipped_order_cannot_be_cancelled,
    check_unknown_order_is_not_found,
    check_quantity_out_of_range_is_refused,
    check_text_no_database_can_store_is_refused,
    check_an_id_beyond_64_bits_is_not_found,
]


def run_suite(new_repo: RepoFactory, service: type[OrderService] = OrderService) -> dict[str, str]:
    """Every check on a fresh, empty repository: {check name: "ok" or why it failed}."""
    results = {}
    for check in SUITE:
        try:
            check(service(new_repo()))
            results[check.__name__] = "ok"
        except AssertionError as failure:
            results[check.__name__] = f"FAILED: {failure}"
    return results


# --8<-- [end:suite]


# --8<-- [start:http]
MAX_BODY = 4096
ID_DIGITS = 18  # at most 18 ASCII digits: every such id fits a 64-bit integer
CANCEL = re.compile(rf"/orders/([0-9]{{1,{ID_DIGITS}}})/cancel")
STATUS = {NotFound: 404, InvalidOrder: 422, AlreadyShipped: 409, OrderError: 409}
Response = tuple[int, dict[str, str], dict]  # status, headers, JSON body


def handle(svc: OrderService, method: str, path: str, body: bytes = b"") -> Response:
    """The HTTP entry point: parse and check the *shape* of the request, call one use case,
    map the outcome to a status. No rule about orders is decided here."""
    match = CANCEL.fullmatch(path)
    if path != "/orders" and match is None:
        return 404, {}, {"error": "no such resource"}
    if method != "POST":  # both resources take POST only; RFC 9110 15.5.6: 405 needs Allow
        return 405, {"Allow": "POST"}, {"error": f"{method} not allowed here"}
    if len(body) > MAX_BODY:
        return 413, {}, {"error": f"body over {MAX_BODY} bytes"}
    try:
        if match:
            order = svc.cancel(int(match[1]))
            return 200, {}, {"id": order.id, "status": order.status}
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # CPython's json: nesting too deep
            return 400, {}, {"error": "body is not JSON"}
        if not (
            isinstance(data, dict)
            and isinstance(data.get("customer"), str)
            and isinstance(data.get("sku"), str)
            and type(data.get("quantity")) is int
        ):
            return 422, {}, {"error": "need customer (string), sku (string), quantity (integer)"}
        order = svc.place(data["customer"], data["sku"], data["quantity"])
        return 201, {}, {"id": order.id, "status": order.status}
    except OrderError as refused:
        return STATUS[type(refused)], {}, {"error": str(refused)}


# --8<-- [end:http]


# --8<-- [start:cli]
def admin_cli(svc: OrderService, argv: list[str]) -> tuple[int, str]:
    """The second entry point: a support tool, `orders-admin cancel 7`. Exit 0 or 1."""
    order_id = argv[1] if len(argv) == 2 and argv[0] == "cancel" else ""
    # ASCII digits only: str.isdigit() is also true of "²", which int() refuses, and
    # isdecimal() of "٣", which int() reads as 3.
    if not (order_id.isascii() and order_id.isdecimal() and len(order_id) <= ID_DIGITS):
        return 2, "usage: orders-admin cancel ORDER_ID"
    try:
        order = svc.cancel(int(order_id))
    except OrderError as refused:
        return 1, f"refused: {refused}"
    return 0, f"order {order.id} {order.status}"


# --8<-- [end:cli]


# --8<-- [start:misplaced]
class ServiceWithoutTheRule(OrderService):
    """The control: the same service with the rule taken out of `cancel` ..."""

    def cancel(self, order_id: int) -> Order:
        order = self.get(order_id)
        order.status = "cancelled"
        self.repo.save(order)
        return order


def handle_with_the_rule(svc: OrderService, method: str, path: str, body: bytes = b"") -> Response:
    """... and put in the HTTP handler instead, where the CLI never passes."""
    if method == "POST" and (match := CANCEL.fullmatch(path)):
        order = svc.repo.get(int(match[1]))
        if order is not None and order.status == "shipped":
            return 409, {}, {"error": "already shipped"}
    return handle(svc, method, path, body)


# --8<-- [end:misplaced]


def try_to_cancel_a_shipped_order(
    new_repo: RepoFactory, rule_in: str
) -> dict[str, tuple[Any, str]]:
    """Ship an order, then cancel it through HTTP and through the CLI (a fresh repository
    and order each time). `rule_in` is "service" or "presentation"."""
    service = OrderService if rule_in == "service" else ServiceWithoutTheRule
    http = handle if rule_in == "service" else handle_with_the_rule
    outcome = {}
    for entry in ("HTTP", "CLI"):
        svc = service(new_repo())
        order = svc.place("ada", "book", 1)
        svc.ship(order.id)
        if entry == "HTTP":
            answer: Any = http(svc, "POST", f"/orders/{order.id}/cancel")[0]
        else:
            answer = admin_cli(svc, ["cancel", str(order.id)])[0]
        outcome[entry] = (answer, svc.get(order.id).status)
    return outcome


def suite_timings(repos: dict[str, RepoFactory]) -> dict[str, tuple[int, float, float]]:
    """{repository: (checks passed, median ms per suite run in the checks, median ms making
    the empty repositories)}, runs interleaved. The two are timed apart because making an
    empty PostgreSQL repository (DROP and CREATE TABLE) takes longer than the checks."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in repos}
    passed = {}
    for _ in range(RUNS):
        for name, new_repo in repos.items():
            in_checks = in_setup = 0.0
            passed[name] = 0
            for check in SUITE:
                start = time.perf_counter()
                svc = OrderService(new_repo())
                ready = time.perf_counter()
                try:
                    check(svc)
                    passed[name] += 1
                except AssertionError:
                    pass
                in_setup += ready - start
                in_checks += time.perf_counter() - ready
            times[name].append((in_checks * 1000, in_setup * 1000))
    return {
        name: (
            passed[name],
            statistics.median(t[0] for t in times[name]),
            statistics.median(t[1] for t in times[name]),
        )
        for name in repos
    }


def main() -> None:
    with postgres_schema(database_url()) as pg:
        repos = factories(pg)
        print(f"The service suite, unchanged, on three repositories ({len(SUITE)} checks):")
        print(f"  {'':<20}median ms per suite run ({RUNS} runs)")
        print(f"  {'repository':<12}{'passed':>8}{'in the checks':>16}{'making repos':>16}")
        for name, (ok, checks_ms, setup_ms) in suite_timings(repos).items():
            print(f"  {name:<12}{f'{ok}/{len(SUITE)}':>8}{checks_ms:>16.2f}{setup_ms:>16.2f}")
        print()
        print("Cancel a shipped order through each entry point (answer, then stored status):")
        print(f"  {'repository':<12}{'rule in':<14}{'HTTP':<22}CLI")
        for name, new_repo in repos.items():
            for rule_in in ("service", "presentation"):
                out = try_to_cancel_a_shipped_order(new_repo, rule_in)
                http, cli = (f"{a} -> {s}" for a, s in (out["HTTP"], out["CLI"]))
                cli += "   <- rule bypassed" if out["CLI"][1] == "cancelled" else ""
                print(f"  {name:<12}{rule_in:<14}{http:<22}exit {cli}")


if __name__ == "__main__":
    main()
