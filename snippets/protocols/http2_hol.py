"""A model of TCP head-of-line blocking: a proxy holds back one DATA frame of one HTTP/2
stream, as if its TCP segment were lost, and every stream on that connection waits; on
separate connections, only the stream whose frame was held waits.

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


async def get_all(port: int, n: int) -> tuple[int, dict[int, float]]:
    """Send n requests at once on one connection; return the connection's local port and
    each stream's completion time in seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    local_port = writer.get_extra_info("sockname")[1]
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
    return local_port, done


# --8<-- [start:run]
async def through_proxy(
    n: int = 10, hold: float = 0.2, separate: bool = False, held_stream: int = 1
) -> tuple[float, list[float]]:
    """n requests through the proxy, which holds back `held_stream`'s first DATA frame on the
    first connection it accepts for `hold` seconds. One connection with n streams, or
    (separate=True) n connections with one stream each. Returns the completion time of
    the stream that was held and those of the n - 1 others."""
    connections: list[asyncio.Task[None]] = []
    held_port: list[int] = []  # the client port of the connection whose frame is held

    async def proxy(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        first = not held_port
        if first:
            held_port.append(client_w.get_extra_info("peername")[1])
        server_r, server_w = await asyncio.open_connection("127.0.0.1", server_port)
        connections.append(asyncio.create_task(pipe(client_r, server_w)))
        await late_segment_pipe(server_r, client_w, held_stream, hold if first else 0.0)

    server = await asyncio.start_server(h2_connection, "127.0.0.1", 0)
    relay = await asyncio.start_server(proxy, "127.0.0.1", 0)
    server_port, relay_port = (s.sockets[0].getsockname()[1] for s in (server, relay))
    async with server, relay:
        if separate:
            results = await asyncio.gather(*(get_all(relay_port, 1) for _ in range(n)))
        else:
            results = [await get_all(relay_port, n)]
        await asyncio.wait(connections, timeout=5)
    times = [(port == held_port[0] and stream_id == held_stream, t)
             for port, done in results for stream_id, t in done.items()]  # fmt: skip
    return next(t for held, t in times if held), [t for held, t in times if not held]


# --8<-- [end:run]


def main() -> None:
    hold, n = 0.2, 10
    print(f"the model: a proxy holds back stream 1's first DATA frame {hold * 1000:.1f} ms")
    for separate in (False, True):
        held, others = asyncio.run(through_proxy(n, hold, separate))
        how = f"{n} connections, 1 stream each" if separate else f"1 connection, {n} streams"
        print(f"{how}: the held stream done after {held * 1000:.1f} ms")
        print(f"  the other {len(others)}: first {min(others) * 1000:.1f} ms,"
              f" median {statistics.median(others) * 1000:.1f} ms,"
              f" last {max(others) * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
