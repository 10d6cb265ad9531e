"""Nagle's algorithm + delayed ACK stall a write-write-read exchange; TCP_NODELAY removes it.

Run: python snippets/protocols/tcp_nagle.py
"""

from __future__ import annotations

import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

HEADER, BODY = b"HEAD" * 4, b"BODY" * 4  # a request sent as two small writes


class RequestHandler(socketserver.BaseRequestHandler):
    """Reply only once the whole request (header + body) is in, like any HTTP server."""

    def handle(self) -> None:
        self.request.settimeout(5)
        size = len(HEADER) + len(BODY)
        while True:
            request = b""
            while len(request) < size:
                chunk = self.request.recv(size - len(request))
                if not chunk:
                    return
                request += chunk
            self.request.sendall(b"OK")


@contextmanager
def request_server() -> Iterator[tuple[str, int]]:
    with socketserver.TCPServer(("127.0.0.1", 0), RequestHandler) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield server.server_address
        finally:
            server.shutdown()


# --8<-- [start:measure]
def request_latencies(
    address: tuple[str, int], nodelay: bool, two_writes: bool = True, n: int = 15
) -> list[float]:
    """Seconds per request for n requests on one connection."""
    latencies = []
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)
        for _ in range(n):
            start = time.perf_counter()
            if two_writes:
                sock.sendall(HEADER)  # goes out at once: nothing is unacknowledged
                sock.sendall(BODY)  # Nagle holds it until HEADER is ACKed ...
            else:
                sock.sendall(HEADER + BODY)  # one write: nothing for Nagle to hold
            # ... and the server delays that ACK, hoping to piggyback it on a reply
            # it cannot send before BODY arrives. Both sides wait for a timer.
            if sock.recv(2) != b"OK":
                raise ConnectionError("unexpected reply")
            latencies.append(time.perf_counter() - start)
    return latencies


# --8<-- [end:measure]


def compare(n: int = 15) -> dict[str, float]:
    """Median latency per request for each way of writing the request."""
    with request_server() as address:
        return {
            "two writes, Nagle on (default)": statistics.median(
                request_latencies(address, nodelay=False, n=n)
            ),
            "two writes, TCP_NODELAY": statistics.median(
                request_latencies(address, nodelay=True, n=n)
            ),
            "one write, Nagle on": statistics.median(
                request_latencies(address, nodelay=False, two_writes=False, n=n)
            ),
        }


def main() -> None:
    medians = compare()
    for name, seconds in medians.items():
        print(f"{name:32} median {seconds * 1000:6.2f} ms per request")
    slow, fast = medians["two writes, Nagle on (default)"], medians["two writes, TCP_NODELAY"]
    print(f"the write-write-read pattern was {slow / fast:.1f}x slower with Nagle on")


if __name__ == "__main__":
    main()
