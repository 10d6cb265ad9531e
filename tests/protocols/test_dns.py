"""DNS (docs/protocols/dns.md): each test asserts the lesson a snippet shows."""

from __future__ import annotations

import random
import struct

import dns.flags
import dns.message
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_snippet

dns_query = load_snippet("protocols/dns_query")
dns_cache = load_snippet("protocols/dns_cache")

A, AAAA = dns_query.A, dns_query.AAAA


@pytest.fixture(scope="module")
def server():
    with dns_query.dns_server() as address:
        yield address


def test_hand_built_query_is_what_dnspython_would_send():
    mine = dns_query.build_query("www.example.test", A, query_id=0x1234)
    theirs = dns.message.make_query("www.example.test", "A", id=0x1234)
    theirs.flags = dns.flags.RD  # the same flags: a standard query, recursion desired
    assert mine == theirs.to_wire()


def test_answer_parsed_by_hand_matches_dnspython_on_the_same_bytes(server):
    response = dns_query.ask(server, dns_query.build_query("www.example.test", A, 1))
    parsed = dns_query.parse_response(response)
    assert parsed.query_id == 1 and parsed.rcode == dns_query.NOERROR and parsed.authoritative
    assert [(r[2], r[3]) for r in parsed.records] == [(300, "192.0.2.10"), (300, "192.0.2.11")]
    library = dns.message.from_wire(response)
    assert library.answer[0].ttl == 300
    assert sorted(rr.address for rr in library.answer[0]) == ["192.0.2.10", "192.0.2.11"]


def test_dnspython_client_gets_the_same_answers_from_the_hand_written_server(server):
    assert dns_query.with_dnspython(server, "www.example.test", AAAA) == (
        "NOERROR",
        ["2001:db8::10"],
    )
    assert dns_query.with_dnspython(server, "WWW.EXAMPLE.test", A)[1] == [
        "192.0.2.10",
        "192.0.2.11",
    ]  # names are case-insensitive
    assert dns_query.with_dnspython(server, "nope.example.test", A) == ("NXDOMAIN", [])
    assert dns_query.with_dnspython(server, "api.example.test", AAAA) == ("NOERROR", [])  # NODATA


def header(flags: int = 0x0100, qdcount: int = 1, query_id: int = 0xBEEF) -> bytes:
    return dns_query.HEADER.pack(query_id, flags, qdcount, 0, 0, 0)


@pytest.mark.parametrize(
    "query",
    [
        header(qdcount=0),  # no question
        header(qdcount=2) + dns_query.encode_name("a.test") + b"\0\1\0\1" * 2,
        header() + b"\x3f" + b"x" * 20,  # a label that runs past the end
        header() + b"\xc0\x0c" + b"\0\1\0\1",  # a pointer to itself: a loop
        header() + b"\x40abc\0\0\1\0\1",  # reserved label type 0b01
        header() + dns_query.encode_name("a.test"),  # no QTYPE/QCLASS
    ],
)
def test_malformed_queries_get_formerr_with_their_id(query):
    parsed = dns_query.parse_response(dns_query.answer(query))
    assert parsed.rcode == dns_query.FORMERR and parsed.query_id == 0xBEEF


def test_other_opcodes_get_notimp_and_responses_and_runts_are_dropped():
    status = header(flags=2 << 11) + dns_query.encode_name("a.test") + b"\0\1\0\1"
    assert dns_query.parse_response(dns_query.answer(status)).rcode == dns_query.NOTIMP
    assert dns_query.answer(header(flags=0x8000)) is None  # never answer a response
    assert dns_query.answer(b"\x12\x34") is None  # too short to echo an ID


def test_server_survives_a_burst_of_garbage_and_still_answers(server):
    rng = random.Random(1035)
    with dns_query.socket.socket(dns_query.socket.AF_INET, dns_query.socket.SOCK_DGRAM) as sock:
        for _ in range(200):
            sock.sendto(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))), server)
    good = dns_query.ask(server, dns_query.build_query("api.example.test", A, 9), timeout=2)
    assert dns_query.parse_response(good).records[0][3] == "192.0.2.20"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_answer_never_raises_on_arbitrary_bytes(data):
    response = dns_query.answer(data)
    assert (
        response is None
        or dns_query.parse_response(response).query_id == struct.unpack("!H", data[:2])[0]
    )


def test_cache_serves_until_the_ttl_runs_out_then_asks_again():
    clock = dns_cache.FakeClock()
    resolver = dns_cache.CachingResolver(
        dns_cache.zone_upstream({"a.test.": (["192.0.2.1"], 300)}), clock
    )
    assert resolver.resolve("a.test") == (["192.0.2.1"], 300)
    clock.now = 299.5
    assert resolver.resolve("A.TEST.") == (["192.0.2.1"], 0)  # a hit, case-insensitive
    assert resolver.upstream_queries == 1
    clock.now = 300
    resolver.resolve("a.test")  # expired exactly at the TTL
    assert resolver.upstream_queries == 2


def test_cache_remembers_nxdomain_for_the_negative_ttl_and_caps_huge_ttls():
    clock = dns_cache.FakeClock()
    upstream = dns_cache.zone_upstream({"big.test.": (["192.0.2.2"], 10**9)})
    resolver = dns_cache.CachingResolver(upstream, clock, max_ttl=3600, negative_ttl=30)
    assert resolver.resolve("big.test") == (["192.0.2.2"], 3600)
    assert resolver.resolve("nope.test") == ([], 30)
    clock.now = 29
    assert resolver.resolve("nope.test") == ([], 1) and resolver.upstream_queries == 2
    clock.now = 30
    resolver.resolve("nope.test")
    assert resolver.upstream_queries == 3
