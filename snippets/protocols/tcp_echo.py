"""A TCP echo server and client on loopback: every byte sent comes back, in order.

Run: python snippets/protocols/tcp_echo.py
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


# --8<-- [start:server]
class EchoHandler(socketserver.BaseRequestHandler):
    """One connection: read whatever arrives and write it straight back."""

    def handle(self) -> None:
        self.request.settimeout(5)  # a silent client cannot hold the thread forever
        while data := self.request.recv(4096):  # b"" means the peer closed
            self.request.sendall(data)


@contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """Listen on 127.0.0.1 with an ephemeral port; yield (host, port); stop on exit."""
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield server.server_address
        finally:
            server.shutdown()


# --8<-- [end:server]


# --8<-- [start:client]
def echo_once(address: tuple[str, int], message: bytes) -> bytes:
    """Connect (three-way handshake), send, read until every byte is back, close (FIN)."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(message)
        received = b""
        while len(received) < len(message):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed early")
            received += chunk
        return received


# --8<-- [end:client]


def main() -> None:
    with echo_server() as address:
        print(f"echo server listening on {address[0]}:{address[1]}")
        for message in [b"hello", b"TCP delivers bytes", "in order ✓".encode()]:
            print(f"sent {message!r:26} got back {echo_once(address, message)!r}")


if __name__ == "__main__":
    main()
