"""A DNS query packet built by hand, sent over UDP to a small authoritative server on
loopback, and the answer parsed by hand and cross-checked with dnspython.

Run: python snippets/protocols/dns_query.py
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

A, AAAA = 1, 28  # record types (RFC 1035 §3.2.2, RFC 3596)
IN = 1  # the Internet class
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4  # response codes (RFC 1035 §4.1.1)
HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount

ZONE: dict[tuple[str, int], tuple[int, list[str]]] = {  # (name, type) -> (TTL, addresses)
    ("www.example.test.", A): (300, ["192.0.2.10", "192.0.2.11"]),
    ("www.example.test.", AAAA): (300, ["2001:db8::10"]),
    ("api.example.test.", A): (60, ["192.0.2.20"]),
}


# --8<-- [start:names]
def encode_name(name: str) -> bytes:
    """RFC 1035 §3.1: each label as a length byte and the label; a zero byte ends it."""
    labels = name.rstrip(".").split(".")
    if any(not 0 < len(label) <= 63 for label in labels):
        raise ValueError(f"bad label in {name!r}")
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"


def decode_name(packet: bytes, offset: int) -> tuple[str, int]:
    """Read a name at offset, following compression pointers (RFC 1035 §4.1.4).
    Returns (name, offset just after the name where it started)."""
    labels, end, jumps = [], None, 0
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
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    name = ".".join(labels) + "."
    if len(name) > 255:
        raise ValueError("name longer than 255 octets")
    return name, offset if end is None else end


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


def parse_response(packet: bytes) -> Answer:
    query_id, flags, qdcount, ancount, _, _ = HEADER.unpack_from(packet)
    if not flags & 0x8000:
        raise ValueError("not a response (QR bit clear)")
    offset = HEADER.size
    for _ in range(qdcount):  # skip the echoed question
        _, offset = decode_name(packet, offset)
        offset += 4
    records = []
    for _ in range(ancount):  # resource records (RFC 1035 §4.1.3)
        name, offset = decode_name(packet, offset)
        rtype, _rclass, ttl, rdlength = struct.unpack_from("!HHIH", packet, offset)
        offset += 10
        rdata = packet[offset : offset + rdlength]
        offset += rdlength
        if rtype in (A, AAAA):
            records.append((name, rtype, ttl, str(ipaddress.ip_address(rdata))))
    return Answer(query_id, flags & 0x000F, bool(flags & 0x0400), records)


# --8<-- [end:query]


# --8<-- [start:server]
def answer(query: bytes) -> bytes | None:
    """The server's whole job: a response for any datagram, or None to drop it."""
    if len(query) < HEADER.size:
        return None  # too short to even echo an ID
    query_id, flags, qdcount, *_ = HEADER.unpack_from(query)
    if flags & 0x8000:
        return None  # a response, not a query: never answer those (no loops)

    def reply(rcode: int, question: bytes = b"", records: bytes = b"", count: int = 0) -> bytes:
        rd = flags & 0x0100  # echo "recursion desired"; AA: we are authoritative
        header = HEADER.pack(
            query_id, 0x8000 | 0x0400 | rd | rcode, 1 if question else 0, count, 0, 0
        )
        return header + question + records

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
    if not any(zone_name == name for zone_name, _ in ZONE):
        return reply(NXDOMAIN, question)  # the name does not exist at all
    ttl, addresses = ZONE.get((name, qtype), (0, []))  # exists, maybe not this type
    records = b"".join(
        struct.pack("!HHHIH", 0xC00C, qtype, IN, ttl, len(packed)) + packed  # 0xC00C: the name
        for packed in (ipaddress.ip_address(a).packed for a in addresses)  # at offset 12
    )
    return reply(NOERROR, question, records, len(addresses))


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


# --8<-- [end:server]


def ask(server: tuple[str, int], packet: bytes, timeout: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, server)
        response, _ = sock.recvfrom(512)
        return response


# --8<-- [start:crosscheck]
def with_dnspython(server: tuple[str, int], name: str, qtype: int) -> tuple[str, list[str]]:
    """The same question asked by dnspython's own client: (rcode, sorted addresses)."""
    query = dns.message.make_query(name, dns.rdatatype.RdataType(qtype))
    response = dns.query.udp(query, server[0], port=server[1], timeout=2)
    addresses = sorted(rr.address for rrset in response.answer for rr in rrset)
    return dns.rcode.to_text(response.rcode()), addresses


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
        missing = parse_response(ask(server, build_query("nope.example.test", A, 7)))
        print(f"nope.example.test: rcode {missing.rcode} ({dns.rcode.to_text(missing.rcode)})")
        broken = HEADER.pack(0xABCD, 0x0100, 1, 0, 0, 0) + b"\x3f" + b"x" * 20  # 63 promised
        garbage = parse_response(ask(server, broken))
        rcode = dns.rcode.to_text(garbage.rcode)
        print(f"a name whose label runs past the end: rcode {garbage.rcode} ({rcode}), id echoed")
        print(
            f"and the server still answers: {parse_response(ask(server, query)).rcode == NOERROR}"
        )


if __name__ == "__main__":
    main()
