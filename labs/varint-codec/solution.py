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
