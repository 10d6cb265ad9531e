"""SOLID in backend code: each principle as a before/after pair, and the test that only the
"after" makes easy, run against both.

Run: python snippets/design/solid_pairs.py
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import socket
import sqlite3
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Protocol


# --8<-- [start:srp_before]
class InvoiceJobBefore:
    """Reads the lines, prices them, words the e-mail and sends it: one class, four reasons
    to change (the schema, accounting's VAT rule, marketing's wording, the mail relay)."""

    def __init__(self, db_path: str, smtp_port: int) -> None:
        self.db_path, self.smtp_port = db_path, smtp_port

    def run(self, customer: str) -> None:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            lines = db.execute(
                "SELECT quantity, unit_cents FROM lines WHERE customer = ?", (customer,)
            ).fetchall()
        net = sum(quantity * unit for quantity, unit in lines)
        total = net + round(net * Fraction(20, 100))  # VAT, 20 %
        body = f"Dear {customer}, you owe {total / 100:.2f}."
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=1) as smtp:
            smtp.sendmail("billing@example.test", [f"{customer}@example.test"], body)


# --8<-- [end:srp_before]


# --8<-- [start:srp_after]
def invoice_total(lines: list[tuple[int, int]], vat: Fraction = Fraction(20, 100)) -> int:
    """Accounting's rule, and nothing else: cents in, cents out."""
    net = sum(quantity * unit for quantity, unit in lines)
    return net + round(net * vat)


def invoice_text(customer: str, total_cents: int) -> str:
    """Marketing's wording, and nothing else."""
    return f"Dear {customer}, you owe {total_cents / 100:.2f}."


class InvoiceJob:
    """Only the order of the steps; where lines come from and how mail goes out are given."""

    def __init__(
        self,
        lines_of: Callable[[str], list[tuple[int, int]]],
        send: Callable[[str, str], None],
    ) -> None:
        self.lines_of, self.send = lines_of, send

    def run(self, customer: str) -> None:
        total = invoice_total(self.lines_of(customer))
        self.send(f"{customer}@example.test", invoice_text(customer, total))


# --8<-- [end:srp_after]


def srp_pair() -> tuple[str, str]:
    """Check the VAT rule (2 x 5.00 + 20 % = 12.00) through each version."""
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as no_smtp:
        no_smtp.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        db = Path(tmp, "shop.db")
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("CREATE TABLE lines (customer TEXT, quantity INT, unit_cents INT)")
            conn.execute("INSERT INTO lines VALUES ('ada', 2, 500)")
        try:
            InvoiceJobBefore(str(db), no_smtp.getsockname()[1]).run("ada")
            before = "sent (unexpected)"
        except OSError as error:  # the total was computed, then lost with the failed send
            before = f"needs a database file and an SMTP server: {type(error).__name__}"
    sent: list[tuple[str, str]] = []
    InvoiceJob(lambda customer: [(2, 500)], lambda to, body: sent.append((to, body))).run("ada")
    after = f"invoice_total = {invoice_total([(2, 500)])} cents; e-mail {sent[0][1]!r}"
    return before, after


# --8<-- [start:ocp_before]
def shipping_cents_before(method: str, weight_g: int) -> int:
    """Every new method is a new branch: adding one means editing (and re-testing) this."""
    if method == "standard":
        return 490
    if method == "express":
        return 990 + weight_g // 100 * 10
    raise ValueError(f"unknown shipping method {method!r}")


# --8<-- [end:ocp_before]


# --8<-- [start:ocp_after]
class ShippingMethod(Protocol):
    def cents(self, weight_g: int) -> int: ...


class Standard:
    def cents(self, weight_g: int) -> int:
        return 490


class Express:
    def cents(self, weight_g: int) -> int:
        return 990 + weight_g // 100 * 10


def shipping_cents(methods: dict[str, ShippingMethod], method: str, weight_g: int) -> int:
    """Closed: this never changes. Open: a new method is a new entry in `methods`."""
    if method not in methods:
        raise ValueError(f"unknown shipping method {method!r}")
    return methods[method].cents(weight_g)


METHODS: dict[str, ShippingMethod] = {"standard": Standard(), "express": Express()}
# --8<-- [end:ocp_after]


class PickUp:
    """A method added by a test (or a plug-in), not by editing the module."""

    def cents(self, weight_g: int) -> int:
        return 0


