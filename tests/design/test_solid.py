"""SOLID in backend code (docs/design/solid.md): for each principle, the test that only the
"after" makes easy is run against the "before" too, and the difference is asserted."""

from __future__ import annotations

import contextlib
import inspect
import socket
import sqlite3
import time
from fractions import Fraction

import pytest

from tests.conftest import load_snippet

solid = load_snippet("design/solid_pairs")


def test_srp_before_cannot_check_vat_without_a_database_and_an_smtp_server():
    before, _ = solid.srp_pair()
    assert before == "needs a database file and an SMTP server: ConnectionRefusedError"


def test_srp_before_computes_the_right_total_when_it_does_get_a_mail_server(tmp_path):
    """The control: the before is not wrong, only hard to test. Given a database file and a
    listening SMTP peer it sends 12.00 — the same number the after's pure function gives."""
    import sqlite3
    import threading

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE lines (customer TEXT, quantity INT, unit_cents INT)")
        conn.execute("INSERT INTO lines VALUES ('ada', 2, 500)")
    conn.close()
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)

        def smtp_sink() -> None:  # just enough SMTP for smtplib.sendmail
            peer, _ = server.accept()
            with peer, peer.makefile("rwb") as f:
                f.write(b"220 sink\r\n")
                f.flush()
                in_data = False
                for line in f:
                    if in_data:
                        if line == b".\r\n":
                            in_data = False
                            f.write(b"250 ok\r\n")
                        else:
                            received.append(line)
                    elif line.upper().startswith(b"DATA"):
                        in_data = True
                        f.write(b"354 go\r\n")
                    elif line.upper().startswith(b"QUIT"):
                        f.write(b"221 bye\r\n")
                        f.flush()
                        return
                    else:
                        f.write(b"250 ok\r\n")
                    f.flush()

        thread = threading.Thread(target=smtp_sink, daemon=True)
        thread.start()
        solid.InvoiceJobBefore(str(db), server.getsockname()[1]).run("ada")
        thread.join(5)
    assert b"".join(received).strip() == solid.invoice_text("ada", 1200).encode()
    assert solid.invoice_total([(2, 500)]) == 1200


def test_srp_after_checks_vat_with_no_io():
    assert solid.invoice_total([(2, 500)]) == 1200
    assert solid.invoice_total([(1, 999)], Fraction(0)) == 999
    sent = []
    solid.InvoiceJob(lambda c: [(1, 1000)], lambda to, body: sent.append((to, body))).run("bo")
    assert sent == [("bo@example.test", "Dear bo, you owe 12.00.")]


def test_ocp_before_refuses_a_new_method_the_after_takes_from_outside():
    with pytest.raises(ValueError, match="pickup"):
        solid.shipping_cents_before("pickup", 1200)
    methods = {**solid.METHODS, "pickup": solid.PickUp()}
    assert solid.shipping_cents(methods, "pickup", 1200) == 0
    for method in ("standard", "express"):  # the old methods are unchanged in both
        assert solid.shipping_cents(methods, method, 1200) == solid.shipping_cents_before(
            method, 1200
        )


def test_lsp_the_base_contract_fails_on_the_before_subtype_and_passes_on_the_after():
    assert all(solid.contract_checks(solid.Orders()).values())  # the base type meets it
    assert solid.contract_checks(solid.ArchivedOrdersBefore()) == {
        "unknown id gives None": False,
        "add then get": True,
        "add replaces": True,
    }
    assert all(solid.contract_checks(solid.ArchivedOrders()).values())
    # A caller written against the base type: 404 through base and after, 500 through before.
    codes = [
        solid.order_status_code(kind(), 7)
        for kind in (solid.Orders, solid.ArchivedOrdersBefore, solid.ArchivedOrders)
    ]
    assert codes == [404, 500, 404]


def test_isp_before_forces_a_fake_to_implement_seven_methods_after_one():
    fake_before = type("OneDayStore", (solid.OneDay, solid.OrderStore), {})
    with pytest.raises(TypeError, match="abstract method"):
        fake_before()
    assert len(fake_before.__abstractmethods__) == 6  # 7 in the interface, 1 written
    full = type(
        "FullStore",
        (fake_before,),
        {name: lambda self, *a: None for name in fake_before.__abstractmethods__},
    )
    # The control: once all seven exist, the before's report gives the after's answer.
    assert solid.daily_report_before(full(), "d") == solid.daily_report(solid.OneDay(), "d")
    # And what the page admits: Python does not check the annotation, so an undeclared
    # duck-typed fake runs through the before as well.
    assert solid.daily_report_before(solid.OneDay(), "d") == "d: 2 orders, 1500 cents"


