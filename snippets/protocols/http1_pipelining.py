"""Pipelining: requests sent back to back on one connection are answered in order, so
one slow response delays every response behind it (head-of-line blocking).

Run: python snippets/protocols/http1_pipelining.py
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

SLOW = 0.25  # seconds the /slow handler works before answering


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(SLOW)  # stands for a slow database query
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def http_server() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


def read_response(stream: BinaryIO) -> bytes:
    """Read one response (status line, fields, Content-Length body) from a buffered stream:
    the buffer keeps bytes of the next response for the next call."""
    if not stream.readline(1024).startswith(b"HTTP/1.1 "):
        raise ConnectionError("no status line")
    length = 0
    while (line := stream.readline(8192)) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return stream.read(length)


# --8<-- [start:pipeline]
def request(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def pipelined(address: tuple[str, int], paths: list[str]) -> list[tuple[bytes, float]]:
    """Send every request in one write, then read the responses: (body, seconds) each."""
    with socket.create_connection(address, timeout=5) as sock:
        stream = sock.makefile("rb")
        start = time.perf_counter()
        sock.sendall(b"".join(request(p, "localhost") for p in paths))
        return [(read_response(stream), time.perf_counter() - start) for _ in paths]


def one_connection_each(address: tuple[str, int], paths: list[str]) -> list[tuple[bytes, float]]:
    """The same requests at the same moment, each on its own connection."""
    start = time.perf_counter()

    def fetch(path: str) -> tuple[bytes, float]:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(request(path, "localhost"))
            return read_response(sock.makefile("rb")), time.perf_counter() - start

    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(fetch, paths))


# --8<-- [end:pipeline]


def main() -> None:
    paths = ["/slow", "/fast1", "/fast2"]
    with http_server() as address:
        piped = pipelined(address, paths)
        apart = one_connection_each(address, paths)
    print(f"3 requests pipelined on one connection, /slow first ({SLOW * 1000:.1f} ms of work):")
    for body, seconds in piped:
        print(f"  {body.decode():<7} answered after {seconds * 1000:.1f} ms")
    print("the same 3 requests on 3 connections at once:")
    for body, seconds in apart:
        print(f"  {body.decode():<7} answered after {seconds * 1000:.1f} ms")
    waited, alone = piped[1][1], apart[1][1]
    print(f"/fast1 waited {waited / alone:.1f}x longer behind /slow than on its own connection")


if __name__ == "__main__":
    main()
