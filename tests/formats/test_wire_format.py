"""The protobuf wire format by hand (docs/formats/wire-format.md): our encoder and decoder
agree with the protobuf library byte for byte, and malformed bytes get a clear error."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_snippet

wire = load_snippet("formats/wire_decode")
Reading = wire.message_class(wire.READING)
INT32 = st.integers(-(2**31), 2**31 - 1)


def test_int32_minus_one_takes_eleven_bytes_and_sint32_two():
    assert Reading(id=-1).SerializeToString() == bytes.fromhex("08 ffffffffffffffffff 01")
    assert len(Reading(id=-1).SerializeToString()) == 11
    # sint32 -1 as field 1 is 08 01 (the page's field 2 gives 10 01: the tag differs)
    assert wire.tag(1, wire.VARINT) + wire.encode_varint(wire.zigzag(-1)) == b"\x08\x01"
    assert Reading(delta=-1).SerializeToString() == b"\x10\x01"
    # the control: a positive value is short either way
    assert len(Reading(id=1).SerializeToString()) == 2


def test_zigzag_maps_small_magnitudes_to_small_numbers():
    assert [wire.zigzag(n) for n in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]
    assert wire.zigzag(-(2**31)) == 2**32 - 1


def test_break_it_reading_a_sint32_without_unzigzag_gets_the_wrong_number():
    """Break it: skip unzigzag and -3 reads as 5, -1 as 1."""
    for n, without in ((-3, 5), (-1, 1), (2, 4)):
        [(_, _, raw)] = wire.decode_fields(Reading(delta=n).SerializeToString())
        assert raw == without
        assert wire.unzigzag(raw) == n


@settings(max_examples=300, deadline=None)
@given(
    id=INT32,
    delta=INT32,
    name=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    samples=st.lists(INT32, max_size=10),
    value=st.floats(allow_nan=False).filter(lambda x: x != 0 or math.copysign(1, x) > 0),
)
def test_round_trip_against_the_library(id, delta, name, samples, value):
    fields = {"id": id, "delta": delta, "name": name, "samples": samples, "value": value}
    library = Reading(**fields).SerializeToString()
    ours = wire.encode_reading(**fields)
    assert ours == library
    assert wire.decode_reading(library) == fields
    assert Reading.FromString(ours) == Reading(**fields)


@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip_and_length(n):
    data = wire.encode_varint(n)
    assert wire.decode_varint(data) == (n, len(data))
    assert len(data) == max(1, math.ceil(n.bit_length() / 7))


@pytest.mark.parametrize("what", [w for w in wire.MALFORMED if "64 bits" not in w])
def test_malformed_input_is_rejected_by_us_and_by_the_library(what):
    data = wire.MALFORMED[what]
    with pytest.raises(wire.WireError):
        wire.decode_fields(data)
    assert wire.library_rejects(Reading, data)


def test_control_a_well_formed_message_is_accepted_by_both():
    data = Reading(id=150, name="cpu").SerializeToString()
    assert wire.decode_fields(data) == [(1, 0, 150), (3, 2, b"cpu")]
    assert not wire.library_rejects(Reading, data)


def test_a_ten_byte_varint_beyond_64_bits_ours_rejects_the_library_accepts():
    """The page's last row: upb (protobuf's Python backend here) drops the extra bits."""
    data = wire.MALFORMED["10-byte varint over 64 bits"]
    with pytest.raises(wire.WireError, match="64 bits"):
        wire.decode_fields(data)
    assert not wire.library_rejects(Reading, data)
    assert Reading.FromString(data).id == -1


PROTOBUF_ISH = st.lists(
    st.sampled_from([0x00, 0x01, 0x08, 0x0A, 0x10, 0x12, 0x1A, 0x22, 0x29, 0x2D, 0x7F, 0x80, 0xFF])
    | st.integers(0, 255),
    max_size=64,
).map(bytes)


def verdict(decode, data):
    try:
        decode(data)
    except wire.WireError as error:
        return str(error)
    return "accepted"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64) | PROTOBUF_ISH)
def test_fuzz_our_verdict_is_the_librarys_except_the_documented_overflow(data):
    """Any bytes: our decoder returns a result or raises WireError (never anything else),
    and it rejects exactly what the library rejects, but for the page's one documented
    difference (a varint over 64 bits, which upb truncates)."""
    ours = verdict(wire.decode_reading, data)
    library = wire.library_rejects(Reading, data)
    if ours != "accepted" and not library:
        assert "does not fit in 64 bits" in ours, (data.hex(" "), ours)
    else:
        assert (ours != "accepted") == library, (data.hex(" "), ours)
    if not library and ours == "accepted":  # and both read the same values
        message = Reading.FromString(data)
        got = wire.decode_reading(data)
        assert (got["id"], got["delta"], got["name"], got["samples"]) == (
            message.id, message.delta, message.name, list(message.samples))  # fmt: skip
        assert got["value"] == message.value or math.isnan(message.value)


@pytest.mark.parametrize("number", [2**29, 2**31, 2**32 - 1])
def test_field_numbers_over_two_to_the_29_minus_one_are_refused_by_both(number):
    data = wire.tag(number, wire.VARINT) + b"\x01"
    with pytest.raises(wire.WireError, match="over 2\\^29 - 1"):
        wire.decode_fields(data)
    assert wire.library_rejects(Reading, data)


def test_control_the_largest_field_number_is_accepted_by_both():
    data = wire.tag(2**29 - 1, wire.VARINT) + b"\x01"
    assert wire.decode_fields(data) == [(2**29 - 1, wire.VARINT, 1)]
    assert not wire.library_rejects(Reading, data)