def test_isp_a_mock_with_the_wide_spec_is_one_line_and_has_no_behaviour():
    """The shortcut the page names: create_autospec gives an OrderStore in one line, which
    isinstance (and so the ABC) accepts. Its cost: it answers only what the test set up."""
    from unittest import mock

    store = mock.create_autospec(solid.OrderStore, instance=True)
    assert isinstance(store, solid.OrderStore)
    store.orders_on.return_value = [{"cents": 1200}, {"cents": 300}]
    assert solid.daily_report_before(store, "d") == "d: 2 orders, 1500 cents"
    assert store.get(404) is not None  # the real contract says None; the mock says Mock
    with pytest.raises(TypeError):
        store.orders_on()  # autospec does check the signature (Mock(spec=...) would not)
    loose = mock.Mock(spec=solid.OrderStore)
    loose.orders_on()  # accepted: spec= checks names only, not arguments


def test_dip_before_can_only_wait_on_real_time_and_leaves_a_file():
    held, waited, files = solid.dip_before_test(patience=0.1)
    assert held and waited >= 0.1  # after real waiting, the hold has not expired
    assert files == ["reservations.db"]


def test_dip_before_can_be_tested_by_patching_the_global_clock_with_its_costs():
    """What the page concedes: mock.patch makes the before testable, globally, and only
    when it names the exact function the code calls; the file is written regardless."""
    from unittest import mock

    with solid.scratch_cwd() as cwd:
        reservations = solid.ReservationsBefore()
        try:
            now = [1_000_000.0]
            with mock.patch("time.time", lambda: now[0]):
                reservations.hold("12A")
                now[0] += solid.HOLD_SECONDS
                assert not reservations.is_held("12A")  # expired, with no waiting
                assert time.time() == now[0]  # ... and every caller's clock moved too
            reservations.hold("14C")
            with mock.patch("time.monotonic", lambda: 10.0**9):  # the wrong function
                assert reservations.is_held("14C")  # patch missed: still held
        finally:
            reservations.db.close()
        assert [p.name for p in cwd.iterdir()] == ["reservations.db"]


def test_dip_after_expires_the_hold_at_exactly_15_minutes_with_no_waiting():
    # No timing assertion: the after's test never reads the real clock, so it cannot
    # depend on how fast the machine is (the page prints its duration only as an aside).
    at_1459, at_1500, _ = solid.dip_after_test()
    assert (at_1459, at_1500) == (True, False)


def test_dip_after_expires_the_same_way_with_the_sqlite_adapter():
    """SqliteHolds implements the policy's port: the same fake-clock test passes on it."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        at_1459, at_1500, _ = solid.dip_after_test(holds=lambda: solid.SqliteHolds(db))
        assert (at_1459, at_1500) == (True, False)
        assert db.execute("SELECT seat FROM holds").fetchall() == [("12A",)]  # really stored


def test_dip_the_composition_root_wires_sqlite_and_the_system_clock(tmp_path):
    with contextlib.closing(sqlite3.connect(tmp_path / "reservations.db")) as db:
        reservations = solid.production_reservations(db)
        assert isinstance(reservations.holds, solid.SqliteHolds)
        assert reservations.clock is time.time
        reservations.hold("12A")
        assert reservations.is_held("12A")  # held now, by the real clock
        (at,) = db.execute("SELECT at FROM holds WHERE seat = '12A'").fetchone()
        assert abs(at - time.time()) < 60  # stamped with the system clock, not a fake one


def test_dip_the_policy_names_no_detail():
    """The page's claim: the policy's code refers to no detail. A default of time.time in
    its constructor (as this snippet once had) would fail this."""
    source = inspect.getsource(solid.Reservations)
    for detail in ("time.", "sqlite", "MemoryHolds", "SqliteHolds"):
        assert detail not in source, detail
    with pytest.raises(TypeError):
        solid.Reservations(solid.MemoryHolds())  # no clock: nothing is chosen for it


class ReservationsReadingTheRealClock(solid.Reservations):
    """The page's "Break it": one direct call to time.time() in is_held."""

    def is_held(self, seat):
        at = self.holds.taken_at(seat)
        return at is not None and time.time() - at < solid.HOLD_SECONDS


def test_break_it_one_direct_clock_call_undoes_the_injection():
    at_1459, at_1500, _ = solid.dip_after_test(ReservationsReadingTheRealClock)
    # The fake clock started at 0, so time.time() - 0 is decades: expired at once.
    assert (at_1459, at_1500) == (False, False)


def test_main_prints_each_letter_before_and_after(capsys):
    solid.main()
    out = capsys.readouterr().out
    for letter in "SOLID":
        assert f"{letter}  before: " in out
    assert out.count("   after:  ") == 5
