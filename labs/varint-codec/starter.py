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


# Stage 4: fields as protobuf lays them out (the encoding guide's "Message Structure")
VARINT, I64, LEN, I32 = 0, 1, 2, 5  # the wire types; 3 and 4 (groups) are deprecated
MAX_FIELD_NUMBER = 2**29 - 1


def encode_tag(number: int, wire_type: int) -> bytes:
    """A field's tag: the varint of (number << 3) | wire_type. Field 16, VARINT -> 80 01.
    A number outside 1..2**29 - 1 or a wire type not in 0, 1, 2, 5 is a CodecError."""
    # TODO stage 4
    raise NotImplementedError("stage 4: encode_tag")


def encode_field(number: int, wire_type: int, value: int | bytes | str) -> bytes:
    """The tag, then the value: VARINT a varint; I64 8 and I32 4 bytes, little-endian
    (value an unsigned int); LEN a varint length, then the bytes (a str as its UTF-8)."""
    # TODO stage 4
    raise NotImplementedError("stage 4: encode_field")


def decode_field(data: bytes, pos: int = 0) -> tuple[int, int, int | bytes, int]:
    """The field at data[pos]: (number, wire_type, value, the position just after it).
    value is an int for VARINT, I64 and I32 (unsigned, little-endian for the fixed ones)
    and the raw bytes for LEN. (Stage 5: a field cut short, field number 0 or a wire type
    not in 0, 1, 2, 5 is a CodecError.)"""
    # TODO stage 4
    raise NotImplementedError("stage 4: decode_field")
