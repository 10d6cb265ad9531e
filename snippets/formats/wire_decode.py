"""The protobuf wire format by hand: varints, zigzag, tags and wire types, checked against
the protobuf library byte for byte.

Run: python snippets/formats/wire_decode.py
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

# --8<-- [start:varint]
MAX_VARINT_BYTES = 10  # 64 bits / 7 bits per byte, rounded up
MAX_FIELD_NUMBER = 2**29 - 1  # the proto3 guide's largest field number, 536,870,911


class WireError(ValueError):
    """Bytes that are not a valid protobuf encoding, with where and why."""


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, least significant group first, the high bit set on
    every byte but the last. A negative int is taken as its 64-bit two's complement, which
    is what protobuf does for int32/int64, so -1 takes the full 10 bytes."""
    if not -(2**63) <= value < 2**64:
        raise WireError(f"{value} does not fit in 64 bits")
    value &= 2**64 - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """The varint starting at data[pos]: (its value, the position after it)."""
    result = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise WireError(f"truncated varint at byte {pos}: the input ends inside it")
        byte = data[pos + i]
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if result >= 2**64:
                raise WireError(f"varint at byte {pos} does not fit in 64 bits")
            return result, pos + i + 1
    raise WireError(f"varint at byte {pos} is longer than {MAX_VARINT_BYTES} bytes")


def zigzag(n: int) -> int:
    """sint32/sint64: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ... so small negatives stay short."""
    return (n << 1) ^ (n >> 63)


def unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


# --8<-- [end:varint]


# --8<-- [start:fields]
VARINT, I64, LEN, SGROUP, EGROUP, I32 = range(6)  # the wire types; 6 and 7 are invalid


def tag(field_number: int, wire_type: int) -> bytes:
    return encode_varint(field_number << 3 | wire_type)


def decode_fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Every (field number, wire type, value) in a message: ints for VARINT, I64 and I32
    (raw, unsigned: the schema says how to read them), bytes for LEN."""
    fields: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {pos - 1} (numbers start at 1)")
        if number > MAX_FIELD_NUMBER:
            raise WireError(f"field number {number} at byte {pos - 1} is over 2^29 - 1")
        if wire_type == VARINT:
            value, pos = decode_varint(data, pos)
        elif wire_type in (I64, I32):
            size = 8 if wire_type == I64 else 4
            if pos + size > len(data):
                raise WireError(f"truncated: field {number} needs {size} bytes")
            value = int.from_bytes(data[pos : pos + size], "little")
            pos += size
        elif wire_type == LEN:
            length, pos = decode_varint(data, pos)
            if pos + length > len(data):
                raise WireError(
                    f"truncated: field {number} says {length} bytes, {len(data) - pos} remain"
                )
            value, pos = data[pos : pos + length], pos + length
        else:  # groups (3, 4) are deprecated proto2 syntax; 6 and 7 do not exist
            raise WireError(f"field {number} has wire type {wire_type}, which we do not accept")
        fields.append((number, wire_type, value))
    return fields


# --8<-- [end:fields]


# --8<-- [start:schema]
F = descriptor_pb2.FieldDescriptorProto
READING = [  # message Reading { ... } as (number, name, type, label)
    (1, "id", F.TYPE_INT32, F.LABEL_OPTIONAL),
    (2, "delta", F.TYPE_SINT32, F.LABEL_OPTIONAL),
    (3, "name", F.TYPE_STRING, F.LABEL_OPTIONAL),
    (4, "samples", F.TYPE_INT32, F.LABEL_REPEATED),  # proto3 packs repeated scalars
    (5, "value", F.TYPE_DOUBLE, F.LABEL_OPTIONAL),
]


def message_class(fields: list[tuple[int, str, int, int]], name: str = "Reading") -> Any:
    """A message class built at run time from a FileDescriptorProto: what protoc would
    generate from a .proto, without generated code."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{name}.proto", package="wire")
    file.syntax = "proto3"
    message = file.message_type.add(name=name)
    for number, field_name, kind, label in fields:
        message.field.add(name=field_name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"wire.{name}"))


# --8<-- [end:schema]


# --8<-- [start:ours]
def encode_reading(id: int, delta: int, name: str, samples: list[int], value: float) -> bytes:
    """Reading encoded by hand, fields in number order, defaults (0, "", []) omitted as
    proto3 does."""
    out = bytearray()
    if id:
        out += tag(1, VARINT) + encode_varint(id)
    if delta:
        out += tag(2, VARINT) + encode_varint(zigzag(delta))
    if name:
        raw = name.encode("utf-8")
        out += tag(3, LEN) + encode_varint(len(raw)) + raw
    if samples:
        packed = b"".join(encode_varint(s) for s in samples)
        out += tag(4, LEN) + encode_varint(len(packed)) + packed
    if value:
        out += tag(5, I64) + struct.pack("<d", value)
    return bytes(out)


