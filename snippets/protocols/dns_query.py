"""A DNS query packet built by hand, sent over UDP to a small authoritative server on
loopback, and the answer parsed by hand and cross-checked with dnspython.

Run: python snippets/protocols/dns_query.py
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

A, NS, SOA, AAAA = 1, 2, 6, 28  # record types (RFC 1035 §3.2.2, RFC 3596)
IN = 1  # the Internet class
NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 3, 4, 5  # RCODEs (RFC 1035 §4.1.1)
HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount

ORIGIN = "example.test."  # the zone this server is authoritative for
ZONE: dict[tuple[str, int], tuple[int, list[str]]] = {  # (name, type) -> (TTL, addresses)
    ("www.example.test.", A): (300, ["192.0.2.10", "192.0.2.11"]),
    ("www.example.test.", AAAA): (300, ["2001:db8::10"]),
    ("api.example.test.", A): (60, ["192.0.2.20"]),
    ("ns1.example.test.", A): (3600, ["192.0.2.53"]),  # the name server named by NS and SOA
}
# The zone's apex holds its NS record (RFC 1035 §3.3.11: which server is authoritative) and
# its SOA record (§3.3.13). The SOA's last field, MINIMUM, is the negative-caching TTL
# (RFC 2308 §4). In a negative answer the server sends the SOA with TTL
# min(MINIMUM, the SOA record's own TTL) (RFC 2308 §3), and a resolver caches the "no"
# for that long (§5).
NS_TTL, NS_NAME = 3600, "ns1.example.test."
SOA_TTL = 3600
SOA_FIELDS = (NS_NAME, "hostmaster.example.test.", 2026120101, 7200, 900, 1209600, 60)


# --8<-- [start:names]
def encode_name(name: str) -> bytes:
    """RFC 1035 §3.1: each label as a length byte and the label; a zero byte ends it."""
    labels = name.rstrip(".").split(".")
    if any(not 0 < len(label) <= 63 for label in labels):
        raise ValueError(f"bad label in {name!r}")
    wire = b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"
    if len(wire) > 255:
        raise ValueError("name longer than 255 octets")
    return wire


def decode_name(packet: bytes, offset: int) -> tuple[str, int]:
    """Read a name at offset, following compression pointers (RFC 1035 §4.1.4).
    Returns (name, offset just after the name where it started)."""
    labels, end, jumps, octets = [], None, 0, 1  # octets: the name's wire length
    while True:
        if offset >= len(packet):
            raise ValueError("name runs past the end of the packet")
        length = packet[offset]
        if length & 0xC0 == 0xC0:  # a pointer: 14 bits of offset into the packet
            if offset + 1 >= len(packet) or (jumps := jumps + 1) > 16:
                raise ValueError("bad or looping compression pointer")
            end = offset + 2 if end is None else end
            offset = ((length & 0x3F) << 8) | packet[offset + 1]
            continue
        if length & 0xC0:
            raise ValueError(f"reserved label type {length:#x}")
        offset += 1
        if length == 0:
            break
        octets += 1 + length
        if octets > 255:  # RFC 1035 §3.1: counted on the wire, length bytes included
            raise ValueError("name longer than 255 octets")
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels) + ".", offset if end is None else end


# --8<-- [end:names]


# --8<-- [start:query]
def build_query(name: str, qtype: int, query_id: int) -> bytes:
    """Header (RFC 1035 §4.1.1) + one question (§4.1.2)."""
    flags = 0x0100  # QR=0 (a query), opcode 0 (standard), RD=1 (recursion desired)
    return (
        HEADER.pack(query_id, flags, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, IN)
    )


@dataclass
class Answer:
    query_id: int
    rcode: int
    authoritative: bool
    records: list[tuple[str, int, int, str]]  # (name, type, TTL, address)
    soa: tuple[int, int] | None  # from the authority section: (its TTL, its MINIMUM)


def parse_response(packet: bytes) -> Answer:
    query_id, flags, qdcount, ancount, nscount, _ = HEADER.unpack_from(packet)
    if not flags & 0x8000:
        raise ValueError("not a response (QR bit clear)")
    offset = HEADER.size
    for _ in range(qdcount):  # skip the echoed question
        _, offset = decode_name(packet, offset)
        offset += 4
    records, soa = [], None
    for index in range(ancount + nscount):  # resource records (RFC 1035 §4.1.3)
        name, offset = decode_name(packet, offset)
        rtype, _rclass, ttl, rdlength = struct.unpack_from("!HHIH", packet, offset)
        offset += 10
        rdata = packet[offset : offset + rdlength]
        if rtype in (A, AAAA) and index < ancount:
            records.append((name, rtype, ttl, str(ipaddress.ip_address(rdata))))
        elif rtype == SOA and index >= ancount:  # MNAME, RNAME, then five 32-bit numbers
            minimum = struct.unpack_from("!I", packet, offset + rdlength - 4)[0]
            soa = (ttl, minimum)
        offset += rdlength
    return Answer(query_id, flags & 0x000F, bool(flags & 0x0400), records, soa)


# --8<-- [end:query]


# --8<-- [start:server]
def soa_record(ttl: int = SOA_TTL) -> bytes:
    mname, rname, *numbers = SOA_FIELDS
    rdata = encode_name(mname) + encode_name(rname) + struct.pack("!5I", *numbers)
    return encode_name(ORIGIN) + struct.pack("!HHIH", SOA, IN, ttl, len(rdata)) + rdata


def negative_soa() -> bytes:
    """RFC 2308 §3: in a negative answer the SOA's TTL is min(its own TTL, its MINIMUM)."""
    return soa_record(ttl=min(SOA_TTL, SOA_FIELDS[-1]))


