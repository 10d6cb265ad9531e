"""Chunked transfer encoding: a response whose length is not known up front is sent as
length-prefixed chunks, and the client can use each chunk as it arrives.

Run: python snippets/protocols/http1_chunked.py
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

PARTS = [b"first line\n", b"second, produced later\n", b"third and last\n"]
PAUSE = 0.1  # seconds the server takes to produce each next part


# --8<-- [start:server]
class StreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked exists only from HTTP/1.1 on
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")  # instead of Content-Length
        self.end_headers()
        for i, part in enumerate(PARTS):
            if i:
                time.sleep(PAUSE)  # the next part is not ready yet
            # RFC 9112 §7.1: the size in hex, CRLF, the data, CRLF
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")  # a zero-size chunk ends the body

    # --8<-- [end:server]

    def version_string(self) -> str:  # the Server header; by default it names Python's version
        return "lesson-server"

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def http_server() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StreamHandler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


# --8<-- [start:decode]
HEX = re.compile(rb"[0-9A-Fa-f]{1,8}")  # at most 8 hex digits: sizes below 4 GiB
MAX_CHUNK = 1 << 20


def read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Yield each chunk's data as soon as it has arrived (RFC 9112 §7.1)."""
    while True:
        size_line = stream.readline(1024)
        if not size_line.endswith(b"\r\n"):
            raise ValueError(f"chunk size line not terminated: {size_line[:40]!r}")
        size_text = size_line[:-2].split(b";")[0].strip()  # ";name=value" extensions
        if not HEX.fullmatch(size_text):
            raise ValueError(f"bad chunk size {size_text[:40]!r}")
        size = int(size_text, 16)
        if size > MAX_CHUNK:
            raise ValueError(f"chunk of {size} bytes is over {MAX_CHUNK}")
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b""):  # optional trailer fields
                pass
            return
        data = stream.read(size)
        if len(data) < size or stream.read(2) != b"\r\n":
            raise ValueError("chunk data truncated or not followed by CRLF")
        yield data


# --8<-- [end:decode]


def stream_by_hand(address: tuple[str, int]) -> tuple[bytes, list[tuple[bytes, float]]]:
    """(the response head, [(chunk, seconds after the request)])."""
    with socket.create_connection(address, timeout=5) as sock:
        stream = sock.makefile("rb")
        start = time.perf_counter()
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = b"".join(iter(lambda: stream.readline(8192), b"\r\n"))
        chunks = [(c, time.perf_counter() - start) for c in read_chunks(stream)]
    return head, chunks


def stream_with_http_client(address: tuple[str, int]) -> bytes:
    conn = http.client.HTTPConnection(*address, timeout=5)
    try:
        conn.request("GET", "/stream")
        return conn.getresponse().read()  # http.client decodes chunked itself
    finally:
        conn.close()


def main() -> None:
    with http_server() as address:
        head, chunks = stream_by_hand(address)
        library = stream_with_http_client(address)
    lines = [line for line in head.decode().split("\r\n") if line and "Date" not in line]
    print("response head (no Date):", lines)
    wire = " ".join(f"{len(c):x}\\r\\n<{len(c)} bytes>\\r\\n" for c, _ in chunks)
    print(f"the body on the wire: {wire} 0\\r\\n\\r\\n")
    for data, seconds in chunks:
        print(f"chunk of {len(data):2} bytes arrived after {seconds * 1000:.1f} ms: {data!r}")
    body = b"".join(c for c, _ in chunks)
    print(f"decoded by hand: {len(body)} bytes; the same as http.client's: {body == library}")


if __name__ == "__main__":
    main()
