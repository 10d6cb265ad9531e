"""Testing a backend (docs/operations/testing.md): a fake that accepts what PostgreSQL's
foreign key refuses; a consumer-driven contract verified against a real HTTP provider;
hypothesis shrinking a chunked-encoding bug and a stateful LRU test against a model; and
the bad input the provider server and the chunked decoder get."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_snippet

real = load_snippet("operations/testing_fake_vs_real")
contract = load_snippet("operations/testing_contract")
shrink = load_snippet("operations/testing_shrinking")
lru = load_snippet("operations/testing_lru_stateful")


# --- Fake vs real PostgreSQL (testing_fake_vs_real.py).
def test_the_service_tests_pass_on_the_fake_fail_on_postgresql_and_the_fix_passes_both(
    database_url,
):
    rows = {(code, repo): results for code, repo, results in real.service_table(database_url)}
    fk = "FAIL  ForeignKeyViolation (SQLSTATE 23503)"
    assert rows == {
        ("buggy", "fake"): ["pass", "pass"],
        ("buggy", "postgresql"): ["pass", fk],  # only the real database shows the bug
        ("fixed", "fake"): ["pass", "pass"],  # the control: the fix passes on both
        ("fixed", "postgresql"): ["pass", "pass"],
    }


def test_the_fake_leaves_an_orphan_order_that_postgresql_cannot_hold(database_url):
    fake = real.FakeRepository()
    customer = real.sign_up_and_order(fake, "ada@example.com", 1250)
    real.close_account_buggy(fake, customer)
    assert not fake.customer_exists(customer) and fake.orders_of(customer) == [1250]
    assert dict(real.repository_table(database_url)) == {
        "fake": "FAIL  accepted; 1 order left pointing at no customer",
        "postgresql": "pass  refused: ForeignKeyViolation (SQLSTATE 23503)",
    }
    with real.postgres(database_url) as fresh:  # after the error, the customer is still there
        repo = fresh()
        customer = real.sign_up_and_order(repo, "ada@example.com", 1250)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            real.close_account_buggy(repo, customer)
        assert repo.customer_exists(customer) and repo.orders_of(customer) == [1250]
        real.close_account(repo, customer)
        assert not repo.customer_exists(customer) and repo.orders_of(customer) == []


def test_the_check_constraint_is_another_rule_only_postgresql_knows(database_url):
    fake = real.FakeRepository()
    real.sign_up_and_order(fake, "ada@example.com", 0)  # the fake takes a free order
    with real.postgres(database_url) as fresh, pytest.raises(psycopg.errors.CheckViolation):
        real.sign_up_and_order(fresh(), "ada@example.com", 0)


def test_break_it_on_delete_cascade_makes_the_buggy_code_pass_on_postgresql(
    database_url, monkeypatch
):
    # The page's "Break it": the schema deletes the orders itself; the buggy code now passes
    # on PostgreSQL too -- the rule moved into the schema, where only the real database has it.
    monkeypatch.setattr(
        real,
        "SCHEMA",
        real.SCHEMA.replace(
            "REFERENCES customers (id)", "REFERENCES customers (id) ON DELETE CASCADE"
        ),
    )
    rows = {(code, repo): results for code, repo, results in real.service_table(database_url)}
    assert all(results == ["pass", "pass"] for results in rows.values()), rows
    with real.postgres(database_url) as fresh:
        repo = fresh()
        customer = real.sign_up_and_order(repo, "ada@example.com", 1250)
        real.close_account_buggy(repo, customer)
        assert repo.orders_of(customer) == []  # PostgreSQL deleted them
    fake = real.FakeRepository()
    customer = real.sign_up_and_order(fake, "ada@example.com", 1250)
    real.close_account_buggy(fake, customer)
    assert fake.orders_of(customer) == [1250]  # the fake knows no cascade either


def test_without_database_url_the_snippet_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        real.database_url()
    assert "make run S=operations/testing_fake_vs_real" in str(exit_.value)


# --- Consumer-driven contract (testing_contract.py).
def test_a_renamed_or_retyped_field_breaks_the_contract_while_the_providers_unit_tests_pass():
    rows = {version: contract.provider_row(version) for version in contract.PROVIDER_VERSIONS}
    assert all(unit for unit, _, _ in rows.values())  # every provider's own test passes
    assert rows["v1"][1] == [] and rows["v2 adds created_at"][1] == []  # the control
    assert rows["v2 renames name"][1] == ["GET /users/7: body.name is missing"]
    assert rows["v2 makes id a string"][1] == [
        "GET /users/7: body.id: expected a number, got string '7'"
    ]
    # and the contract's verdict is the consumer's fate against the real provider
    for version, (_, problems, consumer) in rows.items():
        assert consumer.startswith("FAIL" if problems else "pass"), (version, consumer)
    assert "KeyError" in rows["v2 renames name"][2]
    assert "ValueError" in rows["v2 makes id a string"][2]


def test_the_consumer_passes_against_a_stub_built_from_its_contract():
    with contract.serve(contract.stub_route(contract.CONTRACT)) as port:
        assert contract.consumer_test(port) == (
            "pass: Ada Lovelace <ada@example.com>, customer #00007"
        )


def test_break_it_exact_values_instead_of_types_reject_a_compatible_provider():
    # The page's "Break it": drop "match": "type" (Pact's default is equality); a provider
    # whose test data for "user 7 exists" is another person now fails, though nothing the
    # consumer relies on changed. With type matching (the control) it is verified.
    grace = {"id": 7, "email": "grace@example.com", "name": "Grace Hopper"}
    exact = contract.json.loads(contract.json.dumps(contract.CONTRACT))
    del exact["interactions"][0]["response"]["match"]
    for rules, expected in ((contract.CONTRACT, []), (exact, 2)):
        provider = contract.Provider("v1", user_7=grace)
        with contract.serve(provider.route) as port:
            problems = contract.verify(rules, port, provider.set_state)
        if expected == []:
            assert problems == []
        else:
            assert problems == [
                "GET /users/7: body.email: expected 'ada@example.com', got 'grace@example.com'",
                "GET /users/7: body.name: expected 'Ada Lovelace', got 'Grace Hopper'",
            ]


@pytest.mark.parametrize(
    ("expected", "actual", "found"),
    [
        ({"a": 1}, {"a": True}, ["body.a: expected a number, got boolean True"]),
        ({"a": {"b": "x"}}, {"a": {}}, ["body.a.b is missing"]),
        ({"a": {"b": "x"}}, {"a": "x"}, ["body.a: expected a object, got string 'x'"]),
        ({"a": [1]}, {"a": [2, 3]}, []),
        ({"a": None}, {"a": 0}, ["body.a: expected a null, got number 0"]),
        ({"a": 1}, {"a": 2.5, "extra": 1}, []),  # extra keys are fine (Postel's law)
    ],
)
def test_type_matching_rules(expected, actual, found):
    assert contract.mismatches(expected, actual, "type") == found


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /users/7\r\n\r\n", 400),  # HTTP/0.9's form, which http.server would serve
        (b"GET /users/7 HTTP/1.1\r\n\r\n", 400),  # no Host: RFC 9112 3.2 says 400
        (b"GET /users/7 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /users/7 HTTP/1.0\r\n\r\n", 200),  # HTTP/1.0 needs no Host
        (b"GET /users/7 HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),  # but never two
        (b"GET /users/7 HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400),  # an invalid value
        (b"GET /users/7 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200),  # an IPv6 literal
        (b"GET /users/7 HTTP/1.1\r\nHost: x\r\n\r\n", 200),  # the control
        (b"GET /users/" + b"7" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /users/7 HTTP/1.1\r\nX-Big: " + b"z" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /users/7 HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
        (b"POST /users/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 501),
        (b"GET /users/12345678901234567890 HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /users/abc HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ],
)
def test_the_provider_answers_malformed_and_oversized_requests(request_bytes, status):
    provider = contract.Provider("v1")
    provider.set_state("user 7 exists")
    with contract.serve(provider.route) as port:
        answer = raw(port, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]


def test_a_silent_client_is_dropped_and_others_are_served_meanwhile():
    provider = contract.Provider("v1")
    provider.set_state("user 7 exists")
    with contract.serve(provider.route) as port:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
            silent.sendall(b"GET /users/7 HTTP/1.1\r\n")  # and never the rest
            status, _, _ = contract.call(port, "GET", "/users/7")  # served meanwhile
            assert status == 200
            assert silent.recv(1024) == b""  # the server closed it: no answer, no hang
        took = time.monotonic() - start
    # a hang guard, not a measurement: closed by the handler's timeout, long before ours
    assert contract.TIMEOUT * 0.9 <= took < contract.TIMEOUT + 6, took


def one_shot_server(answer: bytes | None) -> tuple[socket.socket, threading.Thread]:
    """A broken provider on 127.0.0.1:0: reads a request, then sends `answer` and closes, or
    (None) holds the connection without answering until the client leaves."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def run() -> None:
        for _ in range(2):  # the contract's two interactions
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                conn.recv(65536)
                if answer is None:
                    conn.recv(65536)  # until the client gives up and closes
                else:
                    conn.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "body is not JSON: b'hello'"),
        (b"not http at all\r\n\r\n", "no answer (BadStatusLine"),
        (b"", "no answer (RemoteDisconnected"),
        (None, "no answer (TimeoutError"),
    ],
)
def test_verification_reports_a_broken_provider_and_does_not_crash_or_hang(
    answer, problem, monkeypatch
):
    monkeypatch.setattr(contract, "TIMEOUT", 0.5)  # the hung provider: half a second each
    listener, thread = one_shot_server(answer)
    try:
        problems = contract.verify(contract.CONTRACT, listener.getsockname()[1], lambda state: None)
    finally:
        listener.close()
        thread.join(10)
    assert problems and problems[0].startswith("GET /users/7: "), problems
    assert any(problem in p for p in problems), problems


