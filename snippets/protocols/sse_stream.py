"""Server-Sent Events: a server pushes events over plain HTTP; the client resumes after a drop.

Run: python snippets/protocols/sse_stream.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

EVENTS = [f"price update {i}" for i in range(1, 7)]  # what the server has to say
PER_CONNECTION = 3  # the server drops the connection after 3 events, like a flaky network
REQUEST_TIMEOUT = 5.0  # seconds a client may take to send its request head


# --8<-- [start:server]
async def sse_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET /events -> text/event-stream; resumes after the client's Last-Event-ID."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):  # a client that never finishes is dropped
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines if line)}
        if not request_line.startswith("GET /events HTTP/1.1"):
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            return
        last_id = int(headers.get("last-event-id", "0") or 0)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\n\r\n"  # no length: the body is open-ended
            b"retry: 50\n\n"
        )  # reconnect after 50 ms if the connection drops
        for event_id in range(last_id + 1, min(last_id + PER_CONNECTION, len(EVENTS)) + 1):
            writer.write(f"id: {event_id}\ndata: {EVENTS[event_id - 1]}\n\n".encode())
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    finally:
        writer.close()


# --8<-- [end:server]


# --8<-- [start:client]
async def events(
    client: httpx.AsyncClient, url: str, last_id: str | None
) -> AsyncIterator[tuple[str, str]]:
    """One connection's events as (id, data): fields line by line, a blank line ends one."""
    headers = {"accept": "text/event-stream"} | ({"last-event-id": last_id} if last_id else {})
    async with client.stream("GET", url, headers=headers) as response:
        response.raise_for_status()
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "data" in event:
                    yield event.get("id", ""), event["data"]
                event = {}
            elif not line.startswith(":"):  # ":" starts a comment (a keep-alive, often)
                field, _, value = line.partition(":")
                event[field] = value.removeprefix(" ")


async def follow(url: str, want: int) -> list[tuple[int, str, str]]:
    """Read events, reconnecting with Last-Event-ID when the stream ends, until `want`."""
    received: list[tuple[int, str, str]] = []
    last_id: str | None = None
    async with httpx.AsyncClient(timeout=5) as client:
        for connection in range(1, 10):
            async for event_id, data in events(client, url, last_id):
                received.append((connection, event_id, data))
                last_id = event_id
            if len(received) >= want:
                return received
            await asyncio.sleep(0.05)  # the server's `retry:` value, as a browser would
    raise ConnectionError("gave up reconnecting")


# --8<-- [end:client]


async def demo() -> list[tuple[int, str, str]]:
    server = await asyncio.start_server(sse_connection, "127.0.0.1", 0)
    async with server:
        host, port = server.sockets[0].getsockname()
        return await follow(f"http://{host}:{port}/events", want=len(EVENTS))


def main() -> None:
    for connection, event_id, data in asyncio.run(demo()):
        print(f"connection {connection}: id {event_id}  data {data!r}")


if __name__ == "__main__":
    main()
