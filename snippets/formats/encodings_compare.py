"""One record, and a list of 10,000, in JSON, XML, Protocol Buffers, Avro, MessagePack and
CBOR: exact sizes, sizes after gzip and zstd, and encode/decode speed as ratios of medians.

Run: python snippets/formats/encodings_compare.py
"""

from __future__ import annotations

import gzip
import io
import json
import random
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import cbor2
import fastavro
import msgpack
import orjson
import zstandard
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# --8<-- [start:record]
RECORD = {
    "id": 48213,
    "name": "Ada Lovelace",
    "email": "ada@example.org",
    "active": True,
    "score": 0.875,
    "tags": ["admin", "beta"],
    "created": 1764547200,  # Unix seconds: no date type common to all six formats
}


def records(n: int, seed: int = 6) -> list[dict[str, Any]]:
    """n records shaped like RECORD, from a seeded generator (so every size is exact)."""
    rng = random.Random(seed)
    words = ["admin", "beta", "staff", "trial", "eu", "us", "mobile", "web"]
    return [
        {
            "id": rng.randrange(1, 10**6),
            "name": f"user{rng.randrange(10**5)} {rng.choice(['Ng', 'Smith', 'Okafor'])}",
            "email": f"u{i}@example.org",
            "active": rng.random() < 0.8,
            "score": round(rng.random(), 3),
            "tags": rng.sample(words, rng.randrange(0, 4)),
            "created": 1764547200 + rng.randrange(10**7),
        }
        for i in range(n)
    ]


# --8<-- [end:record]

# --8<-- [start:schemas]
AVRO_RECORD = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "active", "type": "boolean"},
        {"name": "score", "type": "double"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "created", "type": "long"},
    ],
}
AVRO_ONE = fastavro.parse_schema(AVRO_RECORD)
AVRO_MANY = fastavro.parse_schema({"type": "array", "items": AVRO_RECORD})
F = descriptor_pb2.FieldDescriptorProto
PROTO_FIELDS = [  # message User { int64 id = 1; string name = 2; ... }
    ("id", F.TYPE_INT64, F.LABEL_OPTIONAL),
    ("name", F.TYPE_STRING, F.LABEL_OPTIONAL),
    ("email", F.TYPE_STRING, F.LABEL_OPTIONAL),
    ("active", F.TYPE_BOOL, F.LABEL_OPTIONAL),
    ("score", F.TYPE_DOUBLE, F.LABEL_OPTIONAL),
    ("tags", F.TYPE_STRING, F.LABEL_REPEATED),
    ("created", F.TYPE_INT64, F.LABEL_OPTIONAL),
]


def proto_classes() -> tuple[Any, Any]:
    """User and `message Users { repeated User users = 1; }`, built at run time."""
    file = descriptor_pb2.FileDescriptorProto(name="users.proto", package="enc", syntax="proto3")
    user = file.message_type.add(name="User")
    for number, (name, kind, label) in enumerate(PROTO_FIELDS, 1):
        user.field.add(name=name, number=number, type=kind, label=label)
    many = file.message_type.add(name="Users")
    many.field.add(
        name="users", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".enc.User"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    get = message_factory.GetMessageClass
    return get(pool.FindMessageTypeByName("enc.User")), get(pool.FindMessageTypeByName("enc.Users"))


User, Users = proto_classes()
# --8<-- [end:schemas]


# --8<-- [start:codecs]
def xml_encode(rows: list[dict[str, Any]]) -> bytes:
    root = ET.Element("users")
    for row in rows:
        user = ET.SubElement(root, "user", id=str(row["id"]))
        for key in ("name", "email", "score", "created"):
            ET.SubElement(user, key).text = str(row[key])
        ET.SubElement(user, "active").text = "true" if row["active"] else "false"
        tags = ET.SubElement(user, "tags")
        for tag in row["tags"]:
            ET.SubElement(tags, "tag").text = tag
    return ET.tostring(root, encoding="utf-8")


def xml_decode(data: bytes) -> list[dict[str, Any]]:
    """XML has only text: the types come back from code that knows the schema."""
    return [
        {
            "id": int(u.get("id")),
            "name": u.findtext("name"),
            "email": u.findtext("email"),
            "active": u.findtext("active") == "true",
            "score": float(u.findtext("score")),
            "tags": [t.text for t in u.find("tags")],
            "created": int(u.findtext("created")),
        }
        for u in ET.fromstring(data)
    ]


def proto_decode(data: bytes) -> list[dict[str, Any]]:
    """Parse, then read every field into a dict, as the other decoders return."""
    return [
        {n: (list(getattr(u, n)) if n == "tags" else getattr(u, n)) for n, _, _ in PROTO_FIELDS}
        for u in Users.FromString(data).users
    ]


def avro_encode(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, AVRO_MANY, rows)  # no header: the schema is known
    return out.getvalue()


CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "JSON": (
        lambda rows: json.dumps(rows, separators=(",", ":")).encode(),
        json.loads,
    ),
    "XML": (xml_encode, xml_decode),
    "Protobuf": (lambda rows: Users(users=rows).SerializeToString(), proto_decode),
    "Avro": (avro_encode, lambda data: fastavro.schemaless_reader(io.BytesIO(data), AVRO_MANY)),
    "MessagePack": (msgpack.packb, msgpack.unpackb),
    "CBOR": (cbor2.dumps, cbor2.loads),
}
# Timed beside the six, to separate the library from the format: the same JSON bytes
# through another library, and Protobuf's parse alone, without copying into dicts.
ALTERNATIVES: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "JSON/orjson": (orjson.dumps, orjson.loads),
    "Protobuf/parse": (CODECS["Protobuf"][0], Users.FromString),
}
# --8<-- [end:codecs]


