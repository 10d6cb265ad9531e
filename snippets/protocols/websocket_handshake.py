"""The WebSocket opening handshake and a frame, by hand over a socket, against a real server.

Run: python snippets/protocols/websocket_handshake.py
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from collections.abc import Callable
from typing import TypeVar

from websockets.asyncio.server import ServerConnection, serve

T = TypeVar("T")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3: the same for every server


# --8<-- [start:accept]
def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2, step 5.4)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


# --8<-- [end:accept]


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def with_echo_server(client: Callable[[tuple[str, int]], T]) -> T:
    """Run the websockets library's echo server on 127.0.0.1, port 0, while the blocking
    `client(address)` runs in a thread."""
    async with serve(echo, "127.0.0.1", 0) as server:
        return await asyncio.to_thread(client, server.sockets[0].getsockname())


# --8<-- [start:handshake]
def open_websocket(address: tuple[str, int], key: str | None) -> tuple[socket.socket, str, dict]:
    """Send the upgrade request by hand; return the socket, status line and headers."""
    sock = socket.create_connection(address, timeout=5)
    lines = [
        "GET /chat HTTP/1.1",
        f"Host: {address[0]}:{address[1]}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
    ] + ([f"Sec-WebSocket-Key: {key}"] if key is not None else [])
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status, *header_lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return sock, status, headers


# --8<-- [end:handshake]


# --8<-- [start:frame]
TEXT, CLOSE = 0x1, 0x8  # opcodes (RFC 6455 §5.2)


def send_frame(sock: socket.socket, opcode: int, payload: bytes) -> None:
    """One final frame, masked as every client frame must be (RFC 6455 §5.2, §5.3)."""
    mask = os.urandom(4)
    assert len(payload) < 126  # longer payloads use a 16- or 64-bit extended length
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked)


def recv_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one short, unmasked server frame: FIN + opcode, length, payload."""
    header = sock.recv(2)
    if len(header) < 2 or not header[0] & 0x80 or header[1] >= 126:
        raise ValueError(f"expected a short final frame, got {header!r}")
    payload = b""
    while len(payload) < header[1]:
        payload += sock.recv(header[1] - len(payload))
    return header[0] & 0x0F, payload


def close_websocket(sock: socket.socket) -> int:
    """The closing handshake: send CLOSE with code 1000, read the server's CLOSE."""
    send_frame(sock, CLOSE, struct.pack("!H", 1000))
    opcode, payload = recv_frame(sock)
    assert opcode == CLOSE
    return struct.unpack("!H", payload[:2])[0]


# --8<-- [end:frame]


def demo(address: tuple[str, int]) -> None:
    key = base64.b64encode(b"the sample nonce").decode()  # RFC 6455's own example
    print(f"Sec-WebSocket-Key:    {key}")
    print(f"our computed accept:  {accept_key(key)}")
    sock, status, headers = open_websocket(address, key)
    with sock:
        print(f"server answered:      {status}")
        print(f"server's accept:      {headers['Sec-WebSocket-Accept']}")
        print(f"they match:           {headers['Sec-WebSocket-Accept'] == accept_key(key)}")
        send_frame(sock, TEXT, b"hello over a hand-made frame")
        print(f"echoed frame:         {recv_frame(sock)}")
        print(f"closed with code:     {close_websocket(sock)}")
    for bad in [None, "not-base64-16-bytes"]:
        sock, status, _ = open_websocket(address, bad)
        sock.close()
        print(f"with Sec-WebSocket-Key {bad!r}: {status}")


def main() -> None:
    asyncio.run(with_echo_server(demo))


if __name__ == "__main__":
    main()
