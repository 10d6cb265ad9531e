"""sendfile() hands a file to the socket inside the kernel: far less CPU than read() + send(),
the same bytes on the wire, measured at two file sizes with the time to deliver them.

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
SIZES = (1024 * 1024, SIZE)  # the saving per byte, checked at two sizes


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


def send_costs(send: object, path: Path) -> tuple[float, float]:
    """(CPU time, user + kernel, of the sending thread; wall time until the client has
    received the whole file)."""
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
            began, start = time.perf_counter(), time.thread_time()
            send(server, path)  # type: ignore[operator]
            cpu = time.thread_time() - start
        reader.join(timeout=5)
        wall = time.perf_counter() - began
        client.close()
        if received != path.stat().st_size:
            raise ConnectionError(f"sent {path.stat().st_size} bytes, received {received}")
        return cpu, wall


# --8<-- [end:send]


Costs = tuple[float, float]  # median (CPU seconds, wall seconds)


def compare(rounds: int = 5, size: int = SIZE) -> tuple[Costs, Costs]:
    """Median costs per file of `size` bytes: (read + send, sendfile), interleaved rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "big.bin")
        path.write_bytes(os.urandom(size))
        copies, zero_copy = [], []
        for _ in range(rounds):
            copies.append(send_costs(send_with_copies, path))
            zero_copy.append(send_costs(send_with_sendfile, path))
    return (
        (statistics.median(c for c, _ in copies), statistics.median(w for _, w in copies)),
        (statistics.median(c for c, _ in zero_copy), statistics.median(w for _, w in zero_copy)),
    )


def main() -> None:
    print("a file to a loopback client; CPU of the sending thread, and time until delivered:")
    for size in SIZES:
        (cpu_copies, wall_copies), (cpu_zero, wall_zero) = compare(size=size)
        print(
            f"  {size >> 20:>2} MiB  read() + sendall(), 8 KiB chunks:"
            f" CPU {cpu_copies * 1e3:6.1f} ms, delivered in {wall_copies * 1e3:6.1f} ms"
        )
        print(
            f"  {size >> 20:>2} MiB  socket.sendfile():"
            f"                 CPU {cpu_zero * 1e3:6.1f} ms, delivered in {wall_zero * 1e3:6.1f} ms"
        )
        print(
            f"  {size >> 20:>2} MiB  sendfile used {cpu_copies / cpu_zero:.1f}x less CPU,"
            f" delivery took {wall_zero / wall_copies:.2f}x the time"
        )


if __name__ == "__main__":
    main()
