"""Hypothesis finds a bug in a chunked-encoding round trip and shrinks the failing input to the
smallest one that shows it; the fixed encoder passes the same property.

Run: python snippets/operations/testing_shrinking.py
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MAX_BODY = 1 << 20  # the decoder refuses a body larger than this (a real server has a limit)
MAX_LINE = 4096  # and a chunk-size line or trailer line longer than this


# --8<-- [start:code]
def encode_chunked_buggy(body: bytes, chunk_size: int) -> bytes:
    """RFC 9112 §7.1 chunked coding -- with the size written in decimal."""
    out = b""
    for i in range(0, len(body), chunk_size):
        chunk = body[i : i + chunk_size]
        out += f"{len(chunk)}\r\n".encode() + chunk + b"\r\n"  # BUG: chunk-size is hex
    return out + b"0\r\n\r\n"


def encode_chunked(body: bytes, chunk_size: int) -> bytes:
    """The fix: chunk-size = 1*HEXDIG."""
    out = b""
    for i in range(0, len(body), chunk_size):
        chunk = body[i : i + chunk_size]
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


# --8<-- [end:code]


# --8<-- [start:decoder]
class ChunkedError(ValueError):
    """A malformed or oversized chunked body (a server answers 400 or 413)."""


CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\r\n]*)?")  # size, then extensions


def decode_chunked(data: bytes, max_body: int = MAX_BODY) -> bytes:
    """Decode a whole chunked body; extensions are ignored (RFC 9112 §7.1.1 says a recipient
    MUST ignore unrecognized ones) and trailer fields are read and discarded (§7.1.2)."""
    body, pos = bytearray(), 0

    def line() -> bytes:
        nonlocal pos
        end = data.find(b"\r\n", pos, pos + MAX_LINE + 2)
        if end < 0:
            raise ChunkedError("line too long" if len(data) - pos > MAX_LINE else "truncated")
        got, pos = data[pos:end], end + 2
        return got

    while True:
        size_line = line()
        match = CHUNK_LINE.fullmatch(size_line)
        if not match:
            raise ChunkedError(f"bad chunk-size line {size_line[:40]!r}")
        size = int(match[1], 16)
        if size == 0:
            break
        if len(body) + size > max_body:
            raise ChunkedError(f"body larger than {max_body} bytes")
        if len(data) < pos + size + 2:
            raise ChunkedError("truncated")
        body += data[pos : pos + size]
        if data[pos + size : pos + size + 2] != b"\r\n":
            raise ChunkedError("chunk not followed by CRLF")
        pos += size + 2
    while trailer := line():  # trailer section, up to the empty line
        if b":" not in trailer:
            raise ChunkedError(f"bad trailer line {trailer[:40]!r}")
    if pos != len(data):
        raise ChunkedError(f"{len(data) - pos} bytes after the last chunk")
    return bytes(body)


# --8<-- [end:decoder]


# --8<-- [start:property]
@dataclass
class Search:
    """Every input the property failed on, in the order Hypothesis tried them."""

    failures: list[tuple[bytes, int]] = field(default_factory=list)
    examples: int = 0  # calls of the property, shrinking's included
    first_failure_at: int = 0  # the call that first failed
    error: str = ""


def check_round_trip(
    encode: Callable[[bytes, int], bytes], max_examples: int = 300, max_chunk: int = 64
) -> Search:
    search = Search()

    @settings(
        max_examples=max_examples,
        derandomize=True,  # the same examples every run, so the output can be recorded
        database=None,  # no .hypothesis/ directory, no replay of an earlier run's failure
        deadline=None,
        report_multiple_bugs=False,  # one failure, the smallest, not one per exception type
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(body=st.binary(max_size=300), chunk_size=st.integers(1, max_chunk))
    def round_trip(body: bytes, chunk_size: int) -> None:
        search.examples += 1
        try:
            assert decode_chunked(encode(body, chunk_size)) == body
        except (AssertionError, ChunkedError):
            search.failures.append((body, chunk_size))
            search.first_failure_at = search.first_failure_at or search.examples
            raise

    try:
        round_trip()
    except (AssertionError, ChunkedError) as error:
        search.error = f"{type(error).__name__}: {error}"
    return search


# --8<-- [end:property]


def describe(body: bytes, chunk_size: int) -> str:
    shown = repr(body) if len(body) <= 12 else f"{len(body)} bytes {body[:8]!r}..."
    return f"body={shown}, chunk_size={chunk_size}"


def main() -> None:
    buggy = check_round_trip(encode_chunked_buggy)
    print("Property: decode_chunked(encode(body, chunk_size)) == body")
    print("\nencode_chunked_buggy: FAILS")
    # "~": these depend on the Hypothesis version (the lock pins it); the shrunk one should not
    first_body, first_size = buggy.failures[0]
    print(
        f"  first failure found : a ~{len(first_body)}-byte body, chunk_size=~{first_size}"
        f"  (example ~{buggy.first_failure_at})"
    )
    print(f"  shrunk to           : {describe(*buggy.failures[-1])}")
    shrinks = buggy.examples - buggy.first_failure_at
    print(f"  shrinking           : ~{shrinks} more runs, ~{len(buggy.failures)} of them failing")
    print(f"  error               : {buggy.error}")
    body, size = buggy.failures[-1]
    print(f"  encoded             : {encode_chunked_buggy(body, size)!r}")
    print(f"  the fix encodes     : {encode_chunked(body, size)!r}")
    fixed = check_round_trip(encode_chunked)
    verdict = "FAILS" if fixed.failures else "passes"
    print(f"\nencode_chunked (size in hex): {verdict} all {fixed.examples} examples")


if __name__ == "__main__":
    main()
