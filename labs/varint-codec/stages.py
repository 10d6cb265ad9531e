"""The varint and length-delimited codec lab, stage by stage
(docs/formats/lab-varint-codec.md).

The learner's file is imported as a module (`lab_module`); frames are read from real
socket pairs, split at random points, and from a socket stand-in that hands out the
bytes in chunks chosen by the seeded `rng`. Every read has a deadline: a hang fails.

Run: make lab LAB=varint-codec FILE=path/to/your_codec.py
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from random import Random
from types import ModuleType
from typing import Any

import pytest

PAGE = "docs/formats/lab-varint-codec.md"
STAGES = {
    1: "unsigned varints",
    2: "zigzag for signed numbers",
    3: "length-delimited frames over a socket",
    4: "interoperability with the protobuf library",
    5: "bad input: a clear error, never a hang",
}
DEADLINE = 2.0  # seconds for any read; a correct codec answers in microseconds

VARINTS = {
    0: "00",
    1: "01",
    127: "7f",
    128: "80 01",
    150: "96 01",
    300: "ac 02",
    16384: "80 80 01",
    2**32 - 1: "ff ff ff ff 0f",
    2**63: "80 80 80 80 80 80 80 80 80 01",
    2**64 - 1: "ff ff ff ff ff ff ff ff ff 01",
}


def within_deadline(call: Callable[[], Any], what: str) -> Any:
    """call() in a thread; fail if it has not returned within DEADLINE. Returns its
    result, or re-raises what it raised."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), f"{what}: no answer within {DEADLINE} s (a hang)"
    if "error" in box:
        raise box["error"]
    return box["result"]


class ChunkySocket:
    """A socket stand-in whose recv() returns at most the next chunk, as TCP may. It has
    recv() and recv_into(), nothing else."""

    def __init__(self, data: bytes, rng: Random) -> None:
        self.data, self.rng = data, rng

    def recv(self, n: int) -> bytes:
        take = min(n, self.rng.randint(1, 7), len(self.data))
        chunk, self.data = self.data[:take], self.data[take:]
        return chunk

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        chunk = self.recv(nbytes or len(buffer))
        memoryview(buffer)[: len(chunk)] = chunk
        return len(chunk)


class PacedSocket:
    """A real socket whose writer waits until the reader has taken every byte written so
    far before it writes the next piece: each recv() returns at most one piece, so a frame
    written in two pieces arrives in two recv() calls in every run, whatever the
    scheduler does. Other attributes are the socket's own."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.taken, self.changed = sock, 0, threading.Condition()

    def _took(self, n: int) -> None:
        with self.changed:
            self.taken += n
            self.changed.notify_all()

    def recv(self, n: int, *flags: int) -> bytes:
        data = self.sock.recv(n, *flags)
        self._took(len(data))
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, *flags: int) -> int:
        n = self.sock.recv_into(buffer, nbytes, *flags)
        self._took(n)
        return n

    def wait_taken(self, total: int) -> bool:
        """Until the reader has taken `total` bytes; False if it stopped reading."""
        with self.changed:
            return self.changed.wait_for(lambda: self.taken >= total, timeout=DEADLINE)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def socket_pair(timeout: float = DEADLINE + 1) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.settimeout(timeout)
    b.settimeout(timeout)
    return a, b


def expect_error(call: Callable[[], Any], what: str) -> str:
    """call() must raise a ValueError (CodecError) with a message, within the deadline."""
    try:
        result = within_deadline(call, what)
    except ValueError as error:
        assert str(error), f"{what}: raised {type(error).__name__} with an empty message"
        return str(error)
    except AssertionError:
        raise
    except Exception as error:
        raise AssertionError(
            f"{what}: expected a CodecError (a ValueError), got {type(error).__name__}: {error}"
        ) from None
    raise AssertionError(f"{what}: expected a CodecError, got {result!r}")


# ---- stage 1 ----


@pytest.mark.stage(1)
def test_known_varints(lab_module: ModuleType):
    """encode_varint gives the protobuf encoding guide's bytes (300 -> ac 02, ...)"""
    for n, hex_bytes in VARINTS.items():
        got = lab_module.encode_varint(n)
        assert got == bytes.fromhex(hex_bytes), (
            f"encode_varint({n}): expected {hex_bytes}, got {got.hex(' ')}"
        )