def answer(query: bytes) -> bytes | None:
    """The server's whole job: a response for any datagram, or None to drop it."""
    if len(query) < HEADER.size:
        return None  # too short to even echo an ID
    query_id, flags, qdcount, *_ = HEADER.unpack_from(query)
    if flags & 0x8000:
        return None  # a response, not a query: never answer those (no loops)

    def reply(
        rcode: int, question: bytes = b"", answers: Sequence[bytes] = (), authority: bytes = b""
    ) -> bytes:
        rd = flags & 0x0100  # echo "recursion desired"
        aa = 0x0400 if rcode in (NOERROR, NXDOMAIN) else 0  # authoritative for our zone only
        header = HEADER.pack(
            query_id, 0x8000 | aa | rd | rcode, 1 if question else 0, len(answers),
            1 if authority else 0, 0,
        )  # fmt: skip
        return header + question + b"".join(answers) + authority

    if (flags >> 11) & 0xF != 0:
        return reply(NOTIMP)  # only standard queries
    try:
        if qdcount != 1:
            raise ValueError("exactly one question is supported")
        name, end = decode_name(query, HEADER.size)
        qtype, qclass = struct.unpack_from("!HH", query, end)
    except (ValueError, struct.error):
        return reply(FORMERR)  # RFC 1035 §4.1.1: unable to interpret the query
    question = query[HEADER.size : end + 4]
    name = name.lower()  # names compare case-insensitively (RFC 4343)
    if qclass != IN:
        return reply(NOTIMP, question)
    if name != ORIGIN and not name.endswith("." + ORIGIN):
        return reply(REFUSED, question)  # not our zone, and we do not recurse: no AA
    if name == ORIGIN and qtype == SOA:
        return reply(NOERROR, question, [soa_record()])
    if name == ORIGIN and qtype == NS:  # 0xC00C: the question's name, the apex
        rdata = encode_name(NS_NAME)
        return reply(NOERROR, question, [struct.pack("!HHHIH", 0xC00C, NS, IN, NS_TTL,
                                                     len(rdata)) + rdata])  # fmt: skip
    ttl, addresses = ZONE.get((name, qtype), (0, []))
    if not addresses:  # RFC 2308 §3: a negative answer carries the zone's SOA
        exists = name == ORIGIN or any(zone_name == name for zone_name, _ in ZONE)
        return reply(NOERROR if exists else NXDOMAIN, question, authority=negative_soa())
    records = [  # 0xC00C: a pointer to the question's name, at offset 12
        struct.pack("!HHHIH", 0xC00C, qtype, IN, ttl, len(packed)) + packed
        for packed in (ipaddress.ip_address(a).packed for a in addresses)
    ]
    return reply(NOERROR, question, records)


