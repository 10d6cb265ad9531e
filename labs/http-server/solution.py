"""Reference solution of the HTTP/1.1 server lab (docs/protocols/lab-http-server.md).

Try the lab before reading this. It passes every stage:

Run: python labs/run.py http-server --file labs/http-server/solution.py
Serve: python labs/http-server/solution.py --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 8 * 1024  # request line + headers; more gets 431 (RFC 6585 §5)
MAX_BODY_BYTES = 1024 * 1024  # a larger Content-Length gets 413 (RFC 9110 §15.5.14)
TIMEOUT = 1.0  # seconds a request may take from its first byte to its last (and idle time)

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
ABSOLUTE = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^#]*)")  # RFC 9112 §3.2.2
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})(;[^\r\n]*)?")  # RFC 9112 §7.1
FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")  # RFC 9110 §5.5: reject, never pass on


class HttpError(Exception):
    """A request we refuse: the status to answer with, then close the connection."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: tuple[int, int]
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path of an origin-form target, or of an absolute-form one, which a server
        MUST accept (RFC 9112 §3.2.2): http://host/echo/x is /echo/x. (Its host is then
        the one that counts, not Host's; this server serves one site, so it uses neither.)"""
        if match := ABSOLUTE.fullmatch(self.target.encode("latin-1")):
            return match[1].decode("latin-1") or "/"
        return self.target

    @property
    def keep_alive(self) -> bool:
        """RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with keep-alive."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens


def parse_head(head: bytes) -> Request:
    """Parse the request line and header fields (RFC 9112 §3 and §5)."""
    request_line, *field_lines = head.split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]):
        raise HttpError(400, f"malformed request line {request_line[:80]!r}")
    if not parts[1].startswith(b"/") and not ABSOLUTE.fullmatch(parts[1]):
        raise HttpError(400, f"a target that is neither a path nor a URI {parts[1][:80]!r}")
    version = VERSION.fullmatch(parts[2])
    if not version:
        raise HttpError(400, f"malformed HTTP version {parts[2][:20]!r}")
    if version[1] != b"1":
        raise HttpError(505, "only HTTP/1.x is supported")
    request = Request(parts[0].decode(), parts[1].decode("latin-1"), (1, int(version[2])))
    for line in field_lines:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):  # also rejects "Name :" and obs-fold
            raise HttpError(400, f"malformed header field {line[:80]!r}")
        if FORBIDDEN_IN_VALUE.search(value):  # a bare CR or LF, or NUL
            raise HttpError(400, f"CR, LF or NUL in the value of {name[:40]!r}")
        key = name.decode().lower()
        text = value.strip(b" \t").decode("latin-1")
        if key == "host" and key in request.headers:
            raise HttpError(400, "more than one Host field (RFC 9112 §3.2)")
        if key in request.headers and key != "content-length":
            request.headers[key] += ", " + text  # repeated fields combine (RFC 9110 §5.3)
        elif key in request.headers and request.headers[key] != text:
            raise HttpError(400, "conflicting Content-Length values")
        else:
            request.headers[key] = text
    if request.version >= (1, 1) and "host" not in request.headers:
        raise HttpError(400, "HTTP/1.1 request without Host (RFC 9112 §3.2)")
    return request


def body_length(request: Request) -> int | None:
    """RFC 9112 §6: how many body bytes follow the head; None for a chunked body."""
    if "transfer-encoding" in request.headers:
        if "content-length" in request.headers or request.version < (1, 1):
            # §6.1 allows rejecting both at once (a smuggling attempt), and HTTP/1.0 has
            # no transfer codings: never guess between two framings.
            raise HttpError(400, "Transfer-Encoding with Content-Length, or in HTTP/1.0")
        codings = [c.strip().lower() for c in request.headers["transfer-encoding"].split(",")]
        if codings[-1] != "chunked":
            raise HttpError(400, "chunked is not the final transfer coding")  # §6.3: MUST
        if codings != ["chunked"]:
            raise HttpError(501, f"transfer codings {codings[:-1]} are not implemented")
        return None
    value = request.headers.get("content-length", "0")
    if not value.isdigit() or not value.isascii():
        raise HttpError(400, f"invalid Content-Length {value[:20]!r}")
    if int(value) > MAX_BODY_BYTES:
        raise HttpError(413, f"body of {value} bytes is over {MAX_BODY_BYTES}")
    return int(value)


class Connection:
    """The reading side of one client connection, with a buffer that survives requests."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False at end of stream, TimeoutError once the deadline passes.

        The timeout of each recv() is what is left of one deadline, not a fresh TIMEOUT:
        a client that sends a byte just before every timeout (slowloris) would otherwise
        hold the connection, and its thread, for as long as it likes."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_request(self) -> Request | None:
        """The next request, or None when the client closed (or idled) between requests."""
        deadline = time.monotonic() + TIMEOUT
        if not self.buffer:  # a kept-alive connection between requests: wait for a byte
            try:
                if not self._fill(deadline):
                    return None  # the client closed cleanly
            except TimeoutError:
                return None  # idle for TIMEOUT: just close it
            deadline = time.monotonic() + TIMEOUT  # the request's clock starts at its first byte
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise HttpError(431, "request head too large")
            try:
                more = self._fill(deadline)
            except TimeoutError:
                raise HttpError(408, f"request head not complete within {TIMEOUT} s") from None
            if not more:
                raise HttpError(400, "connection closed mid-request")
        if end > MAX_HEAD_BYTES:
            raise HttpError(431, "request head too large")
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        request = parse_head(head)
        length = body_length(request)
        request.body = self._chunked(deadline) if length is None else self._take(length, deadline)
        return request

    def _wait_for(self, enough: Callable[[], bool], deadline: float) -> None:
        """Read until enough() is true: 400 if the client closes first, 408 at the deadline."""
        while not enough():
            try:
                if not self._fill(deadline):
                    raise HttpError(400, "connection closed mid-request")
            except TimeoutError:
                raise HttpError(408, f"request not complete within {TIMEOUT} s") from None

    def _take(self, n: int, deadline: float) -> bytes:
        self._wait_for(lambda: len(self.buffer) >= n, deadline)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _line(self, deadline: float) -> bytes:
        def found() -> bool:
            if b"\r\n" in self.buffer:
                return True
            if len(self.buffer) > 1024:
                raise HttpError(400, "chunk size or trailer line too long")
            return False

        self._wait_for(found, deadline)
        return self._take(self.buffer.index(b"\r\n") + 2, deadline)[:-2]

    def _chunked(self, deadline: float) -> bytes:
        """A chunked body (RFC 9112 §7.1): hex size [;extensions] CRLF, data CRLF, ...,
        then a zero size, trailer fields (read and dropped, §7.1.2) and an empty line."""
        body = bytearray()
        while True:
            match = CHUNK_SIZE.fullmatch(self._line(deadline))
            if not match:
                raise HttpError(400, "malformed chunk size line")
            size = int(match[1], 16)
            if len(body) + size > MAX_BODY_BYTES:
                raise HttpError(413, f"chunked body over {MAX_BODY_BYTES} bytes")
            if size == 0:
                while self._line(deadline):  # trailer fields until the empty line
                    pass
                return bytes(body)
            body += self._take(size, deadline)
            if self._take(2, deadline) != b"\r\n":
                raise HttpError(400, "chunk data not followed by CRLF")


