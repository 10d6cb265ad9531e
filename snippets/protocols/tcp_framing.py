"""TCP is a byte stream: reads do not line up with sends, so messages need framing.

Run: python snippets/protocols/tcp_framing.py
"""

from __future__ import annotations

import socket
import struct
import threading
import time


def connected_pair() -> tuple[socket.socket, socket.socket]:
    """A real TCP connection on loopback: (client side, server side)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
        server.settimeout(5)
        return client, server


def wait_until_buffered(sock: socket.socket, nbytes: int, timeout: float = 5.0) -> None:
    """Wait (without reading) until nbytes sit in the receive buffer: a slow reader."""
    deadline = time.monotonic() + timeout
    while len(sock.recv(nbytes, socket.MSG_PEEK)) < nbytes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {nbytes} bytes arrived")


# --8<-- [start:bug]
def naive_reads(sock: socket.socket, total: int) -> list[bytes]:
    """The bug: treat every recv() as one message. Returns what each recv() gave."""
    reads = []
    while sum(map(len, reads)) < total:
        reads.append(sock.recv(65536))
    return reads


def show_the_bug() -> tuple[list[bytes], list[int]]:
    client, server = connected_pair()
    with client, server:
        client.sendall(b"hello")  # two sends ...
        client.sendall(b"world")
        wait_until_buffered(server, 10)  # ... the reader is a little late ...
        merged = naive_reads(server, 10)  # ... and one recv() returns both

        big = bytes(300_000)  # one send ...
        sender = threading.Thread(target=client.sendall, args=(big,))
        sender.start()
        split = naive_reads(server, len(big))  # ... arrives in several reads
        sender.join()
    return merged, [len(chunk) for chunk in split]


# --8<-- [end:bug]


# --8<-- [start:fix]
HEADER = struct.Struct("!I")  # 4-byte unsigned length, network byte order
MAX_MESSAGE = 1 << 20  # refuse absurd lengths instead of allocating them


def send_message(sock: socket.socket, payload: bytes) -> None:
    if len(payload) > MAX_MESSAGE:
        raise ValueError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 65536))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_message(sock: socket.socket) -> bytes:
    (length,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if length > MAX_MESSAGE:
        raise ValueError(f"peer announced {length} bytes, limit is {MAX_MESSAGE}")
    return recv_exactly(sock, length)


# --8<-- [end:fix]


def show_the_fix(messages: list[bytes]) -> list[bytes]:
    client, server = connected_pair()
    with client, server:
        sender = threading.Thread(target=lambda: [send_message(client, m) for m in messages])
        sender.start()
        received = [recv_message(server) for _ in messages]
        sender.join()
    return received


def main() -> None:
    merged, split = show_the_bug()
    print(f"sent b'hello' then b'world'; first recv() returned {merged[0]!r}")
    # "~" marks a number that changes from run to run (it depends on timing).
    print(f"sent 300000 bytes in one send(); it took ~{len(split)} recv() calls", end=" ")
    print(f"of ~{min(split)} to ~{max(split)} bytes")
    messages = [b"hello", b"world", bytes(300_000)]
    received = show_the_fix(messages)
    print(f"length-prefixed: sent {len(messages)} messages, received {len(received)}:", end=" ")
    print([len(m) for m in received], "bytes, boundaries intact:", received == messages)


if __name__ == "__main__":
    main()
