"""Encapsulation: one HTTP request wrapped, layer by layer, in a TCP segment, an IPv4 packet
and an Ethernet frame, each header built by hand with its real field layout.

Run: python snippets/protocols/layers_encapsulation.py
"""

from __future__ import annotations

import struct

REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


# --8<-- [start:headers]
def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """RFC 9293 §3.1: ports, sequence and ack numbers, offset+flags, window, checksum."""
    flags = 0x18  # PSH + ACK: data on an established connection
    header = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, flags, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(header) + len(payload))  # 6 = TCP
    csum = checksum(pseudo + header + payload)
    return header[:16] + struct.pack("!H", csum) + header[18:] + payload


def ipv4_packet(src: bytes, dst: bytes, segment: bytes) -> bytes:
    """RFC 791 §3.1: version/IHL, length, TTL, protocol (6 = TCP), header checksum."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0x4000, 64, 6, 0, src, dst)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + segment


def ethernet_frame(dst_mac: bytes, src_mac: bytes, packet: bytes) -> bytes:
    """IEEE 802.3: destination MAC, source MAC, EtherType 0x0800 = IPv4 (no FCS shown)."""
    return dst_mac + src_mac + struct.pack("!H", 0x0800) + packet


# --8<-- [end:headers]


# --8<-- [start:wrap]
def wrap(payload: bytes) -> list[tuple[str, bytes]]:
    """Each layer's unit, outermost last: what the kernel and the NIC add to your bytes."""
    src, dst = bytes([192, 0, 2, 10]), bytes([198, 51, 100, 7])  # documentation addresses
    segment = tcp_segment(src, dst, 51000, 80, payload)
    packet = ipv4_packet(src, dst, segment)
    frame = ethernet_frame(bytes.fromhex("aabbccddeeff"), bytes.fromhex("112233445566"), packet)
    return [("HTTP message", payload), ("TCP segment", segment), ("IPv4 packet", packet),
            ("Ethernet frame", frame)]  # fmt: skip


# --8<-- [end:wrap]


def main() -> None:
    layers = wrap(REQUEST)
    inner = 0
    for name, unit in layers:
        added = f"+{len(unit) - inner} header bytes" if inner else "the application's bytes"
        print(f"{name:<15} {len(unit):4} bytes  ({added})")
        inner = len(unit)
    packet, segment = layers[2][1], layers[1][1]
    print(f"IPv4 header checksum verifies: {checksum(packet[:20]) == 0}")
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 6, len(segment))
    print(
        f"TCP checksum (over a pseudo-header + segment) verifies: {checksum(pseudo + segment) == 0}"
    )
    print(f"the frame ends with the request, untouched: {layers[3][1].endswith(REQUEST)}")
    overhead = 1 - len(REQUEST) / len(layers[3][1])
    print(f"headers are {overhead:.1%} of this frame; at a 1460-byte payload, {54 / 1514:.1%}")
    # Linux adds the 12-byte timestamp option (RFC 7323) to every segment by default
    # (net.ipv4.tcp_timestamps=1): a 32-byte TCP header, so 1448 bytes fit a 1514-byte frame.
    print(f"with Linux's TCP timestamps: 66 header bytes, 1448 of payload, {66 / 1514:.1%}")


if __name__ == "__main__":
    main()