# --- Hypothesis shrinking (testing_shrinking.py).
def test_hypothesis_shrinks_the_decimal_size_bug_to_ten_zero_bytes_and_the_fix_passes():
    buggy = shrink.check_round_trip(shrink.encode_chunked_buggy)
    assert buggy.failures[-1] == (b"\x00" * 10, 10)  # the smallest body where 10 != 0x10
    first_body, first_size = buggy.failures[0]
    assert len(first_body) >= 10 and first_size >= 10
    assert buggy.failures[0] != buggy.failures[-1]  # shrinking did something
    fixed = shrink.check_round_trip(shrink.encode_chunked)
    assert fixed.failures == [] and fixed.examples == 300  # the control


def test_break_it_chunks_under_ten_bytes_hide_the_bug():
    # The page's "Break it": a generator that never makes a chunk of 10 bytes or more never
    # reaches the bug -- a property is only as strong as its strategies.
    hidden = shrink.check_round_trip(shrink.encode_chunked_buggy, max_chunk=9)
    assert hidden.failures == [] and hidden.examples == 300
    shown = shrink.check_round_trip(shrink.encode_chunked_buggy, max_chunk=10)
    assert shown.failures[-1] == (b"\x00" * 10, 10)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "truncated"),
        (b"5\r\nabc", "truncated"),
        (b"zz\r\nabc\r\n0\r\n\r\n", "bad chunk-size line"),
        (b"-1\r\n0\r\n\r\n", "bad chunk-size line"),
        (b"3\r\nabcX\r\n0\r\n\r\n", "chunk not followed by CRLF"),
        (b"0\r\n\r\nextra", "bytes after the last chunk"),
        (b"0\r\nno colon\r\n\r\n", "bad trailer line"),
        (b"1" * 5000, "line too long"),
        (b"f" * 17 + b"\r\n", "bad chunk-size line"),  # 16 hex digits at most
        (b"ffffffff\r\n" + b"a" * 10, "body larger than"),  # refused before it is read
    ],
)
def test_the_decoder_refuses_malformed_and_oversized_bodies(data, error):
    with pytest.raises(shrink.ChunkedError, match=error):
        shrink.decode_chunked(data)