def ocp_pair() -> tuple[str, str]:
    try:
        before = str(shipping_cents_before("pickup", 1200))
    except ValueError as error:
        before = f"pickup needs an edit to the function: ValueError: {error}"
    methods = {**METHODS, "pickup": PickUp()}
    after = (
        f"pickup added from outside: {shipping_cents(methods, 'pickup', 1200)} cents; "
        f"express still {shipping_cents(methods, 'express', 1200)}"
    )
    return before, after


# --8<-- [start:lsp]
class Orders:
    """The base type's contract: get() of an unknown id returns None; add() then get()
    returns what was added."""

    def __init__(self) -> None:
        self.rows: dict[int, str] = {}

    def add(self, order_id: int, sku: str) -> None:
        self.rows[order_id] = sku

    def get(self, order_id: int) -> str | None:
        return self.rows.get(order_id)


class ArchivedOrdersBefore(Orders):
    """A subtype that strengthens get()'s behaviour on a miss: it raises."""

    def get(self, order_id: int) -> str | None:
        return self.rows[order_id]  # KeyError for an unknown id


class ArchivedOrders(Orders):
    """The same subtype, keeping the base type's promise."""

    def get(self, order_id: int) -> str | None:
        return self.rows.get(order_id)


def contract_checks(orders: Orders) -> dict[str, bool]:
    """Written once against the base type; run on every subtype."""
    results = {}
    try:
        results["unknown id gives None"] = orders.get(404) is None
    except Exception:
        results["unknown id gives None"] = False
    orders.add(1, "book")
    results["add then get"] = orders.get(1) == "book"
    orders.add(1, "pen")
    results["add replaces"] = orders.get(1) == "pen"
    return results


def order_status_code(orders: Orders, order_id: int) -> int:
    """A caller written against the base type's contract (an HTTP handler)."""
    try:
        return 200 if orders.get(order_id) is not None else 404
    except Exception:
        return 500  # the subtype broke a promise the caller relied on


# --8<-- [end:lsp]


def lsp_pair() -> tuple[str, str]:
    def summary(kind: type[Orders]) -> str:
        passed = sum(contract_checks(kind()).values())
        return f"contract {passed}/3, GET of an unknown order -> {order_status_code(kind(), 7)}"

    return summary(ArchivedOrdersBefore), summary(ArchivedOrders)


# --8<-- [start:isp_before]
class OrderStore(ABC):
    """One wide interface for every client: storage, admin, finance and reports."""

    @abstractmethod
    def add(self, order: dict) -> int: ...
    @abstractmethod
    def get(self, order_id: int) -> dict | None: ...
    @abstractmethod
    def cancel(self, order_id: int) -> None: ...
    @abstractmethod
    def refund(self, order_id: int, cents: int) -> None: ...
    @abstractmethod
    def export_csv(self) -> str: ...
    @abstractmethod
    def purge_before(self, day: str) -> int: ...
    @abstractmethod
    def orders_on(self, day: str) -> list[dict]: ...


def daily_report_before(store: OrderStore, day: str) -> str:
    orders = store.orders_on(day)  # the only method this client uses
    return f"{day}: {len(orders)} orders, {sum(o['cents'] for o in orders)} cents"


# --8<-- [end:isp_before]


# --8<-- [start:isp_after]
class OrdersByDay(Protocol):
    """What the report needs, declared by the report."""

    def orders_on(self, day: str) -> list[dict]: ...


def daily_report(store: OrdersByDay, day: str) -> str:
    orders = store.orders_on(day)
    return f"{day}: {len(orders)} orders, {sum(o['cents'] for o in orders)} cents"


# --8<-- [end:isp_after]


class OneDay:
    """The smallest fake a report test needs: one method."""

    def orders_on(self, day: str) -> list[dict]:
        return [{"cents": 1200}, {"cents": 300}]


def isp_pair() -> tuple[str, str]:
    fake_before = type("OneDayStore", (OneDay, OrderStore), {})  # the same one method
    try:
        daily_report_before(fake_before(), "2026-12-01")
        before = "ran (unexpected)"
    except TypeError:
        missing = sorted(fake_before.__abstractmethods__)
        before = f"a 1-method fake is refused: TypeError, {len(missing)} abstract methods left"
    after = f"a 1-method fake is enough: {daily_report(OneDay(), '2026-12-01')!r}"
    return before, after


# --8<-- [start:dip_before]
HOLD_SECONDS = 15 * 60  # an unpaid hold on a seat expires after 15 minutes