@pytest.mark.stage(1)
def test_decode_known_varints_and_the_position_after(lab_module: ModuleType):
    """decode_varint returns the value and the position just after it"""
    for n, hex_bytes in VARINTS.items():
        data = b"\xaa" + bytes.fromhex(hex_bytes) + b"\x55"
        got = lab_module.decode_varint(data, 1)
        expected = (n, 1 + len(bytes.fromhex(hex_bytes)))
        assert tuple(got) == expected, (
            f"decode_varint({data.hex(' ')}, 1): expected {expected}, got {got}"
        )


@pytest.mark.stage(1)
def test_varint_round_trip_of_random_values(lab_module: ModuleType, rng: Random):
    """500 random values of every size round-trip, back to back in one buffer"""
    values = [rng.randrange(2 ** rng.randrange(1, 65)) for _ in range(500)]
    data = b"".join(lab_module.encode_varint(v) for v in values)
    pos, got = 0, []
    for _ in values:
        value, pos = lab_module.decode_varint(data, pos)
        got.append(value)
    wrong = [(v, g) for v, g in zip(values, got, strict=True) if v != g]
    assert not wrong, f"{len(wrong)} of 500 values came back different, e.g. {wrong[0]}"
    assert pos == len(data), f"decoded {len(values)} varints, stopped at {pos} of {len(data)}"


# ---- stage 2 ----

ZIGZAG = {0: 0, -1: 1, 1: 2, -2: 3, 2: 4, 2**31 - 1: 2**32 - 2, -(2**31): 2**32 - 1,
          2**63 - 1: 2**64 - 2, -(2**63): 2**64 - 1}  # fmt: skip


@pytest.mark.stage(2)
def test_known_zigzag_values(lab_module: ModuleType):
    """zigzag_encode maps 0, -1, 1, -2 ... to 0, 1, 2, 3 ..., up to 64 bits"""
    for n, z in ZIGZAG.items():
        got = lab_module.zigzag_encode(n)
        assert got == z, f"zigzag_encode({n}): expected {z}, got {got}"
        back = lab_module.zigzag_decode(z)
        assert back == n, f"zigzag_decode({z}): expected {n}, got {back}"


@pytest.mark.stage(2)
def test_zigzag_round_trip_and_small_negatives_stay_short(lab_module: ModuleType, rng: Random):
    """random signed 64-bit values round-trip; -1 as a zigzag varint is one byte"""
    for _ in range(500):
        n = rng.randrange(-(2**63), 2**63)
        z = lab_module.zigzag_encode(n)
        assert 0 <= z < 2**64, f"zigzag_encode({n}) = {z}, not an unsigned 64-bit value"
        assert lab_module.zigzag_decode(z) == n, f"zigzag_decode(zigzag_encode({n})) != {n}"
    one = lab_module.encode_varint(lab_module.zigzag_encode(-1))
    assert one == b"\x01", f"-1 zigzagged and encoded: expected 01, got {one.hex(' ')}"


# ---- stage 3 ----


@pytest.mark.stage(3)
def test_encode_frame_prefixes_the_length(lab_module: ModuleType):
    """encode_frame: a varint length, then the payload (0, 3 and 300 bytes)"""
    for payload, prefix in ((b"", "00"), (b"abc", "03"), (b"x" * 300, "ac 02")):
        got = lab_module.encode_frame(payload)
        expected = bytes.fromhex(prefix) + payload
        assert got == expected, f"encode_frame({len(payload)} bytes): got {got[:8].hex(' ')}..."


