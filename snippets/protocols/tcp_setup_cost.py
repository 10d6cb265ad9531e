"""A new TCP connection per request pays a handshake each time; a reused one does not.

Run: python snippets/protocols/tcp_setup_cost.py
"""

from __future__ import annotations

import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class PingHandler(socketserver.StreamRequestHandler):
    """Answer every line b"ping\\n" with b"pong\\n" until the client closes."""

    timeout = 5

    def handle(self) -> None:
        for _ in self.rfile:
            self.wfile.write(b"pong\n")


@contextmanager
def ping_server() -> Iterator[tuple[str, int]]:
    # One connection at a time (no thread per connection): we time TCP, not thread start-up.
    with socketserver.TCPServer(("127.0.0.1", 0), PingHandler) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield server.server_address
        finally:
            server.shutdown()


# --8<-- [start:measure]
def ping(sock: socket.socket) -> None:
    sock.sendall(b"ping\n")
    if sock.recv(16) != b"pong\n":
        raise ConnectionError("unexpected reply")


def new_connection_each(address: tuple[str, int], n: int) -> float:
    """n requests, each on its own connection: handshake + request + teardown."""
    start = time.perf_counter()
    for _ in range(n):
        with socket.create_connection(address, timeout=5) as sock:
            ping(sock)
    return (time.perf_counter() - start) / n


def one_reused_connection(address: tuple[str, int], n: int) -> float:
    """n requests on one connection: one handshake for all of them."""
    start = time.perf_counter()
    with socket.create_connection(address, timeout=5) as sock:
        for _ in range(n):
            ping(sock)
    return (time.perf_counter() - start) / n


def compare(n: int = 200, rounds: int = 5) -> tuple[float, float]:
    """Median seconds per request over several rounds: (new connection, reused)."""
    with ping_server() as address:
        new, reused = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine load
            new.append(new_connection_each(address, n))
            reused.append(one_reused_connection(address, n))
    return statistics.median(new), statistics.median(reused)


# --8<-- [end:measure]


def main() -> None:
    new, reused = compare()
    print(f"new connection per request: {new * 1e6:7.1f} µs per request (median of 5 x 200)")
    print(f"one reused connection:      {reused * 1e6:7.1f} µs per request")
    print(f"reuse was {new / reused:.1f}x faster")


if __name__ == "__main__":
    main()