class ReservationsBefore:
    """The policy reaches down to the details: a database file and the system clock."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("reservations.db")  # in whatever directory it runs from
        self.db.execute("CREATE TABLE IF NOT EXISTS holds (seat TEXT PRIMARY KEY, at REAL)")

    def hold(self, seat: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO holds VALUES (?, ?)", (seat, time.time()))

    def is_held(self, seat: str) -> bool:
        row = self.db.execute("SELECT at FROM holds WHERE seat = ?", (seat,)).fetchone()
        return row is not None and time.time() - row[0] < HOLD_SECONDS


# --8<-- [end:dip_before]


# --8<-- [start:dip_after]
class Clock(Protocol):
    def __call__(self) -> float: ...


class Holds(Protocol):
    """Abstractions owned by the policy; the details (SqliteHolds and time.time below, and
    the tests' MemoryHolds and FakeClock) implement them."""

    def put(self, seat: str, at: float) -> None: ...
    def taken_at(self, seat: str) -> float | None: ...


class Reservations:
    """The policy: it names only its own abstractions, never a detail (no default clock)."""

    def __init__(self, holds: Holds, clock: Clock) -> None:
        self.holds, self.clock = holds, clock

    def hold(self, seat: str) -> None:
        self.holds.put(seat, self.clock())

    def is_held(self, seat: str) -> bool:
        at = self.holds.taken_at(seat)
        return at is not None and self.clock() - at < HOLD_SECONDS


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryHolds(dict):
    def put(self, seat: str, at: float) -> None:
        self[seat] = at

    def taken_at(self, seat: str) -> float | None:
        return self.get(seat)


# --8<-- [end:dip_after]


# --8<-- [start:dip_wiring]
class SqliteHolds:
    """A detail that implements the policy's `Holds` port: the before's table, behind it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.execute("CREATE TABLE IF NOT EXISTS holds (seat TEXT PRIMARY KEY, at REAL)")

    def put(self, seat: str, at: float) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO holds VALUES (?, ?)", (seat, at))

    def taken_at(self, seat: str) -> float | None:
        row = self.db.execute("SELECT at FROM holds WHERE seat = ?", (seat,)).fetchone()
        return None if row is None else row[0]


def production_reservations(db: sqlite3.Connection) -> Reservations:
    """The composition root: the one place that names the details and plugs them in."""
    return Reservations(SqliteHolds(db), time.time)


# --8<-- [end:dip_wiring]


@contextlib.contextmanager
def scratch_cwd() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        yield Path(tmp)


def dip_before_test(patience: float = 0.2) -> tuple[bool, float, list[str]]:
    """The expiry test as the before allows it: real time. Waits `patience` seconds (a
    test cannot wait 900) and reports (still held?, seconds waited, files it left)."""
    with scratch_cwd() as cwd:
        reservations = ReservationsBefore()
        try:
            reservations.hold("12A")
            start = time.monotonic()
            while time.monotonic() - start < patience and reservations.is_held("12A"):
                time.sleep(0.02)
            held = reservations.is_held("12A")
            return held, time.monotonic() - start, sorted(os.listdir(cwd))
        finally:
            reservations.db.close()


def dip_after_test(
    reservations: type[Reservations] = Reservations, holds: Callable[[], Holds] = MemoryHolds
) -> tuple[bool, bool, float]:
    """The expiry test with an injected clock: (held at 14:59?, held at 15:00?, seconds)."""
    start = time.monotonic()
    clock = FakeClock()
    subject = reservations(holds(), clock)
    subject.hold("12A")
    clock.now += HOLD_SECONDS - 1
    before_expiry = subject.is_held("12A")
    clock.now += 1
    return before_expiry, subject.is_held("12A"), time.monotonic() - start


def dip_pair() -> tuple[str, str]:
    held, waited, files = dip_before_test()
    before = f"still held after {waited:.1f} s of real waiting (needs 900 s); left {files}"
    at_1459, at_1500, took = dip_after_test()
    after = f"held at 14:59 {at_1459}, at 15:00 {at_1500}, in {took:.1f} s; no file"
    return before, after


PAIRS = {"S": srp_pair, "O": ocp_pair, "L": lsp_pair, "I": isp_pair, "D": dip_pair}


def main() -> None:
    for letter, pair in PAIRS.items():
        before, after = pair()
        print(f"{letter}  before: {before}")
        print(f"   after:  {after}")


if __name__ == "__main__":
    main()
