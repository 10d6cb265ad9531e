"""Framing a stream of messages: length-delimited protobuf vs NDJSON, clean, truncated and
corrupted — what each reader gets back, and what a CRC per frame adds.

Run: python snippets/formats/framing_streams.py
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

EVENTS = [{"id": i, "name": name} for i, name in enumerate(
    ["alpha", "bravo", "charlie", "delta", "echo"], 1)]  # fmt: skip


def event_class() -> Any:
    """message Event { int64 id = 1; string name = 2; }, built at run time."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="event.proto", package="s", syntax="proto3")
    message = file.message_type.add(name="Event")
    message.field.add(name="id", number=1, type=f.TYPE_INT64, label=f.LABEL_OPTIONAL)
    message.field.add(name="name", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("s.Event"))


Event = event_class()


# --8<-- [start:varint]
# A copy of wire_decode.py's varint code (snippets run alone, so they do not import each other).
def encode_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for i in range(10):
        if pos + i >= len(data):
            raise ValueError("truncated length prefix")
        result |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return result, pos + i + 1
    raise ValueError("length prefix longer than 10 bytes")


# --8<-- [end:varint]


# --8<-- [start:writers]
def length_delimited(events: list[dict[str, Any]], crc: bool = False) -> bytes:
    """Each message's length as a varint, then the message (then its CRC-32, if asked)."""
    out = bytearray()
    for event in events:
        payload = Event(**event).SerializeToString()
        out += encode_varint(len(payload)) + payload
        if crc:
            out += zlib.crc32(payload).to_bytes(4, "big")
    return bytes(out)


def ndjson(events: list[dict[str, Any]]) -> bytes:
    """One JSON text per line, each ending in \\n (JSON escapes newlines inside strings)."""
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)


# --8<-- [end:writers]


# --8<-- [start:readers]
MAX_MESSAGE = 1 << 20  # bytes: a longer announced length is refused before it is read


def read_length_delimited(data: bytes, crc: bool = False, max_size: int = MAX_MESSAGE) -> list[Any]:
    """Each message as a dict, or the error for it. A broken frame ends the stream: after
    it there is no way to find where the next message starts."""
    got: list[Any] = []
    pos = 0
    while pos < len(data):
        try:
            length, pos = decode_varint(data, pos)
            if length > max_size:
                raise ValueError(f"frame of {length} bytes is over the limit of {max_size}")
            end = pos + length + (4 if crc else 0)
            if end > len(data):
                raise ValueError(f"truncated frame: {length} bytes announced, "
                                 f"{len(data) - pos} left")  # fmt: skip
        except ValueError as error:
            return [*got, f"error: {error}"]
        payload = data[pos : pos + length]
        pos = end
        if crc and zlib.crc32(payload) != int.from_bytes(data[end - 4 : end], "big"):
            got.append("error: CRC mismatch")
            continue
        try:
            message = Event.FromString(payload)
            got.append({"id": message.id, "name": message.name})
        except DecodeError:
            got.append("error: not a valid Event")
    return got


def read_ndjson(data: bytes) -> list[Any]:
    """Each line as a dict, or the error for it; a bad line costs only that line."""
    got: list[Any] = []
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if i == len(lines) - 1:
            if line:  # bytes after the last \n: the stream was cut inside a line
                got.append(f"error: truncated line ({len(line)} bytes, no newline)")
            break
        try:  # decoded first: json.loads(bytes) would also accept UTF-16 and UTF-32
            got.append(json.loads(line.decode("utf-8")))
        except UnicodeDecodeError:
            got.append("error: not UTF-8")
        except ValueError:
            got.append("error: not JSON")
    return got


# --8<-- [end:readers]


def damage(data: bytes, at: int, new: int | None = None) -> bytes:
    """The stream cut before byte `at` (new is None), or with that byte replaced."""
    return data[:at] if new is None else data[:at] + bytes([new]) + data[at + 1 :]


def scenarios() -> dict[str, dict[str, bytes]]:
    """Each kind of damage applied to each encoding, at the same message (the third)."""
    ld, crc, nd = length_delimited(EVENTS), length_delimited(EVENTS, crc=True), ndjson(EVENTS)

    third_ld = encode_varint(len(Event(**EVENTS[2]).SerializeToString()))
    third_ld += Event(**EVENTS[2]).SerializeToString()
    ld3, crc3 = ld.index(third_ld), crc.index(third_ld)
    nd3 = nd.index(b'{"id":3')
    name_ld, name_crc, name_nd = (x.index(b"charlie") + 2 for x in (ld, crc, nd))
    return {
        "clean": {"length-delimited": ld, "with CRC-32": crc, "NDJSON": nd},
        "cut inside message 3": {
            "length-delimited": damage(ld, ld3 + 4),
            "with CRC-32": damage(crc, crc3 + 4),
            "NDJSON": damage(nd, nd3 + 4),
        },
        "a letter changed in message 3": {  # "charlie" -> "chbrlie"
            "length-delimited": damage(ld, name_ld, ord("b")),
            "with CRC-32": damage(crc, name_crc, ord("b")),
            "NDJSON": damage(nd, name_nd, ord("b")),
        },
        "message 3's first byte changed": {  # its length prefix 11 -> 127, or its "{"
            "length-delimited": damage(ld, ld3, 127),
            "with CRC-32": damage(crc, crc3, 127),
            "NDJSON": damage(nd, nd3, ord("[")),
        },
        "message 3's framing made shorter": {  # its length prefix 11 -> 2, or a \n inside it
            "length-delimited": damage(ld, ld3, 2),
            "with CRC-32": damage(crc, crc3, 2),
            "NDJSON": damage(nd, nd3 + 4, ord("\n")),
        },
    }


def summary(got: list[Any]) -> str:
    """Per message read: "#n" (event n, intact), WRONG (a value no one sent, and no
    error), or the error."""
    marks = []
    for item in got:
        if isinstance(item, str):
            marks.append(item.removeprefix("error: "))
        else:
            marks.append(f"#{item['id']}" if item in EVENTS else f"WRONG {item}")
    return f"{len(got)} read: " + " | ".join(marks)


def read(kind: str, data: bytes) -> list[Any]:
    if kind == "NDJSON":
        return read_ndjson(data)
    return read_length_delimited(data, crc=kind == "with CRC-32")


def main() -> None:
    for scenario, streams in scenarios().items():
        print(f"{scenario}:")
        for kind, data in streams.items():
            print(f"  {kind:<17} {summary(read(kind, data))}")


if __name__ == "__main__":
    main()
