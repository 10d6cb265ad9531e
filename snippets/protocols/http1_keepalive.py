"""Keep-alive: HTTP/1.1 requests on one persistent connection vs a new connection each.

Run: python snippets/protocols/http1_keepalive.py
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive is the default from HTTP/1.1 on
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"pong\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def http_server() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PingHandler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


# --8<-- [start:measure]
def get(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/ping")
    response = conn.getresponse()
    if response.read() != b"pong\n":
        raise ConnectionError(f"unexpected response {response.status}")


Clock = Callable[[], float]  # time.perf_counter: elapsed; time.process_time: CPU used


def new_connection_each(address: tuple[str, int], n: int, clock: Clock) -> float:
    """n requests, each with its own TCP connection (and, on the server, its own thread)."""
    start = clock()
    for _ in range(n):
        conn = http.client.HTTPConnection(*address, timeout=5)
        get(conn)
        conn.close()
    return (clock() - start) / n


def keep_alive(address: tuple[str, int], n: int, clock: Clock) -> float:
    """n requests on one persistent connection (RFC 9112 §9.3)."""
    start = clock()
    conn = http.client.HTTPConnection(*address, timeout=5)
    for _ in range(n):
        get(conn)
    conn.close()
    return (clock() - start) / n


def compare(n: int = 150, rounds: int = 5, clock: Clock = time.perf_counter) -> tuple[float, float]:
    """Median seconds per request: (new connection each, keep-alive), interleaved rounds.
    Client and server run in this process, so time.process_time counts both sides' CPU."""
    with http_server() as address:
        new, kept = [], []
        for _ in range(rounds):
            new.append(new_connection_each(address, n, clock))
            kept.append(keep_alive(address, n, clock))
    return statistics.median(new), statistics.median(kept)


# --8<-- [end:measure]


def main() -> None:
    new, kept = compare()
    print(f"new connection per request: {new * 1e6:.1f} µs per request (median of 5 x 150)")
    print(f"keep-alive, one connection: {kept * 1e6:.1f} µs per request")
    print(f"keep-alive was {new / kept:.1f}x faster")


if __name__ == "__main__":
    main()
