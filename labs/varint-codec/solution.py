"""Lab: a varint and length-delimited codec — the reference solution
(docs/formats/lab-varint-codec.md).

Run: make lab LAB=varint-codec FILE=labs/varint-codec/solution.py
"""

from __future__ import annotations

import socket

MAX_VARINT_BYTES = 10  # 64 bits at 7 bits per byte
MAX_FRAME = 1 << 20  # the default limit on one frame's payload, in bytes


class CodecError(ValueError):
    """Input that is not a valid varint or frame; the message says what and where."""


# Stage 1: unsigned varints
def encode_varint(n: int) -> bytes:
    if not 0 <= n < 2**64:
        raise CodecError(f"{n} is not an unsigned 64-bit integer")
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    result = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise CodecError(f"truncated varint at byte {pos}")
        byte = data[pos + i]
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if result >= 2**64:
                raise CodecError(f"varint at byte {pos} does not fit in 64 bits")
            return result, pos + i + 1
    raise CodecError(f"varint at byte {pos} is longer than {MAX_VARINT_BYTES} bytes")


# Stage 2: zigzag
def zigzag_encode(n: int) -> int:
    if not -(2**63) <= n < 2**63:
        raise CodecError(f"{n} is not a signed 64-bit integer")
    return (n << 1) ^ (n >> 63)


def zigzag_decode(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


# Stage 3: length-delimited frames
def encode_frame(payload: bytes) -> bytes:
    return encode_varint(len(payload)) + payload


def _recv_exactly(sock: socket.socket, n: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(min(n - len(data), 65536))
        if not chunk:
            raise CodecError(f"truncated frame: the stream ended {n - len(data)} bytes into {what}")
        data += chunk
    return bytes(data)


def read_frame(sock: socket.socket, max_size: int = MAX_FRAME) -> bytes | None:
    """The next frame's payload; None if the stream ends cleanly before a frame starts."""
    header = bytearray()
    while True:
        byte = sock.recv(1)
        if not byte:
            if header:
                raise CodecError("truncated frame: the stream ended inside a length prefix")
            return None
        header += byte
        if not byte[0] & 0x80:
            break
        if len(header) >= MAX_VARINT_BYTES:
            raise CodecError(f"length prefix longer than {MAX_VARINT_BYTES} bytes")
    length, _ = decode_varint(bytes(header))
    if length > max_size:
        raise CodecError(f"frame of {length} bytes is over the limit of {max_size}")
    return _recv_exactly(sock, length, f"a {length}-byte payload")


# Stage 4: fields as protobuf lays them out (the encoding guide's "Message Structure")
VARINT, I64, LEN, I32 = 0, 1, 2, 5  # the wire types; 3 and 4 (groups) are deprecated
FIXED_SIZE = {I64: 8, I32: 4}  # I64: fixed64, double; I32: fixed32, float (little-endian)
MAX_FIELD_NUMBER = 2**29 - 1


def encode_tag(number: int, wire_type: int) -> bytes:
    if not 1 <= number <= MAX_FIELD_NUMBER:
        raise CodecError(f"field number {number} is not in 1..{MAX_FIELD_NUMBER}")
    if wire_type not in (VARINT, I64, LEN, I32):
        raise CodecError(f"wire type {wire_type} is not one of 0, 1, 2, 5")
    return encode_varint(number << 3 | wire_type)


def encode_field(number: int, wire_type: int, value: int | bytes | str) -> bytes:
    tag = encode_tag(number, wire_type)
    if wire_type == LEN:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return tag + encode_varint(len(data)) + data
    if not isinstance(value, int):
        raise CodecError(f"wire type {wire_type} carries an integer, not {type(value).__name__}")
    if wire_type == VARINT:
        return tag + encode_varint(value)
    size = FIXED_SIZE[wire_type]
    if not 0 <= value < 1 << (8 * size):
        raise CodecError(f"{value} does not fit in {size} unsigned bytes")
    return tag + value.to_bytes(size, "little")


def decode_field(data: bytes, pos: int = 0) -> tuple[int, int, int | bytes, int]:
    tag, pos = decode_varint(data, pos)
    number, wire_type = tag >> 3, tag & 7
    if not 1 <= number <= MAX_FIELD_NUMBER:
        raise CodecError(f"field number {number} at byte {pos} is not in 1..{MAX_FIELD_NUMBER}")
    if wire_type == VARINT:
        value, pos = decode_varint(data, pos)
        return number, wire_type, value, pos
    if wire_type == LEN:
        length, pos = decode_varint(data, pos)
    elif wire_type in FIXED_SIZE:
        length = FIXED_SIZE[wire_type]
    else:
        raise CodecError(f"field {number} has wire type {wire_type}, not one of 0, 1, 2, 5")
    if pos + length > len(data):
        raise CodecError(f"field {number} is cut short: {length} bytes announced, "
                         f"{len(data) - pos} left")  # fmt: skip
    raw = bytes(data[pos : pos + length])
    return (
        number,
        wire_type,
        raw if wire_type == LEN else int.from_bytes(raw, "little"),
        pos + length,
    )
