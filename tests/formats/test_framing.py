"""Framing a stream (docs/formats/framing.md): each row of the page's table asserted, the
clean stream and the CRC being the controls."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

fr = load_snippet("formats/framing_streams")
READ = {scenario: {kind: fr.summary(fr.read(kind, data)) for kind, data in streams.items()}
        for scenario, streams in fr.scenarios().items()}  # fmt: skip
INTACT = "5 read: #1 | #2 | #3 | #4 | #5"


def test_control_every_encoding_reads_a_clean_stream_intact():
    assert set(READ["clean"].values()) == {INTACT}


def test_a_cut_stream_is_reported_by_both_readers_never_silently_short():
    for kind, got in READ["cut inside message 3"].items():
        assert got.startswith("3 read: #1 | #2 | truncated"), kind


def test_a_changed_letter_is_silent_without_a_checksum_and_caught_with_one():
    wrong = "5 read: #1 | #2 | WRONG {'id': 3, 'name': 'chbrlie'} | #4 | #5"
    assert READ["a letter changed in message 3"]["length-delimited"] == wrong
    assert READ["a letter changed in message 3"]["NDJSON"] == wrong
    assert READ["a letter changed in message 3"]["with CRC-32"] == (
        "5 read: #1 | #2 | CRC mismatch | #4 | #5"
    )


def test_a_damaged_length_prefix_loses_the_rest_of_the_stream_and_ndjson_one_line():
    row = READ["message 3's first byte changed"]
    assert row["length-delimited"].startswith("3 read: #1 | #2 | truncated frame")
    assert row["NDJSON"] == "5 read: #1 | #2 | not JSON | #4 | #5"


def test_a_shorter_length_prefix_yields_a_value_nobody_sent_without_an_error():
    row = READ["message 3's framing made shorter"]
    assert "WRONG {'id': 3, 'name': ''}" in row["length-delimited"]
    assert "CRC mismatch" in row["with CRC-32"] and "WRONG" not in row["with CRC-32"]
    assert row["NDJSON"].endswith("not JSON | not JSON | #4 | #5")


def test_break_it_a_reader_that_skips_bad_lines_loses_a_message_without_a_trace():
    """Break it: skip what does not parse, and the damaged message vanishes."""
    data = fr.scenarios()["message 3's first byte changed"]["NDJSON"]
    skipping = [item for item in fr.read_ndjson(data) if not isinstance(item, str)]
    assert [item["id"] for item in skipping] == [1, 2, 4, 5]  # no error, one fewer


@pytest.mark.parametrize("kind", ["length-delimited", "with CRC-32", "NDJSON"])
def test_every_cut_point_is_reported_or_lands_between_messages(kind):
    """Malformed input at every length of each clean stream (51, 71 and 121 bytes): an
    error, or only whole messages — never a WRONG."""
    clean = fr.scenarios()["clean"][kind]
    assert len(clean) == {"length-delimited": 51, "with CRC-32": 71, "NDJSON": 121}[kind]
    for cut in range(1, len(clean)):
        got = fr.read(kind, clean[:cut])
        assert all(isinstance(x, str) or x in fr.EVENTS for x in got), (kind, cut, got)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),  # an empty stream: no messages, no error
        (b"\xff" * 11, ["error: length prefix longer than 10 bytes"]),  # a runaway prefix
        (  # an oversized length: refused from the prefix, before anything is read
            fr.encode_varint(2**60) + b"x",
            ["error: frame of 1152921504606846976 bytes is over the limit of 1048576"],
        ),
    ],
    ids=["empty", "11-byte prefix", "2^60-byte length"],
)
def test_length_delimited_reader_answers_malformed_and_oversized_prefixes(data, expected):
    assert fr.read_length_delimited(data) == expected
    assert fr.read_length_delimited(data, crc=True) == expected


def test_a_complete_frame_over_max_size_is_refused_and_one_at_the_limit_read():
    """The limit, not the truncation, refuses it: the frame is all there."""
    data = fr.length_delimited(fr.EVENTS[:1])  # 1 length byte + a 9-byte message
    size = len(data) - 1
    assert fr.read_length_delimited(data, max_size=size) == [fr.EVENTS[0]]  # the control
    assert fr.read_length_delimited(data, max_size=size - 1) == [
        f"error: frame of {size} bytes is over the limit of {size - 1}"
    ]


def test_ndjson_reader_refuses_lines_that_are_not_utf8():
    """NDJSON spec §3.1 and RFC 8259 §8.1 require UTF-8. json.loads(bytes) guesses UTF-16
    and UTF-32 (the control shows it would accept them), so the reader decodes first."""
    assert fr.read_ndjson(b"") == []
    utf16 = '{"id":2}'.encode("utf-16")  # with its byte order mark, ff fe
    utf16le = '{"id":2}'.encode("utf-16-le")  # no BOM, but every other byte 00
    utf32 = '{"id":2}'.encode("utf-32")
    for line in (utf16, utf16le, utf32):
        assert fr.json.loads(line) == {"id": 2}  # the control: bytes decoded by guessing
    assert b"\n" not in utf16 + utf16le + utf32
    data = b"\x80\n" + b"\n".join((utf16, utf16le, utf32)) + b'\n{"id":1}\n'
    assert fr.read_ndjson(data) == [
        "error: not UTF-8",  # a lone continuation byte
        "error: not UTF-8",  # ff fe
        "error: not JSON",  # valid UTF-8 (NULs between the characters), not JSON
        "error: not UTF-8",  # ff fe 00 00
        {"id": 1},
    ]
