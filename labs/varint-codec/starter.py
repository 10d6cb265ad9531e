"""Lab: a varint and length-delimited codec (docs/formats/lab-varint-codec.md).

Fill in the TODOs stage by stage; after each, run the stages against this file:

Run: make lab LAB=varint-codec FILE=labs/varint-codec/starter.py

Copy it first if you like (cp labs/varint-codec/starter.py my_codec.py) and pass FILE=.
The stages import this file as a module and call the functions below by name, so keep
their names and signatures. Only the standard library is needed (stage 4 checks your
bytes against the protobuf library, which the project installs for you).
Every bad input raises CodecError (a ValueError) whose message says what is wrong.
"""

from __future__ import annotations

import socket

MAX_VARINT_BYTES = 10  # 64 bits at 7 bits per byte
MAX_FRAME = 1 << 20  # the default limit on one frame's payload, in bytes


class CodecError(ValueError):
    """Input that is not a valid varint or frame; the message says what and where."""


# Stage 1: unsigned varints
def encode_varint(n: int) -> bytes:
    """n (0 <= n < 2**64) as a varint: 7 bits per byte, least significant group first,
    the high bit set on every byte except the last. 300 -> b"\\xac\\x02"."""
    # TODO stage 1
    raise NotImplementedError("stage 1: encode_varint")


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """The varint starting at data[pos]: (its value, the position just after it)."""
    # TODO stage 1 (stage 5: a varint longer than 10 bytes, or cut short, is a CodecError)
    raise NotImplementedError("stage 1: decode_varint")


# Stage 2: zigzag
def zigzag_encode(n: int) -> int:
    """A signed 64-bit n mapped to an unsigned one: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    # TODO stage 2
    raise NotImplementedError("stage 2: zigzag_encode")


def zigzag_decode(z: int) -> int:
    # TODO stage 2
    raise NotImplementedError("stage 2: zigzag_decode")


# Stage 3: length-delimited frames
def encode_frame(payload: bytes) -> bytes:
    """The payload's length as a varint, then the payload."""
    # TODO stage 3
    raise NotImplementedError("stage 3: encode_frame")


def read_frame(sock: socket.socket, max_size: int = MAX_FRAME) -> bytes | None:
    """Read one frame from a connected socket and return its payload; return None when
    the stream ends cleanly between frames. recv() may return fewer bytes than asked for.
    (Stage 5: a stream that ends inside a frame, or a length over max_size, is a
    CodecError — raised without waiting for a payload that is over the limit.)"""
    # TODO stage 3
    raise NotImplementedError("stage 3: read_frame")
