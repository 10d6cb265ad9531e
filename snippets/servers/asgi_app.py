"""An ASGI application written by hand (the ASGI spec), called directly, then served by
uvicorn: one process, many requests waiting at once.

Run: python snippets/servers/asgi_app.py
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

MAX_BODY = 1024 * 1024  # refuse bodies over 1 MiB with 413
WAIT_SECONDS = 0.05  # /wait awaits 50 ms: a non-blocking database call
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
state: dict[str, str] = {}  # filled at lifespan startup


# --8<-- [start:app]
async def app(scope: dict, receive: Receive, send: Send) -> None:
    """ASGI: called once per connection scope with an event stream in (receive) and out
    (send). 'lifespan' runs once per process; 'http' once per request."""
    if scope["type"] == "lifespan":
        while (event := await receive())["type"] != "lifespan.shutdown":
            state["started"] = "yes"  # open pools, load models ... once per process
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    method, path = scope["method"], scope["path"]
    if path == "/wait":
        await asyncio.sleep(WAIT_SECONDS)  # yields: this process serves others meanwhile
        return await respond(send, 200, f"waited in pid {os.getpid()}\n")
    if path == "/echo" and method == "POST":
        body = b""
        while True:  # the body arrives as a stream of http.request events
            event = await receive()
            if event["type"] == "http.disconnect":
                return None
            body += event.get("body", b"")
            if len(body) > MAX_BODY:
                return await respond(send, 413, "body too large\n")
            if not event.get("more_body"):
                break
        return await respond(send, 200, f"{len(body)} bytes: {body[:40]!r}\n")
    if path == "/":
        return await respond(send, 200, f"hello from pid {os.getpid()}\n")
    return await respond(send, 404, "no such page\n")


async def respond(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --8<-- [end:app]


# --8<-- [start:by_hand]
async def call_by_hand(method: str, path: str, chunks: list[bytes]) -> list[dict]:
    """Be the server: a scope, a receive() that hands out the body in chunks, and a
    send() that records what the app sends."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [],
    }
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


# --8<-- [end:by_hand]


# --8<-- [start:serve]
@contextmanager
def serve(command: list[str], ready_path: str = "/") -> Iterator[tuple[str, int]]:
    """Start a server process on a socket we bound (port 0: no race for a port), wait until
    it answers HTTP, stop it in `finally`."""
    with socket.create_server(("127.0.0.1", 0)) as listener, tempfile.TemporaryFile() as log:
        fd = listener.fileno()
        process = subprocess.Popen(
            [arg.replace("{fd}", str(fd)) for arg in command],
            pass_fds=(fd,),
            stdout=log,
            stderr=log,
        )
        try:
            address = listener.getsockname()
            deadline = time.monotonic() + 15
            while get(address, ready_path, timeout=0.25) is None:  # ready: a real response
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"server did not start:\n{log.read().decode()[-2000:]}")
            yield address
        finally:
            process.send_signal(signal.SIGTERM)  # graceful: finish requests, then exit
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def get(address: tuple[str, int], path: str, timeout: float = 5) -> tuple[int, bytes] | None:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def uvicorn() -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--fd",
        "{fd}",
        "--lifespan",
        "on",
        "--log-level",
        "warning",
        "--app-dir",
        str(Path(__file__).parent),
        "asgi_app:app",
    ]


# --8<-- [end:serve]


def concurrent(address: tuple[str, int], path: str, n: int = 20) -> tuple[float, set[bytes]]:
    """n requests sent at once: (wall seconds, the distinct last words of the bodies)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda _: get(address, path), range(n)))
    seconds = time.perf_counter() - start
    if any(r is None or r[0] != 200 for r in replies):
        raise RuntimeError(f"failed requests: {replies}")
    return seconds, {r[1].split()[-1] for r in replies if r}


def main() -> None:
    for message in asyncio.run(call_by_hand("POST", "/echo", [b"hel", b"lo"])):
        print(f"by hand: app sent {message}")
    with serve(uvicorn()) as address:
        seconds, pids = concurrent(address, "/wait")
        print(
            f"uvicorn: 20 concurrent /wait (each awaits {WAIT_SECONDS * 1e3:.0f} ms),"
            f" 1 process: {seconds:.2f} s, answered by {len(pids)} process"
        )


if __name__ == "__main__":
    main()