def test_the_decoder_ignores_extensions_and_reads_past_trailers():
    data = b"3;name=value\r\nabc\r\n2 ; x\r\nde\r\n0\r\nExpires: never\r\n\r\n"
    assert shrink.decode_chunked(data) == b"abcde"
    assert shrink.decode_chunked(b"A\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n") == b"x" * 10


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.binary(max_size=200))
def test_the_decoder_on_arbitrary_bytes_returns_or_raises_chunked_error_only(data):
    with contextlib.suppress(shrink.ChunkedError):
        shrink.decode_chunked(data, max_body=1000)


# --- Stateful LRU test against a model (testing_lru_stateful.py).
def test_the_stateful_test_shrinks_each_planted_bug_to_its_shortest_sequence():
    error, steps = lru.find_bug(lru.NoRefreshOnGet)
    assert steps[0] == "cache = NoRefreshOnGet(capacity=2)" and len(steps) == 4
    assert [s.split("(")[0] for s in steps[1:]] == ["cache.put", "cache.put", "cache.get"]
    assert "cache.keys()" in error
    error, steps = lru.find_bug(lru.EvictsOneLate)
    assert steps[0] == "cache = EvictsOneLate(capacity=1)" and len(steps) == 3
    assert [s.split("(")[0] for s in steps[1:]] == ["cache.put", "cache.put"]


def test_the_correct_cache_passes_more_sequences_than_the_page_runs():
    error, steps = lru.find_bug(lru.LRUCache, max_examples=200)
    assert error == "" and steps[0].startswith("cache = LRUCache(")  # the control


def test_break_it_comparing_only_what_get_returns_misses_the_no_refresh_bug():
    # The page's "Break it": without the after-every-step comparison of cache.keys() with the
    # model, 50 sequences never line up a hit, an eviction and a get of the evicted key; the
    # off-by-one is still found, one step longer (a get of the key it should have evicted).
    assert lru.find_bug(lru.NoRefreshOnGet, check_order=False)[0] == ""
    error, steps = lru.find_bug(lru.EvictsOneLate, check_order=False)
    assert len(steps) == 4 and steps[-1].startswith("cache.get(") and "returned" in error


@pytest.mark.parametrize("capacity", [0, -1, "2", 1.5, None])
def test_a_cache_refuses_a_capacity_that_is_not_a_positive_int(capacity):
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        lru.LRUCache(capacity)
