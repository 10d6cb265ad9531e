"""DNS (docs/protocols/dns.md): each test asserts the lesson a snippet shows."""

from __future__ import annotations

import random
import struct

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
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


@pytest.mark.parametrize(
    ("name", "qtype", "rcode"),
    [
        ("nope.example.test", A, "NXDOMAIN"),  # the name does not exist
        ("api.example.test", AAAA, "NOERROR"),  # NODATA: the name exists, not this type
        ("example.test", A, "NOERROR"),  # the apex exists (it holds the SOA): NODATA
    ],
)
def test_negative_answers_are_authoritative_and_carry_the_zone_soa(server, name, qtype, rcode):
    """RFC 2308 §3: an authoritative negative answer MUST carry the zone's SOA in the
    authority section; its MINIMUM and TTL set how long resolvers may cache it (§5)."""
    query = dns.message.make_query(name, dns.rdatatype.RdataType(qtype))
    response = dns.query.udp(query, server[0], port=server[1], timeout=2)
    assert dns.rcode.to_text(response.rcode()) == rcode and not response.answer
    assert response.flags & dns.flags.AA
    (soa,) = response.authority
    assert soa.name.to_text() == dns_query.ORIGIN and soa.rdtype == dns.rdatatype.SOA
    # RFC 2308 §3: "The TTL of this record is set from the minimum of the MINIMUM field of
    # the SOA record and the TTL of the SOA itself": 60, not the SOA's own 3600.
    assert (dns_query.SOA_TTL, dns_query.SOA_FIELDS[-1]) == (3600, 60)
    assert (soa.ttl, soa[0].minimum) == (60, 60)
    parsed = dns_query.parse_response(response.to_wire())
    assert parsed.soa == (60, 60)  # the hand parser too


def test_a_name_outside_the_zone_is_refused_not_denied():
    """Saying NXDOMAIN for www.example.org would claim authority over a zone we do not
    serve; an authoritative-only server answers REFUSED (RFC 1035 §4.1.1), without AA."""
    query = dns_query.build_query("www.example.org", A, 5)
    parsed = dns_query.parse_response(dns_query.answer(query))
    assert parsed.rcode == dns_query.REFUSED and not parsed.authoritative and parsed.soa is None
    for lookalike in ("badexample.test", "test"):  # a suffix match on text is not enough
        query = dns_query.build_query(lookalike, A, 5)
        assert dns_query.parse_response(dns_query.answer(query)).rcode == dns_query.REFUSED


def test_the_apex_soa_is_answered_with_its_own_ttl():
    response = dns.message.from_wire(
        dns_query.answer(dns.message.make_query("example.test", "SOA").to_wire())
    )
    assert response.rcode() == 0 and response.answer[0][0].serial == dns_query.SOA_FIELDS[2]
    assert response.answer[0].ttl == dns_query.SOA_TTL  # asked for itself: 3600, not 60


def test_the_apex_has_an_ns_record_and_the_soa_mname_resolves(server):
    """A zone's apex names its authoritative servers (RFC 1035 §3.3.11), and the SOA's
    MNAME is one of them: asking our own server for it gets an address, not NXDOMAIN."""
    assert dns_query.with_dnspython(server, "example.test", dns_query.NS) == (
        "NOERROR",
        ["ns1.example.test."],
    )
    mname = dns_query.SOA_FIELDS[0]
    assert dns_query.with_dnspython(server, mname, A) == ("NOERROR", ["192.0.2.53"])


def test_the_255_octet_limit_counts_wire_octets_not_text():
    """RFC 1035 §3.1: 255 octets on the wire, length bytes included. Four 62-octet labels
    are 4 * 63 + 1 = 253 octets (their text form is 252 characters); five 50-octet labels
    are 5 * 51 + 1 = 256 octets, but 255 characters of text with the final dot, which the old
    check on the text (> 255) let through."""
    fits = ".".join(["a" * 62] * 4)
    assert len(dns_query.encode_name(fits)) == 253
    wire = b"".join(b"\x32" + b"b" * 50 for _ in range(5)) + b"\0"
    assert len(wire) == 256 and len(".".join(["b" * 50] * 5) + ".") == 255
    with pytest.raises(ValueError, match="255 octets"):
        dns_query.decode_name(wire, 0)
    with pytest.raises(ValueError, match="255 octets"):
        dns_query.encode_name(".".join(["b" * 50] * 5))
    query = header() + wire + b"\0\1\0\1"
    assert dns_query.parse_response(dns_query.answer(query)).rcode == dns_query.FORMERR


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
    zone = {("a.example.test.", dns_cache.A): (["192.0.2.1"], 300)}
    clock, resolver = resolver_for(zone)
    assert resolver.resolve("a.example.test") == ("NOERROR", ["192.0.2.1"], 300)
    clock.now = 299.5
    assert resolver.resolve("A.EXAMPLE.TEST.") == ("NOERROR", ["192.0.2.1"], 0)  # a hit
    assert resolver.upstream_queries == 1
    clock.now = 300
    resolver.resolve("a.example.test")  # expired exactly at the TTL
    assert resolver.upstream_queries == 2


