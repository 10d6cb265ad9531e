"""TCP head-of-line blocking: one late segment of one HTTP/2 stream stalls every stream.

Run: python snippets/protocols/http2_hol.py
"""

from __future__ import annotations

import asyncio
import statistics
import time

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RemoteSettingsChanged, RequestReceived, StreamEnded

BODY = b"x" * 1000


async def h2_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request at once, in the order the requests arrived."""
    conn = H2Connection(H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    try:
        while data := await asyncio.wait_for(reader.read(65535), 5):
            for event in conn.receive_data(data):
                if isinstance(event, RequestReceived):
                    conn.send_headers(event.stream_id, [(":status", "200")])
                    conn.send_data(event.stream_id, BODY, end_stream=True)
            writer.write(conn.data_to_send())
    finally:
        writer.close()


# --8<-- [start:proxy]
async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65535):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def late_segment_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream_id: int, hold: float
) -> None:
    """Server -> client, frame by frame. The first DATA frame of `stream_id` is held back
    for `hold` seconds, as if its TCP segment were lost and retransmitted. TCP delivers
    bytes in order, so everything behind it waits too: the receiver's kernel keeps later
    segments in its reorder buffer and gives the application nothing past the hole."""
    buffer, held = b"", False
    try:
        while data := await reader.read(65535):
            buffer += data
            while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3]):
                size = 9 + int.from_bytes(buffer[:3])  # 24-bit length + 9-byte header
                frame, buffer = buffer[:size], buffer[size:]
                frame_type, frame_stream = frame[3], int.from_bytes(frame[5:9]) & 0x7FFFFFFF
                if frame_type == 0x0 and frame_stream == stream_id and not held:
                    held = True
                    await writer.drain()  # what came before the hole is delivered
                    await asyncio.sleep(hold)  # the "retransmission timeout"
                writer.write(frame)
            await writer.drain()
    finally:
        writer.close()


# --8<-- [end:proxy]


async def get_all(port: int, n: int) -> dict[int, float]:
    """Send n requests at once; return each stream's completion time in seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    done: dict[int, float] = {}
    async with asyncio.timeout(5):
        while True:  # wait for the server's SETTINGS
            events = conn.receive_data(await reader.read(65535))
            writer.write(conn.data_to_send())
            if any(isinstance(event, RemoteSettingsChanged) for event in events):
                break
        start = time.perf_counter()
        for i in range(n):
            conn.send_headers(
                conn.get_next_available_stream_id(),
                [
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", "localhost"),
                    (":path", f"/{i}"),
                ],
                end_stream=True,
            )
        writer.write(conn.data_to_send())
        while len(done) < n:
            data = await reader.read(65535)
            if not data:
                raise ConnectionError("closed early")
            for event in conn.receive_data(data):
                if isinstance(event, DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, StreamEnded):
                    done[event.stream_id] = time.perf_counter() - start
            writer.write(conn.data_to_send())
    writer.close()
    await writer.wait_closed()
    return done


# --8<-- [start:run]
async def through_proxy(n: int = 10, hold: float = 0.2) -> dict[int, float]:
    """n streams through the proxy; stream 1's first DATA frame is `hold` seconds late."""
    connections: list[asyncio.Task[None]] = []

    async def proxy(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", server_port)
        connections.append(asyncio.create_task(pipe(client_r, server_w)))
        await late_segment_pipe(server_r, client_w, stream_id=1, hold=hold)

    server = await asyncio.start_server(h2_connection, "127.0.0.1", 0)
    relay = await asyncio.start_server(proxy, "127.0.0.1", 0)
    server_port = server.sockets[0].getsockname()[1]
    async with server, relay:
        done = await get_all(relay.sockets[0].getsockname()[1], n)
        await asyncio.wait(connections, timeout=5)
    return done


# --8<-- [end:run]


def main() -> None:
    hold = 0.2
    baseline = asyncio.run(through_proxy(n=10, hold=0.0))
    print(f"nothing held back: all 10 streams done within {max(baseline.values()) * 1e3:.1f} ms")
    done = asyncio.run(through_proxy(n=10, hold=hold))
    others = [t for stream_id, t in done.items() if stream_id != 1]
    print(f"stream 1's first DATA frame held back {hold * 1000:.1f} ms (a lost segment)")
    print(f"stream 1 completed after {done[1] * 1000:.1f} ms")
    print(
        f"the other {len(others)} streams: median {statistics.median(others) * 1000:.1f} ms,"
        f" first {min(others) * 1000:.1f} ms"
    )
    waited = sum(t >= hold for t in others)
    print(f"{waited} of {len(others)} other streams waited for stream 1's segment")


if __name__ == "__main__":
    main()