@pytest.mark.stage(3)
def test_frames_split_at_random_points(lab_module: ModuleType, rng: Random):
    """read_frame reassembles frames when recv() returns 1 to 7 bytes at a time"""
    payloads = [rng.randbytes(rng.choice([0, 1, 5, 127, 128, 300, 5000])) for _ in range(40)]
    sock = ChunkySocket(b"".join(lab_module.encode_frame(p) for p in payloads), rng)
    for i, payload in enumerate(payloads):
        got = within_deadline(lambda: lab_module.read_frame(sock), f"frame {i}")
        assert got == payload, (
            f"frame {i} ({len(payload)} bytes): got {None if got is None else len(got)} bytes"
            f"{'' if got is None else ', different'} (recv() returned 1-7 bytes at a time)"
        )
    end = within_deadline(lambda: lab_module.read_frame(sock), "after the last frame")
    assert end is None, f"after the last frame the stream ended: expected None, got {end!r}"


@pytest.mark.stage(3)
def test_frames_over_a_real_socket(lab_module: ModuleType, rng: Random):
    """200 frames through a socket pair, written in 300 pieces by another thread"""
    payloads = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(199)]
    payloads.insert(0, rng.randbytes(100))  # cut below in the middle of its payload
    stream = b"".join(lab_module.encode_frame(p) for p in payloads)
    cuts = sorted({51, *rng.sample(range(52, len(stream)), 299)})
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    raw_reader, writer = socket_pair()
    reader = PacedSocket(raw_reader)

    def send() -> None:
        with writer:
            sent = 0
            for piece in pieces:
                writer.sendall(piece)
                sent += len(piece)
                if not reader.wait_taken(sent):
                    return  # the reader stopped (a failed check): stop writing

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    with raw_reader:
        for i, payload in enumerate(payloads):
            got = within_deadline(lambda: lab_module.read_frame(reader), f"frame {i}")
            assert got == payload, (
                f"frame {i}: expected {len(payload)} bytes, got"
                f" {None if got is None else len(got)}{'' if got is None else ' bytes'}"
                " (each recv() returned at most one of the pieces written)"
            )
        end = within_deadline(lambda: lab_module.read_frame(reader), "at the end")
        assert end is None, f"the writer closed after 200 frames: expected None, got {end!r:.60}"
    sender.join(DEADLINE)


@pytest.mark.stage(3)
def test_an_empty_stream_is_a_clean_end(lab_module: ModuleType):
    """a stream that closes before any frame: read_frame returns None"""
    reader, writer = socket_pair()
    writer.close()
    with reader:
        got = within_deadline(lambda: lab_module.read_frame(reader), "an empty stream")
    assert got is None, f"an empty stream: expected None, got {got!r}"


# ---- stage 4 ----


