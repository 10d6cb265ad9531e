"""sendfile() hands a file to the socket inside the kernel: far less CPU than read() + send().

Run: python snippets/servers/static_sendfile.py
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

SIZE = 16 * 1024 * 1024  # a 16 MiB file


# --8<-- [start:send]
def send_with_copies(sock: socket.socket, path: Path) -> None:
    """What a simple server does (wsgiref's FileWrapper reads 8 KiB blocks too): every
    chunk is copied from the kernel into a Python bytes object, then back into the kernel."""
    with path.open("rb") as file:
        while chunk := file.read(8192):
            sock.sendall(chunk)


def send_with_sendfile(sock: socket.socket, path: Path) -> None:
    """os.sendfile() under the hood: page cache -> socket, no copy through user space."""
    with path.open("rb") as file:
        sock.sendfile(file)


def sender_cpu_seconds(send: object, path: Path) -> float:
    """CPU time (user + kernel) the sending thread spends to deliver the whole file."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
        received = 0

        def drain() -> None:  # a client that reads everything as fast as it can
            nonlocal received
            buffer = bytearray(1 << 20)
            while n := client.recv_into(buffer):
                received += n

        reader = threading.Thread(target=drain)
        reader.start()
        with server:
            server.settimeout(5)
            start = time.thread_time()
            send(server, path)  # type: ignore[operator]
            cpu = time.thread_time() - start
        reader.join(timeout=5)
        client.close()
        if received != path.stat().st_size:
            raise ConnectionError(f"sent {path.stat().st_size} bytes, received {received}")
        return cpu


# --8<-- [end:send]


def compare(rounds: int = 5) -> tuple[float, float]:
    """Median CPU seconds per file: (read + send, sendfile), interleaved rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "big.bin")
        path.write_bytes(os.urandom(SIZE))
        copies, zero_copy = [], []
        for _ in range(rounds):
            copies.append(sender_cpu_seconds(send_with_copies, path))
            zero_copy.append(sender_cpu_seconds(send_with_sendfile, path))
    return statistics.median(copies), statistics.median(zero_copy)


def main() -> None:
    copies, zero_copy = compare()
    print(f"sending a {SIZE >> 20} MiB file to a loopback client, CPU of the sending thread:")
    print(f"  read() + sendall(), 8 KiB chunks:  {copies * 1e3:6.1f} ms")
    print(f"  socket.sendfile():                 {zero_copy * 1e3:6.1f} ms")
    print(f"sendfile used {copies / zero_copy:.1f}x less CPU")


if __name__ == "__main__":
    main()