def decode_reading(data: bytes) -> dict[str, Any]:
    """Our decoder with the schema applied: which raw value means what. A known number
    with the wrong wire type is skipped like an unknown field, as the library does."""
    result: dict[str, Any] = {"id": 0, "delta": 0, "name": "", "samples": [], "value": 0.0}
    for number, wire_type, raw in decode_fields(data):
        if (number, wire_type) == (1, VARINT):
            result["id"] = struct.unpack("<i", struct.pack("<Q", raw)[:4])[0]  # int32
        elif (number, wire_type) == (2, VARINT):
            result["delta"] = unzigzag(raw & 0xFFFFFFFF)  # sint32: the low 32 bits
        elif (number, wire_type) == (3, LEN):
            try:
                result["name"] = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise WireError(f"field 3 (string) is not UTF-8: {error.reason}") from None
        elif (number, wire_type) == (4, LEN):  # packed
            pos = 0
            while pos < len(raw):
                sample, pos = decode_varint(raw, pos)
                result["samples"].append(struct.unpack("<i", struct.pack("<Q", sample)[:4])[0])
        elif (number, wire_type) == (4, VARINT):  # a reader must accept unpacked too
            result["samples"].append(struct.unpack("<i", struct.pack("<Q", raw)[:4])[0])
        elif (number, wire_type) == (5, I64):
            result["value"] = struct.unpack("<d", struct.pack("<Q", raw))[0]
    return result  # unknown field numbers are skipped, as an old reader would


# --8<-- [end:ours]


def library_rejects(cls: Any, data: bytes) -> bool:
    try:
        cls.FromString(data)
    except DecodeError:
        return True
    return False


MALFORMED = {
    "varint of 11 bytes": b"\x08" + b"\xff" * 10 + b"\x01",
    "varint cut short": b"\x08\xff",
    "string longer than the input": b"\x1a\x05ab",
    "fixed64 cut short": b"\x29\x00\x00",
    "wire type 7": b"\x0f\x00",
    "field number 0": b"\x00\x01",
    "field number 2^29 (one too many)": b"\x80\x80\x80\x80\x10\x01",
    "10-byte varint over 64 bits": b"\x08" + b"\xff" * 9 + b"\x7f",
}


def main() -> None:
    print("varints (unsigned):")
    for n in (1, 127, 128, 150, 300, 2**31 - 1):
        print(f"  {n:>10} -> {encode_varint(n).hex(' '):<15} ({len(encode_varint(n))} bytes)")

    Reading = message_class(READING)
    print("\nfield 1 as int32 vs field 2 as sint32, bytes from the protobuf library:")
    for n in (-1, -2, 1, -64, 64):
        as_int32 = Reading(id=n).SerializeToString()
        as_sint32 = Reading(delta=n).SerializeToString()
        print(
            f"  {n:>4}: int32 {as_int32.hex(' '):<32} ({len(as_int32):>2} bytes)"
            f"   sint32 {as_sint32.hex(' '):<8} ({len(as_sint32)} bytes)"
        )

    reading = {"id": 150, "delta": -3, "name": "cpu", "samples": [1, 300], "value": 0.5}
    library = Reading(**reading).SerializeToString()
    ours = encode_reading(**reading)
    print(f"\nReading{reading}\n  library: {library.hex(' ')}")
    print(f"  ours:    {ours.hex(' ')}\n  identical: {ours == library}")
    for number, wire_type, raw in decode_fields(library):
        shown = raw.hex(" ") if isinstance(raw, bytes) else raw
        kind = ["VARINT", "I64", "LEN", "SGROUP", "EGROUP", "I32"][wire_type]
        print(f"  field {number} {kind:<6} raw {shown}")
    print(f"  decoded by us: {decode_reading(library)}")

    print("\nmalformed input: our error, and whether the library rejects it too")
    for what, data in MALFORMED.items():
        try:
            decode_fields(data)
            ours_says = "accepted"
        except WireError as error:
            ours_says = str(error)
        rejected = library_rejects(Reading, data)
        print(f"  {what}: {data.hex(' ')}\n    ours: {ours_says}")
        print(f"    library: {'DecodeError' if rejected else 'accepted'}")


if __name__ == "__main__":
    main()