# The timed batch: 500 records, 7 repeats. The ratios (and the orderings the test asserts)
# are for this batch size only; other sizes are not timed.
SPEED_RECORDS, SPEED_REPEATS = 500, 7


# --8<-- [start:measure]
def sizes(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """Bytes per format: encoded, then gzip (level 6) and zstd (level 3) of that."""
    zstd = zstandard.ZstdCompressor(level=3)
    result = {}
    for name, (encode, _) in CODECS.items():
        data = encode(rows)
        result[name] = (len(data), len(gzip.compress(data, 6, mtime=0)), len(zstd.compress(data)))
    return result


def speeds(
    rows: list[dict[str, Any]],
    repeats: int = 7,
    seed: int = 1,
    codecs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Encode and decode CPU times per format (time.process_time: the time this process
    ran, not the time it waited for a core on a busy machine), the formats interleaved in
    a shuffled order on every repeat. Returns, per format and direction, the ratio of its
    median to JSON's median, the range of the per-repeat ratios (the spread), and the
    median in seconds."""
    codecs = codecs or {**CODECS, **ALTERNATIVES}
    order = list(codecs)
    times: dict[tuple[str, str], list[float]] = {(n, d): [] for n in order for d in "ed"}
    rng = random.Random(seed)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            encode, decode = codecs[name]
            start = time.process_time()
            data = encode(rows)
            middle = time.process_time()
            decode(data)
            times[name, "e"].append(middle - start)
            times[name, "d"].append(time.process_time() - middle)
    result = {}
    for (name, direction), samples in times.items():
        base = times["JSON", direction]
        per_repeat = [t / b for t, b in zip(samples, base, strict=True)]
        result[name, direction] = (
            statistics.median(samples) / statistics.median(base),
            min(per_repeat),
            max(per_repeat),
            statistics.median(samples),
        )
    return result


# --8<-- [end:measure]


def main() -> None:
    print("one record, bytes: encoded / gzip / zstd")
    for name, (raw, gz, zs) in sizes([RECORD]).items():
        print(f"  {name:<12} {raw:>5} {gz:>5} {zs:>5}")
    for n in (100, 10_000):
        print(f"\n{n:,} records, bytes: encoded / gzip / zstd, and each as a share of JSON's")
        table = sizes(records(n))
        json_raw, json_gz, json_zs = table["JSON"]
        for name, (raw, gz, zs) in table.items():
            print(
                f"  {name:<12} {raw:>8} {gz:>7} {zs:>7}   "
                f"{raw / json_raw:5.2f} {gz / json_gz:5.2f} {zs / json_zs:5.2f}"
            )

    rows, repeats = records(SPEED_RECORDS), SPEED_REPEATS
    for name, (encode, decode) in CODECS.items():  # every codec gives back what it was given
        assert decode(encode(rows)) == rows, name
    assert orjson.dumps(rows) == CODECS["JSON"][0](rows)  # the same bytes, another library
    print(f"\n{len(rows):,} records, CPU time relative to JSON (ratio of medians over {repeats}")
    print("interleaved repeats; in brackets the lowest and highest per-repeat ratio):")
    result = speeds(rows, repeats)
    for name in {**CODECS, **ALTERNATIVES}:
        e, d = result[name, "e"], result[name, "d"]
        print(
            f"  {name:<15} encode {e[0]:5.2f}x [{e[1]:.2f}-{e[2]:.2f}]"
            f"   decode {d[0]:5.2f}x [{d[1]:.2f}-{d[2]:.2f}]"
        )
    e, d = result["JSON", "e"], result["JSON", "d"]
    print(f"  (JSON itself: encode {e[3] * 1000:.2f} ms, decode {d[3] * 1000:.2f} ms here)")


if __name__ == "__main__":
    main()