def route(request: Request) -> tuple[int, bytes, dict[str, str]]:
    """The application: (status, body, extra headers)."""
    path = request.path.split("?", 1)[0]
    get = ("GET", "HEAD")  # a server MUST support both (RFC 9110 §9.1)
    if path == "/":
        allowed, body = get, b"Hello, world!\n"
    elif path.startswith("/echo/"):
        allowed, body = get, path.removeprefix("/echo/").encode("latin-1")
    elif path == "/user-agent":
        allowed, body = get, request.headers.get("user-agent", "").encode("latin-1")
    elif path == "/echo":
        allowed, body = ("POST",), request.body
    else:
        return 404, b"not found\n", {}
    if request.method not in allowed:
        return 405, b"method not allowed\n", {"Allow": ", ".join(allowed)}
    return 200, body, {}


def response_bytes(
    status: int, body: bytes, headers: dict[str, str], close: bool, head: bool = False
) -> bytes:
    """head: the answer to HEAD, the same header fields as GET's, without the body
    (RFC 9110 §9.3.2); Content-Length still says how long GET's body would be."""
    lines = [
        f"HTTP/1.1 {status} {REASONS[status]}",
        f"Date: {formatdate(usegmt=True)}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)


def lingering_close(sock: socket.socket) -> None:
    """Stop sending, then drain briefly: closing with unread input would send a RST that
    can destroy the error response before the client reads it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.2)
        for _ in range(64):
            if not sock.recv(65536):
                break
    except OSError:
        pass


def handle_connection(sock: socket.socket) -> None:
    with sock:
        conn = Connection(sock)
        try:
            while (request := conn.read_request()) is not None:
                status, body, headers = route(request)
                sock.settimeout(TIMEOUT)  # a client that does not read its response is let go
                close, head = not request.keep_alive, request.method == "HEAD"
                sock.sendall(response_bytes(status, body, headers, close, head))
                if not request.keep_alive:
                    return
        except HttpError as error:
            detail = f"{error}\n".encode("latin-1", "replace")
            try:
                sock.settimeout(TIMEOUT)
                sock.sendall(response_bytes(error.status, detail, {}, close=True))
                lingering_close(sock)
            except OSError:
                pass  # the client is gone already
        except OSError:
            pass  # the client went away or stalled mid-response: nothing to answer


def serve(port: int) -> None:
    with socket.create_server((HOST, port)) as listener:
        print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=handle_connection, args=(sock,), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    with contextlib.suppress(KeyboardInterrupt):
        serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
