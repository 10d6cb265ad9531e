"""HTTP/1.1 is text on a TCP socket: a request written by hand, the response parsed by hand.

Run: python snippets/protocols/http1_raw.py
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HelloHandler(BaseHTTPRequestHandler):
    """The standard library's HTTP/1.1 server: answers GET with a short text body."""

    protocol_version = "HTTP/1.1"  # persistent connections; the default is HTTP/1.0
    disable_nagle_algorithm = True  # head and body are two writes: see the Nagle lesson

    def do_GET(self) -> None:
        body = f"hello, {self.headers['User-Agent']}, you asked for {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def version_string(self) -> str:  # the Server header; by default it names Python's version
        return "lesson-server"

    def log_message(self, format: str, *args: object) -> None:  # keep the output quiet
        pass


@contextmanager
def http_server() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HelloHandler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


# --8<-- [start:request]
def build_request(host: str, port: int, path: str) -> bytes:
    """RFC 9112 §3: request line, header fields, an empty line. Every line ends in CRLF."""
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"  # mandatory in HTTP/1.1 (RFC 9112 §3.2)
        "User-Agent: by-hand/1.0\r\n"
        "Connection: close\r\n"  # one request, then the server closes
        "\r\n"
    ).encode("ascii")


# --8<-- [end:request]


# --8<-- [start:response]
MAX_HEAD = 64 * 1024


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bytes]:
    """(status, headers with lower-cased names, body, raw head). RFC 9112 §4 and §6."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:  # the head ends at the first empty line
        if len(buffer) > MAX_HEAD:
            raise ValueError(f"response head over {MAX_HEAD} bytes")
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the end of the head")
        buffer += chunk
    head, _, body = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *field_lines = head.decode("latin-1").split("\r\n")
    _version, status, _reason = status_line.split(" ", 2)
    headers = {}
    for line in field_lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()  # field names are case-insensitive
    length = int(headers["content-length"])  # the body is exactly this many bytes
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"body ended after {len(body)} of {length} bytes")
        body += chunk
    return int(status), headers, body[:length], head


def get(address: tuple[str, int], path: str) -> tuple[int, dict[str, str], bytes, bytes]:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(build_request(*address, path))
        return read_response(sock)


# --8<-- [end:response]


def main() -> None:
    with http_server() as address:
        request = build_request(*address, "/hello")
        status, headers, body, head = get(address, "/hello")
    print(f"sent ~{len(request)} bytes:")  # ~: the port's digits vary
    for line in request.decode().split("\r\n")[:-1]:
        print(f"  > {line!r}")
    print(f"received a {len(head)}-byte head (the Date varies, so it is not shown):")
    for line in head.decode().split("\r\n"):
        print(f"  < {line!r}" if not line.startswith("Date:") else "  < 'Date: ...'")
    print(f"parsed: status {status}, {len(headers)} header fields, body {body!r}")
    print(f"Content-Length said {headers['content-length']}, the body has {len(body)} bytes")


if __name__ == "__main__":
    main()
