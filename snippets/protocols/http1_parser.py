"""A strict HTTP/1.1 request parser by hand, run beside h11 on the same bytes.

Run: python snippets/protocols/http1_parser.py
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import h11

# --8<-- [start:parser]
MAX_HEAD = 8 * 1024
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
VERSION = re.compile(rb"HTTP/1\.[01]")
FORBIDDEN = re.compile(rb"[\x00\r\n]")  # never valid in a field value (RFC 9110 §5.5)


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]  # (lower-cased name, value), in order
    body: bytes


class ParseError(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status  # what a server answers: 400, 431 ...


def parse_request(data: bytes) -> Request | None:
    """One request from the start of data; None if more bytes are needed."""
    end = data.find(b"\r\n\r\n")
    if end > MAX_HEAD or (end < 0 and len(data) > MAX_HEAD):
        raise ParseError(431, "request head too large")  # RFC 6585 §5
    if end < 0:
        return None
    request_line, *lines = data[:end].split(b"\r\n")
    parts = request_line.split(b" ")  # exactly one space between the three parts
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1].startswith(b"/"):
        raise ParseError(400, f"illegal request line {request_line!r}")
    if not VERSION.fullmatch(parts[2]):
        raise ParseError(400, f"unsupported version {parts[2]!r}")
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):  # "Host : x" and obs-fold fail here
            raise ParseError(400, f"illegal header line {line!r}")  # RFC 9112 §5.1, §5.2
        if FORBIDDEN.search(value):  # a bare CR or LF could end the line for another parser
            raise ParseError(400, f"CR, LF or NUL in the value of {name!r}")
        headers.append((name.decode().lower(), value.strip(b" \t").decode("latin-1")))
    fields = dict(headers)
    if [k for k, _ in headers].count("host") != 1:
        raise ParseError(400, "missing or repeated Host")  # RFC 9112 §3.2
    if "transfer-encoding" in fields:
        raise ParseError(501, "Transfer-Encoding not supported")  # RFC 9112 §6.1
    lengths = {v for k, v in headers if k == "content-length"}
    if len(lengths) > 1 or not all(v.isdigit() and v.isascii() for v in lengths):
        raise ParseError(400, f"bad Content-Length {sorted(lengths)}")  # RFC 9112 §6.3
    length = int(lengths.pop()) if lengths else 0
    body = data[end + 4 : end + 4 + length]
    if len(body) < length:
        return None
    return Request(parts[0].decode(), parts[1].decode("latin-1"), tuple(headers), body)


# --8<-- [end:parser]


# --8<-- [start:h11]
def parse_with_h11(data: bytes) -> Request | None:
    """The same job done by h11, a maintained sans-I/O HTTP/1.1 library."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    conn.receive_data(data)
    try:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            return None
        assert isinstance(event, h11.Request)
        body = b""
        while not isinstance(part := conn.next_event(), h11.EndOfMessage):
            if part is h11.NEED_DATA:
                return None
            assert isinstance(part, h11.Data)
            body += part.data
    except h11.RemoteProtocolError as error:
        raise ParseError(error.error_status_hint, str(error)) from None
    headers = tuple((name.decode(), value.decode("latin-1")) for name, value in event.headers)
    return Request(event.method.decode(), event.target.decode("latin-1"), headers, body)


# --8<-- [end:h11]


CASES: dict[str, bytes] = {
    "a GET": b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
    "a POST with a body": b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "half a head": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "half a body": b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel",
    "no Host": b"GET / HTTP/1.1\r\n\r\n",
    "two words": b"GET /\r\nHost: x\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "Content-Length: abc": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "two Content-Lengths": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "NUL in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    "bare LF in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\nb\r\n\r\n",
    "a head that never ends": b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 10_000,
    # where the two differ:
    "a 10 KB head, complete": b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 10_000 + b"\r\n\r\n",
    "HTTP/2.0 on the line": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "target not a path": b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n",
    "obs-fold continuation": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
}


def outcome(parse, data: bytes) -> str:  # noqa: ANN001 - either parser
    try:
        request = parse(data)
    except ParseError as error:
        return f"error {error.status}"
    return "need more" if request is None else f"{request.method} {request.target}"


def compare() -> dict[str, tuple[str, str]]:
    return {
        name: (outcome(parse_request, d), outcome(parse_with_h11, d)) for name, d in CASES.items()
    }


def main() -> None:
    print(f"{'input':<26} {'by hand':<14} h11")
    for name, (mine, theirs) in compare().items():
        flag = "" if mine == theirs else "  <- differ"
        print(f"{name:<26} {mine:<14} {theirs:<14}{flag}".rstrip())


if __name__ == "__main__":
    main()
