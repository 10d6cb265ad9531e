"""WebSocket ping/pong: measure latency, and let the server drop a peer that stops answering.

Run: python snippets/protocols/websocket_keepalive.py
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import statistics
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError

PING, CLOSE = 0x9, 0x8


SERVER_LOG: list[str] = []


async def echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosedError as exc:  # closed without a clean closing handshake
        SERVER_LOG.append(str(exc))


# --8<-- [start:latency]
async def ping_latencies(port: int, n: int = 20) -> list[float]:
    """Send n Ping frames; the peer's library answers each with a Pong automatically."""
    async with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
        latencies = []
        for _ in range(n):
            pong = await ws.ping()  # returns a future that completes on the Pong
            latencies.append(await asyncio.wait_for(pong, 5))
        return latencies


# --8<-- [end:latency]


# --8<-- [start:frozen]
def frozen_client(port: int) -> tuple[list[int], int, float]:
    """Complete the handshake by hand, then never answer anything: a peer whose process
    hangs, or whose network vanished. Collect what the server sends until it closes.
    Returns (opcodes received, close code, seconds from the handshake until the server
    closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        start = time.perf_counter()  # before the handshake: the server's pings start after it
        sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            if not (chunk := sock.recv(4096)):
                raise ConnectionError(f"the server closed before its 101 response: {data!r}")
            data += chunk
        data = data.split(b"\r\n\r\n", 1)[1]
        while chunk := sock.recv(4096):  # read what arrives, answer nothing
            data += chunk
        elapsed = time.perf_counter() - start
    opcodes, code = [], 0
    while data:  # short unmasked server frames: [FIN|opcode] [length] [payload]
        opcode, length = data[0] & 0x0F, data[1]
        opcodes.append(opcode)
        if opcode == CLOSE:
            code = int.from_bytes(data[2:4])
        data = data[2 + length :]
    return opcodes, code, elapsed


# --8<-- [end:frozen]


# --8<-- [start:run]
async def demo(interval: float = 0.1, timeout: float = 0.1) -> tuple[list[float], tuple]:
    """A server that pings every `interval` s and gives up after `timeout` s without a Pong."""
    async with serve(echo, "127.0.0.1", 0, ping_interval=interval, ping_timeout=timeout) as server:
        port = server.sockets[0].getsockname()[1]
        latencies = await ping_latencies(port)
        frozen = await asyncio.wait_for(asyncio.to_thread(frozen_client, port), 5)
    return latencies, frozen


# --8<-- [end:run]


def main() -> None:
    latencies, (opcodes, code, elapsed) = asyncio.run(demo())
    median = statistics.median(latencies) * 1000
    print(f"ping -> pong round trip: median {median:.2f} ms over {len(latencies)} pings")
    print(f"frozen client: the server sent ~{opcodes.count(PING)} Ping frame(s), got no Pong,")
    print(f"  and closed the connection with code {code} after {elapsed:.2f} s")
    print(f"  the server's handler saw: {SERVER_LOG[-1]}")


if __name__ == "__main__":
    main()
