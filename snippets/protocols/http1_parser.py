"""A strict HTTP/1.1 request parser by hand, run beside h11 on the same bytes.

Run: python snippets/protocols/http1_parser.py
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import h11

# --8<-- [start:parser]
MAX_HEAD = 8 * 1024
MAX_BODY = 1024 * 1024
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
VERSION = re.compile(rb"HTTP/(\d)\.(\d)")  # RFC 9112 §2.3
ABSOLUTE = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^\s]*")  # RFC 9112 §3.2.2
AUTHORITY = re.compile(rb"[^\s/@]+:\d+")  # host:port, only for CONNECT (§3.2.3)
FORBIDDEN = re.compile(rb"[\x00\r\n]")  # never valid in a field value (RFC 9110 §5.5)
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})(;[^\r\n]*)?")  # RFC 9112 §7.1, with extensions


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


def check_request_line(line: bytes) -> tuple[bytes, bytes, tuple[int, int]]:
    parts = line.split(b" ")  # exactly one space between the three parts
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]):
        raise ParseError(400, f"illegal request line {line!r}")
    method, target, version = parts
    if not (
        target.startswith(b"/")  # origin-form, the usual one (RFC 9112 §3.2.1)
        or ABSOLUTE.fullmatch(target)  # absolute-form: a server MUST accept it (§3.2.2)
        or (method == b"CONNECT" and AUTHORITY.fullmatch(target))  # authority-form
        or (method == b"OPTIONS" and target == b"*")  # asterisk-form (§3.2.4)
    ):
        raise ParseError(400, f"illegal request target {target!r}")
    if not (match := VERSION.fullmatch(version)):
        raise ParseError(400, f"illegal version {version!r}")
    if match[1] != b"1":
        raise ParseError(505, f"unsupported major version {version!r}")  # RFC 9110 §15.6.6
    return method, target, (1, int(match[2]))  # HTTP/1.2 is read as 1.1 (RFC 9110 §2.5)


def read_chunked(data: bytes, start: int) -> bytes | None:
    """A chunked body from data[start:] (RFC 9112 §7.1); None if more bytes are needed."""
    body, at = b"", start
    while True:
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            if len(data) - at > 1024:
                raise ParseError(400, "chunk size line too long")
            return None
        if not (match := CHUNK_SIZE.fullmatch(data[at:line_end])):
            raise ParseError(400, f"bad chunk size line {data[at:line_end][:20]!r}")
        size, at = int(match[1], 16), line_end + 2
        if len(body) + size > MAX_BODY:
            raise ParseError(413, "chunked body too large")
        if size == 0:  # the last chunk, then trailer fields until an empty line (§7.1.2)
            trailers_end = data.find(b"\r\n\r\n", at - 2)
            return None if trailers_end < 0 else body
        if len(data) < at + size + 2:
            return None
        if data[at + size : at + size + 2] != b"\r\n":
            raise ParseError(400, "chunk data not followed by CRLF")
        body, at = body + data[at : at + size], at + size + 2


def parse_request(data: bytes) -> Request | None:
    """One request from the start of data; None if more bytes are needed."""
    end = data.find(b"\r\n\r\n")
    if end > MAX_HEAD or (end < 0 and len(data) > MAX_HEAD):
        raise ParseError(431, "request head too large")  # RFC 6585 §5
    if end < 0:
        return None
    request_line, *lines = data[:end].split(b"\r\n")
    method, target, version = check_request_line(request_line)
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):  # "Host : x" and obs-fold fail here
            raise ParseError(400, f"illegal header line {line!r}")  # RFC 9112 §5.1, §5.2
        if FORBIDDEN.search(value):  # a bare CR or LF could end the line for another parser
            raise ParseError(400, f"CR, LF or NUL in the value of {name!r}")
        headers.append((name.decode().lower(), value.strip(b" \t").decode("latin-1")))
    names = [k for k, _ in headers]
    if names.count("host") > 1 or (version >= (1, 1) and "host" not in names):
        raise ParseError(400, "missing or repeated Host")  # RFC 9112 §3.2
    codings = [c.strip().lower() for k, v in headers if k == "transfer-encoding"
               for c in v.split(",")]  # fmt: skip
    lengths = {v for k, v in headers if k == "content-length"}
    if codings:  # RFC 9112 §6.1 and §6.3
        if lengths or version < (1, 1):
            raise ParseError(400, "Transfer-Encoding with Content-Length, or in HTTP/1.0")
        if codings[-1] != "chunked":
            raise ParseError(400, "chunked is not the final transfer coding")  # a MUST
        if codings != ["chunked"]:
            raise ParseError(501, f"transfer coding {codings[:-1]} not implemented")
        body = read_chunked(data, end + 4)
    else:
        if len(lengths) > 1 or not all(v.isdigit() and v.isascii() for v in lengths):
            raise ParseError(400, f"bad Content-Length {sorted(lengths)}")  # RFC 9112 §6.3
        length = int(lengths.pop()) if lengths else 0
        if length > MAX_BODY:
            raise ParseError(413, "body too large")
        body = data[end + 4 : end + 4 + length]
        body = body if len(body) == length else None
    if body is None:
        return None
    return Request(method.decode(), target.decode("latin-1"), tuple(headers), body)


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
    "absolute-form target": b"GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/1.2 (read as 1.1)": b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
    "a chunked body": b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\n\r\n",
    "half a chunked body": b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nhel\r\n",
    "chunk size zz": b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nhello\r\n0\r\n\r\n",
    "gzip, then chunked": b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked"
    b"\r\n\r\n0\r\n\r\n",
    # where the two differ:
    "a 10 KB head, complete": b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 10_000 + b"\r\n\r\n",
    "HTTP/2.0 on the line": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "target not a path": b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n",
    "obs-fold continuation": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    "chunked, then gzip": b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip"
    b"\r\n\r\n",
    "Content-Length and chunked": b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}


def outcome(parse, data: bytes) -> str:  # noqa: ANN001 - either parser
    try:
        request = parse(data)
    except ParseError as error:
        return f"error {error.status}"
    if request is None:
        return "need more"
    return f"{request.method} {request.target}" + (f" {request.body!r}" if request.body else "")


def compare() -> dict[str, tuple[str, str]]:
    return {
        name: (outcome(parse_request, d), outcome(parse_with_h11, d)) for name, d in CASES.items()
    }


def main() -> None:
    print(f"{'input':<27} {'by hand':<19} h11")
    for name, (mine, theirs) in compare().items():
        flag = "" if mine == theirs else "  <- differ"
        print(f"{name:<27} {mine:<19} {theirs:<19}{flag}".rstrip())


if __name__ == "__main__":
    main()