# --8<-- [end:server]


# --8<-- [start:udp]
@contextmanager
def dns_server() -> Iterator[tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)  # so the loop notices `stop`
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, client = sock.recvfrom(512)  # classic DNS over UDP: 512 bytes
            except TimeoutError:
                continue
            response = answer(query)
            if response is not None:
                sock.sendto(response, client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()


# --8<-- [end:udp]


def ask(server: tuple[str, int], packet: bytes, timeout: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, server)
        response, _ = sock.recvfrom(512)
        return response


# --8<-- [start:crosscheck]
def with_dnspython(server: tuple[str, int], name: str, qtype: int) -> tuple[str, list[str]]:
    """The same question asked by dnspython's own client: (rcode, sorted answer data)."""
    query = dns.message.make_query(name, dns.rdatatype.RdataType(qtype))
    response = dns.query.udp(query, server[0], port=server[1], timeout=2)
    data = sorted(rr.to_text() for rrset in response.answer for rr in rrset)
    return dns.rcode.to_text(response.rcode()), data


# --8<-- [end:crosscheck]


def main() -> None:
    with dns_server() as server:
        query = build_query("www.example.test", A, query_id=0x1234)
        print(f"query ({len(query)} bytes): {query.hex(' ')}")
        response = ask(server, query)
        parsed = parse_response(response)
        print(f"response ({len(response)} bytes): id {parsed.query_id:#06x}, rcode {parsed.rcode},"
              f" authoritative {parsed.authoritative}")  # fmt: skip
        for name, rtype, ttl, address in parsed.records:
            print(f"  {name} TTL {ttl} {'A' if rtype == A else 'AAAA'} {address}")
        library = dns.message.from_wire(response)
        same = sorted(rr.address for rrset in library.answer for rr in rrset) == sorted(
            r[3] for r in parsed.records
        )
        print(f"dnspython parses the same bytes to the same answers: {same}")
        print(f"dnspython's own query for AAAA: {with_dnspython(server, 'www.example.test', AAAA)}")
        print(f"the zone's name server (NS): {with_dnspython(server, 'example.test', NS)},"
              f" its A: {with_dnspython(server, NS_NAME, A)[1]}")  # fmt: skip
        for name, qtype in [("nope.example.test", A), ("api.example.test", AAAA),
                            ("example.test", A), ("www.example.org", A)]:  # fmt: skip
            got = parse_response(ask(server, build_query(name, qtype, 7)))
            rcode = dns.rcode.to_text(got.rcode) + (" = NODATA" if got.rcode == NOERROR else "")
            soa = f"SOA TTL {got.soa[0]}, MINIMUM {got.soa[1]}" if got.soa else "no SOA"
            print(f"{name} {'A' if qtype == A else 'AAAA'}: rcode {got.rcode} ({rcode}),"
                  f" authoritative {got.authoritative}, {soa}")  # fmt: skip
        broken = HEADER.pack(0xABCD, 0x0100, 1, 0, 0, 0) + b"\x3f" + b"x" * 20  # 63 promised
        garbage = parse_response(ask(server, broken))
        rcode = dns.rcode.to_text(garbage.rcode)
        print(f"a name whose label runs past the end: rcode {garbage.rcode} ({rcode}), id echoed")
        print(
            f"and the server still answers: {parse_response(ask(server, query)).rcode == NOERROR}"
        )


if __name__ == "__main__":
    main()
