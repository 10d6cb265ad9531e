"""100 requests on one HTTP/2 connection run at once; on one HTTP/1.1 connection, one by one.

Run: python snippets/protocols/http2_multiplex.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RemoteSettingsChanged, RequestReceived, StreamEnded

WORK = 0.004  # seconds of simulated backend work (a database query, say) per request


Handler = Callable[..., Coroutine[Any, Any, None]]


class InFlight:
    """Counts requests the server is working on, and the most at once."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    def __enter__(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


# --8<-- [start:servers]
async def http1_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, load: InFlight
) -> None:
    """HTTP/1.1: read a request, work, answer; only then read the next one."""
    try:
        while True:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")  # limit: 64 KiB, then an error
            if not head.startswith(b"GET "):
                writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                return
            with load:
                await asyncio.sleep(WORK)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        return  # closed, oversized or silent: drop the connection
    finally:
        writer.close()


async def h2_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, load: InFlight
) -> None:
    """HTTP/2: every request starts a task; responses go out on their streams as they finish."""
    conn = H2Connection(H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())

    async def respond(stream_id: int) -> None:
        with load:
            await asyncio.sleep(WORK)
        conn.send_headers(stream_id, [(":status", "200"), ("content-length", "2")])
        conn.send_data(stream_id, b"ok", end_stream=True)
        writer.write(conn.data_to_send())

    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            async with asyncio.timeout(5):
                data = await reader.read(65535)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, RequestReceived):
                    task = asyncio.create_task(respond(event.stream_id))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            writer.write(conn.data_to_send())
    finally:
        for task in tasks:
            task.cancel()
        writer.close()


# --8<-- [end:servers]


# --8<-- [start:clients]
async def http1_sequential(port: int, n: int) -> float:
    """n requests on one keep-alive HTTP/1.1 connection: each waits for the one before."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    async with asyncio.timeout(10):
        for i in range(n):
            writer.write(f"GET /item/{i} HTTP/1.1\r\nhost: localhost\r\n\r\n".encode())
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)  # content-length: 2
    elapsed = time.perf_counter() - start
    writer.close()
    await writer.wait_closed()
    return elapsed


async def h2_multiplexed(port: int, n: int) -> float:
    """n requests on one HTTP/2 connection: all sent at once, one stream each."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    async with asyncio.timeout(10):
        while True:  # wait for the server's SETTINGS: its limits (max concurrent streams)
            events = conn.receive_data(await reader.read(65535))
            writer.write(conn.data_to_send())  # our SETTINGS ACK
            if any(isinstance(event, RemoteSettingsChanged) for event in events):
                break
        start = time.perf_counter()
        for i in range(n):  # at most SETTINGS_MAX_CONCURRENT_STREAMS (h2: 100) at once
            conn.send_headers(
                conn.get_next_available_stream_id(),
                [
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", "localhost"),
                    (":path", f"/item/{i}"),
                ],
                end_stream=True,
            )
        writer.write(conn.data_to_send())
        ended = 0
        while ended < n:
            data = await reader.read(65535)
            if not data:
                raise ConnectionError("server closed the connection")
            ended += sum(isinstance(e, StreamEnded) for e in conn.receive_data(data))
            writer.write(conn.data_to_send())
    elapsed = time.perf_counter() - start
    writer.close()
    await writer.wait_closed()
    return elapsed


# --8<-- [end:clients]


# --8<-- [start:compare]
async def compare(n: int = 100, rounds: int = 3) -> dict[str, tuple[float, int]]:
    """Median seconds for n requests, and the server's peak requests in flight."""
    loads = {"HTTP/1.1": InFlight(), "HTTP/2": InFlight()}
    handlers: set[asyncio.Task[None]] = set()

    def serve(handler: Handler, load: InFlight) -> Handler:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.add(asyncio.current_task())  # type: ignore[arg-type]
            await handler(reader, writer, load)

        return tracked

    h1 = await asyncio.start_server(serve(http1_connection, loads["HTTP/1.1"]), "127.0.0.1", 0)
    h2 = await asyncio.start_server(serve(h2_connection, loads["HTTP/2"]), "127.0.0.1", 0)
    times: dict[str, list[float]] = {"HTTP/1.1": [], "HTTP/2": []}
    async with h1, h2:
        for _ in range(rounds):  # interleaved, so both see the same machine load
            times["HTTP/1.1"].append(await http1_sequential(h1.sockets[0].getsockname()[1], n))
            times["HTTP/2"].append(await h2_multiplexed(h2.sockets[0].getsockname()[1], n))
        await asyncio.wait(handlers, timeout=5)  # each ends when its client has closed
    return {k: (statistics.median(v), loads[k].peak) for k, v in times.items()}


# --8<-- [end:compare]


def main() -> None:
    results = asyncio.run(compare())
    for name, (seconds, peak) in results.items():
        print(
            f"{name:8}  100 requests on one connection: {seconds * 1000:.1f} ms"
            f"  (server had at most ~{peak} in flight)"
        )
    ratio = results["HTTP/1.1"][0] / results["HTTP/2"][0]
    print(f"with {WORK * 1000:.1f} ms of work per request, multiplexing was {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