def resolver_for(zone, soa=(3600, 60), **kwargs):
    clock = dns_cache.FakeClock()
    upstream = dns_cache.zone_upstream(zone, soa=soa)
    return clock, dns_cache.CachingResolver(upstream, clock, **kwargs)


def test_negative_ttl_is_the_smaller_of_soa_minimum_and_soa_ttl():
    """RFC 2308 §5; the old resolver cached every negative answer for a fixed 30 s."""
    for soa, expected in [((3600, 60), 60), ((45, 600), 45), ((86_400, 86_400), 10_800)]:
        clock, resolver = resolver_for({}, soa=soa)
        assert resolver.resolve("nope.example.test") == ("NXDOMAIN", [], expected)
        clock.now = expected - 1
        assert resolver.resolve("nope.example.test") == ("NXDOMAIN", [], 1)
        assert resolver.upstream_queries == 1
        clock.now = expected
        resolver.resolve("nope.example.test")
        assert resolver.upstream_queries == 2


def test_negative_answers_without_soa_are_not_cached():
    """Break it (dns.md): build the resolver on zone_upstream(zone, soa=None), an upstream
    that leaves the SOA out. RFC 2308 §5: nothing negative is cached, so every lookup of
    a missing name goes upstream; with the SOA, the second lookup is a cache hit."""
    for soa, sent in [((60, 60), 1), (None, 3)]:
        clock, resolver = resolver_for({}, soa=soa)
        for t in (0, 1, 2):
            clock.now = t
            rcode, _, ttl = resolver.resolve("nope.example.test")
            assert rcode == "NXDOMAIN" and ttl == (0 if soa is None else 60 - t)
        assert resolver.upstream_queries == sent


def test_the_model_upstream_answers_like_the_server():
    """dns_cache's upstream is a function, not the server: its default SOA must be what
    the server sends in a negative answer (TTL, MINIMUM)."""
    response = dns_cache.zone_upstream({})("nope.example.test.", dns_cache.A)
    wire = dns_query.answer(dns_query.build_query("nope.example.test", A, 3))
    assert response.soa == dns_query.parse_response(wire).soa == (60, 60)


def test_cache_is_keyed_by_name_type_and_class():
    zone = {("a.example.test.", dns_cache.A): (["192.0.2.1"], 300)}
    clock, resolver = resolver_for(zone)
    assert resolver.resolve("a.example.test", dns_cache.A)[1] == ["192.0.2.1"]
    assert resolver.resolve("a.example.test", dns_cache.AAAA) == ("NOERROR", [], 60)  # NODATA
    assert resolver.upstream_queries == 2  # an A answer is no answer for AAAA
    assert resolver.resolve("a.example.test", dns_cache.A)[1] == ["192.0.2.1"]  # A still cached
    resolver.resolve("a.example.test", dns_cache.A, qclass=3)  # CHAOS is another question
    assert resolver.upstream_queries == 3


def test_nxdomain_covers_every_type_but_nodata_only_its_own():
    zone = {("api.example.test.", dns_cache.A): (["192.0.2.20"], 60)}
    clock, resolver = resolver_for(zone)
    resolver.resolve("nope.example.test", dns_cache.A)
    assert resolver.resolve("nope.example.test", dns_cache.AAAA)[0] == "NXDOMAIN"
    assert resolver.upstream_queries == 1  # the name does not exist, whatever the type
    assert resolver.resolve("api.example.test", dns_cache.AAAA) == ("NOERROR", [], 60)
    assert resolver.resolve("api.example.test", dns_cache.A) == ("NOERROR", ["192.0.2.20"], 60)
    assert resolver.upstream_queries == 3  # NODATA for AAAA said nothing about A


def test_huge_ttls_are_capped():
    zone = {("big.example.test.", dns_cache.A): (["192.0.2.2"], 10**9)}
    clock, resolver = resolver_for(zone, max_ttl=3600)
    assert resolver.resolve("big.example.test") == ("NOERROR", ["192.0.2.2"], 3600)