def message_class(fields: list[tuple[str, int, int]]) -> Any:
    """message M { <type> <name> = <number>; ... } built at run time (no generated code)
    from (name, FieldDescriptorProto type, number) triples."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="lab.proto", package="lab", syntax="proto3")
    message = proto.message_type.add(name="M")
    label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    for name, kind, number in fields:
        message.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lab.M"))


def field_types() -> Any:
    """FieldDescriptorProto, whose TYPE_* constants name the field types."""
    from google.protobuf import descriptor_pb2

    return descriptor_pb2.FieldDescriptorProto


def decode_all(lab_module: ModuleType, data: bytes) -> list[tuple[int, int, Any]]:
    """Every field of a message with the learner's decode_field: (number, wire type,
    value). A decode_field that does not move forward fails instead of looping."""
    fields, pos = [], 0
    while pos < len(data):
        number, wire_type, value, after = lab_module.decode_field(data, pos)
        assert pos < after <= len(data), (
            f"decode_field({data.hex(' ')}, {pos}) returned next_pos {after}"
        )
        fields.append((number, wire_type, value))
        pos = after
    return fields


VARINT_2_60 = bytes.fromhex("80 80 80 80 80 80 80 80 10")  # 2**60, a length nobody has
TAG_NUMBERS = (1, 15, 16, 2047, 2048, 2**29 - 1)  # the last field number of 1-5 byte tags


@pytest.mark.stage(4)
def test_tags_protobuf_writes_for_small_and_large_field_numbers(lab_module: ModuleType):
    """tags of fields 1, 15, 16, 2047, 2048 and 2**29 - 1 (1 to 5 bytes) as protobuf writes them"""
    got = lab_module.encode_tag(16, 0)
    assert got == b"\x80\x01", (
        f"encode_tag(16, 0): expected 80 01 (16 << 3 = 128 needs two varint bytes), got"
        f" {got.hex(' ')}"
    )
    t = field_types()
    kinds = {  # protobuf type -> (wire type, a value protobuf accepts, what decode_field gives)
        t.TYPE_UINT64: (0, 5, 5),
        t.TYPE_FIXED64: (1, 2**64 - 2, 2**64 - 2),
        t.TYPE_STRING: (2, "é", "é".encode()),
        t.TYPE_FIXED32: (5, 2**31 + 7, 2**31 + 7),
    }
    for number in TAG_NUMBERS:
        for kind, (wire_type, value, decoded) in kinds.items():
            data = message_class([("v", kind, number)])(v=value).SerializeToString()
            tag = lab_module.encode_tag(number, wire_type)
            assert data.startswith(tag), (
                f"field {number}, wire type {wire_type}: protobuf wrote {data.hex(' ')}, your"
                f" encode_tag gave {tag.hex(' ')}"
            )
            got = tuple(lab_module.decode_field(data, 0))
            expected = (number, wire_type, decoded, len(data))
            assert got == expected, f"decode_field({data.hex(' ')}): expected {expected}, got {got}"


@pytest.mark.stage(4)
def test_fixed_and_length_delimited_fields_decode_and_re_encode_byte_identically(
    lab_module: ModuleType, rng: Random
):
    """fixed64, fixed32, string, sint64, uint64 from protobuf: decoded, re-encoded identically"""
    t = field_types()
    M = message_class([("f64", t.TYPE_FIXED64, 1), ("f32", t.TYPE_FIXED32, 2),
                       ("text", t.TYPE_STRING, 3), ("s", t.TYPE_SINT64, 4),
                       ("u", t.TYPE_UINT64, 5)])  # fmt: skip
    for _ in range(100):
        f64, f32, u = rng.randrange(1, 2**64), rng.randrange(1, 2**32), rng.randrange(1, 2**64)
        s = rng.randrange(-(2**63), 2**63) or 1  # proto3 omits zero values
        text = "".join(rng.choice("aé€🙂") for _ in range(rng.randrange(1, 60)))
        data = M(f64=f64, f32=f32, text=text, s=s, u=u).SerializeToString()
        fields = decode_all(lab_module, data)
        z = lab_module.zigzag_encode(s)
        expected = [(1, 1, f64), (2, 5, f32), (3, 2, text.encode()), (4, 0, z), (5, 0, u)]
        assert fields == expected, (
            f"protobuf wrote {data.hex(' ')}\n  expected (number, wire type, value): {expected}"
            f"\n  your decode_field: {fields}"
        )
        again = b"".join(lab_module.encode_field(*field) for field in fields)
        assert again == data, (
            f"re-encoded with encode_field: {again.hex(' ')}\n  protobuf wrote: {data.hex(' ')}"
        )


@pytest.mark.stage(4)
def test_unknown_fields_are_skipped_by_their_wire_type(lab_module: ModuleType, rng: Random):
    """to reach field 9, unknown fields (varint, double, bytes, fixed32) are skipped by wire type"""
    t = field_types()
    M = message_class([("big", t.TYPE_UINT64, 1), ("price", t.TYPE_DOUBLE, 2),
                       ("blob", t.TYPE_BYTES, 3), ("code", t.TYPE_FIXED32, 4),
                       ("name", t.TYPE_STRING, 9)])  # fmt: skip
    for _ in range(100):
        name = "é" * rng.randrange(1, 100)
        blob = b"\x4a\x02hi" + rng.randbytes(rng.randrange(0, 300))  # starts as "field 9" would
        data = M(big=rng.randrange(1, 2**64), price=rng.uniform(-1e9, 1e9) or 1.5, blob=blob,
                 code=rng.randrange(1, 2**32), name=name).SerializeToString()  # fmt: skip
        skipped, pos, number, value = [], 0, 0, None
        for _ in range(5):  # five fields; a decoder that does not move on stops here too
            number, wire_type, value, pos = lab_module.decode_field(data, pos)
            if number == 9:
                break
            skipped.append((number, wire_type))
        assert skipped == [(1, 0), (2, 1), (3, 2), (4, 5)], (
            f"skipping to field 9 in {data.hex(' ')}: your decode_field read fields {skipped}"
        )
        assert (number, value, pos) == (9, name.encode(), len(data)), (
            f"field 9 after the skipped ones: expected {name.encode()!r}, got field {number}"
            f" = {value!r:.60}"
        )


@pytest.mark.stage(4)
def test_protobuf_parses_the_fields_you_encode(lab_module: ModuleType, rng: Random):
    """strings with é, €, 🙂 and sint64s you encode with encode_field parse in protobuf the same"""
    t = field_types()
    M = message_class([("text", t.TYPE_STRING, 1), ("s", t.TYPE_SINT64, 2)])
    texts = ["", "a", "é", "é" * 100, "€" * 50, "🙂" * 70]  # 70 characters, 280 UTF-8 bytes
    texts += ["".join(rng.choice("aé€🙂") for _ in range(rng.randrange(200))) for _ in range(100)]
    for text in texts:
        s = rng.randrange(-(2**63), 2**63)
        data = lab_module.encode_field(1, 2, text) + lab_module.encode_field(
            2, 0, lab_module.zigzag_encode(s)
        )
        try:
            parsed = M.FromString(data)
        except Exception as error:  # noqa: BLE001 - protobuf's DecodeError, reported
            raise AssertionError(
                f"protobuf refused {data[:24].hex(' ')}... ({text[:10]!r}, {len(text)} characters,"
                f" {len(text.encode())} UTF-8 bytes): {error}"
            ) from None
        assert (parsed.text, parsed.s) == (text, s), (
            f"protobuf read {data[:24].hex(' ')}... as text={parsed.text[:10]!r}, s={parsed.s}"
            f" (expected {text[:10]!r}, {s})"
        )


@pytest.mark.stage(4)
def test_a_stream_of_protobuf_messages(lab_module: ModuleType, rng: Random):
    """length-delimited protobuf messages (as writeDelimitedTo frames them) read and decoded"""
    M = message_class([("text", field_types().TYPE_STRING, 1)])
    texts = ["é" * rng.randrange(0, 200) for _ in range(50)]
    stream = b"".join(lab_module.encode_frame(M(text=t).SerializeToString()) for t in texts)
    sock = ChunkySocket(stream, rng)
    for i, text in enumerate(texts):
        payload = within_deadline(lambda: lab_module.read_frame(sock), f"message {i}")
        expected = [(1, 2, text.encode())] if text else []  # proto3 omits an empty string
        got = decode_all(lab_module, payload)
        assert got == expected, f"message {i}: expected {expected!r:.60}, got {got!r:.60}"


# ---- stage 5 ----


@pytest.mark.stage(5)
def test_bad_varints_are_errors(lab_module: ModuleType):
    """an 11-byte varint, one cut short, an empty input, one beyond 64 bits: each a CodecError"""
    cases = {
        "a varint of 11 bytes": b"\xff" * 10 + b"\x01",
        "a varint cut short": b"\xff\xff",
        "empty input": b"",
        "10 bytes encoding more than 64 bits": b"\xff" * 9 + b"\x7f",
    }
    for what, data in cases.items():
        expect_error(lambda data=data: lab_module.decode_varint(data), f"decode_varint, {what}")
    expect_error(lambda: lab_module.encode_varint(-1), "encode_varint(-1)")
    expect_error(lambda: lab_module.encode_varint(2**64), "encode_varint(2**64)")


@pytest.mark.stage(5)
def test_a_truncated_frame_is_an_error_not_a_short_payload(lab_module: ModuleType):
    """the stream ends inside a payload, or inside a length prefix: CodecError"""
    for what, data in (("inside a payload", b"\x05abc"), ("inside a length", b"\x80")):
        reader, writer = socket_pair()
        writer.sendall(data)
        writer.close()
        with reader:
            expect_error(lambda r=reader: lab_module.read_frame(r), f"a stream ending {what}")


@pytest.mark.stage(5)
def test_a_length_over_the_limit_is_refused_before_reading_the_payload(lab_module: ModuleType):
    """a 100 MB length prefix with max_size=1 MiB: CodecError at once, no wait for the bytes"""
    reader, writer = socket_pair()
    with reader, writer:
        writer.sendall(lab_module.encode_varint(100_000_000))  # and nothing else, still open
        message = expect_error(
            lambda: lab_module.read_frame(reader, max_size=1 << 20), "a 100 MB frame"
        )
    assert message, message


@pytest.mark.stage(5)
def test_the_limit_is_the_max_size_argument(lab_module: ModuleType):
    """max_size=1000: a 2,000-byte frame is a CodecError, one of exactly 1,000 bytes is read"""
    reader, writer = socket_pair()
    with reader, writer:
        writer.sendall(lab_module.encode_varint(2000))  # and nothing else, still open
        expect_error(lambda: lab_module.read_frame(reader, max_size=1000), "2,000 bytes, max 1000")
    reader, writer = socket_pair()
    with reader, writer:
        payload = bytes(range(256)) * 3 + bytes(232)  # exactly 1,000 bytes
        writer.sendall(lab_module.encode_frame(payload))
        got = within_deadline(lambda: lab_module.read_frame(reader, max_size=1000), "1,000 bytes")
        assert got == payload, (
            f"a frame of exactly max_size=1000 bytes must be accepted: got {got!r:.60}"
        )


@pytest.mark.stage(5)
def test_the_default_limit_is_one_mib(lab_module: ModuleType):
    """no max_size: a frame of 1 MiB + 1 byte is a CodecError, one of 1 MiB is read"""
    reader, writer = socket_pair()
    with reader, writer:
        writer.sendall(lab_module.encode_varint((1 << 20) + 1))  # still open
        expect_error(lambda: lab_module.read_frame(reader), "1 MiB + 1 byte, default limit")
    payload = bytes(1 << 20)
    reader, writer = socket_pair()
    sender = threading.Thread(target=writer.sendall, args=(lab_module.encode_frame(payload),))
    sender.start()
    with reader, writer:
        got = within_deadline(lambda: lab_module.read_frame(reader), "1 MiB, default limit")
        assert got == payload, (
            f"a frame of exactly 1 MiB is within the default limit: got {got!r:.60}"
        )
    sender.join(DEADLINE)


@pytest.mark.stage(5)
def test_a_length_prefix_that_never_ends_is_refused(lab_module: ModuleType):
    """a length prefix of 11 continuation bytes on an open socket: CodecError, no hang"""
    reader, writer = socket_pair()
    with reader, writer:
        writer.sendall(b"\xff" * 11)  # the socket stays open: a reader must not wait for more
        expect_error(lambda: lab_module.read_frame(reader), "an endless length prefix")


@pytest.mark.stage(5)
def test_bad_fields_are_errors(lab_module: ModuleType):
    """a field cut short, field number 0, wire types 6 and 7, bad tags: each a CodecError"""
    cases = {
        "empty input": b"",
        "a tag with no value": b"\x08",
        "a fixed64 (I64) with 7 of its 8 bytes": b"\x09" + bytes(7),
        "a fixed32 (I32) with 3 of its 4 bytes": b"\x0d" + bytes(3),
        "a string announcing 5 bytes, 3 left": b"\x0a\x05abc",
        "a string announcing 2**60 bytes": b"\x0a" + VARINT_2_60 + b"abc",
        "field number 0": b"\x00\x01",
        "wire type 6": b"\x0e\x01",
        "wire type 7": b"\x0f\x01",
    }
    for what, data in cases.items():
        expect_error(lambda data=data: lab_module.decode_field(data, 0), f"decode_field, {what}")
    for number, wire_type in ((0, 0), (2**29, 0), (1, 6), (1, 7)):
        expect_error(
            lambda n=number, w=wire_type: lab_module.encode_tag(n, w),
            f"encode_tag({number}, {wire_type})",
        )
