"""Bad input against the broker from scratch (broker_pubsub.py, run as a server): an oversized
length, malformed commands, a frame cut short by EOF and a client that stalls mid-frame each
get a clear ERR frame (and a close where the stream cannot be trusted), and a healthy
publisher and subscriber keep working after every one.

Run: python snippets/messaging/broker_bad_input.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

BROKER = Path(__file__).with_name("broker_pubsub.py")
FRAME_TIMEOUT = 0.5  # seconds the broker gives a started frame to arrive in full
MAX_PENDING = 16 * 1024  # bytes the broker may queue for one client (the reader below)
PINGS = 10_000  # commands sent by the client that never reads a reply (8-byte PONG each)


# The framing, as in broker_pubsub.py (copied: snippets do not import each other).
def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None  # EOF


@contextlib.asynccontextmanager
async def broker(*args: str) -> AsyncIterator[int]:
    """broker_pubsub.py --serve in its own process; yields its port; stops it. (The same in
    broker_slow_subscriber.py and broker_bad_input.py: snippets do not import each other.)"""
    proc = subprocess.Popen(
        [sys.executable, str(BROKER), "--serve", "--frame-timeout", str(FRAME_TIMEOUT), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("listening on"):
            raise RuntimeError(f"the broker did not start: {line!r}")
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()


# --8<-- [start:cases]
CASES: dict[str, tuple[bytes, bool]] = {  # name: (bytes sent, then close our sending side?)
    "length 2 GiB (> 1 MiB limit)": (struct.pack(">I", 2**31), False),
    "unknown command": (frame(b"HELLO world"), False),
    "PUB without a payload": (frame(b"PUB orders.eu"), False),
    "'>' not last": (frame(b"SUB orders.>.created"), False),
    "wildcard in a PUB subject": (frame(b"PUB orders.* {}"), False),
    "empty token": (frame(b"SUB orders..created"), False),
    "not ASCII": (frame(b"SUB \xff\xfe"), False),
    "empty frame": (frame(b""), False),
    "frame cut short, then EOF": (struct.pack(">I", 100) + b"PUB orders.eu", True),
    "length prefix, then silence": (struct.pack(">I", 100), False),
    "half a length prefix, then silence": (b"\x00\x00", False),
}


async def send_bad(port: int, data: bytes, half_close: bool) -> tuple[str, str, float]:
    """Send `data` on a fresh connection. Returns the broker's answer, whether the
    connection stayed usable (a PING gets PONG) or was closed, and how long it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()  # our side is done: the broker reads EOF mid-frame
        async with asyncio.timeout(5):  # a hang would fail here, loudly
            answer = await read_frame(reader)
            state = "closed"
            if answer is not None and not half_close:
                writer.write(frame(b"PING"))
                state = "open" if await read_frame(reader) == b"PONG" else "closed"
        return (answer or b"(EOF)").decode(), state, time.perf_counter() - start
    finally:
        writer.close()


async def healthy(port: int, n: int, subject: bytes) -> int:
    """A subscriber and a publisher that did nothing wrong: how many of n arrive."""
    sub_r, sub_w = await asyncio.open_connection("127.0.0.1", port)
    pub_r, pub_w = await asyncio.open_connection("127.0.0.1", port)
    try:
        sub_w.write(frame(b"SUB " + subject))
        assert await asyncio.wait_for(read_frame(sub_r), 5) == b"OK"
        for i in range(n):
            pub_w.write(frame(b"PUB %s %d" % (subject, i)))
        got = 0
        async with asyncio.timeout(5):
            while got < n and (await read_frame(sub_r) or b"").startswith(b"MSG "):
                got += 1
        return got
    finally:
        sub_w.close()
        pub_w.close()


async def bad_input() -> list[tuple[str, str, str, float, int]]:
    """Every case on its own connection, all at once, each beside a healthy pair."""
    async with broker() as port:

        async def case(i: int, data: bytes, half_close: bool) -> tuple[str, str, float, int]:
            bad, ok = await asyncio.gather(
                send_bad(port, data, half_close), healthy(port, 10, b"healthy.%d" % i)
            )
            return (*bad, ok)

        results = await asyncio.gather(*(case(i, *sent) for i, sent in enumerate(CASES.values())))
    return [(name, *result) for name, result in zip(CASES, results, strict=True)]


# --8<-- [end:cases]


# --8<-- [start:never_reads]
async def never_reads(policy: str) -> dict:
    """A client pipelines PINGS PINGs and never reads a PONG. Another connection asks the
    broker (STATS) until it has read them all, has stopped reading this client (paused),
    or has cut it off. Beside it, a healthy pair."""
    async with broker(
        "--policy", policy, "--max-pending", str(MAX_PENDING), "--sndbuf", "4096"
    ) as port:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # keep the kernel's share small
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        _, writer = await asyncio.open_connection(sock=sock)
        host, own_port = sock.getsockname()[:2]
        name = f"{host}:{own_port}"  # how STATS names it
        writer.write(frame(b"PING") * PINGS)  # no drain(), and never a read
        ok = asyncio.create_task(healthy(port, 10, b"healthy.pings"))
        stats_r, stats_w = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(10):
                while True:
                    stats_w.write(frame(b"STATS"))
                    stats = json.loads((await read_frame(stats_r))[6:])
                    mine = stats["clients"].get(name)
                    if mine is None or mine["paused"] or mine["commands"] == PINGS:
                        break
                    await asyncio.sleep(0.01)  # poll again: the broker is still reading
            return {
                "peak queued bytes": mine["peak_queued_bytes"] if mine else None,
                "read them all": bool(mine and mine["commands"] == PINGS),
                "paused": bool(mine and mine["paused"]),
                "cut off": stats["slow consumers cut"],
                "healthy got": await ok,
            }
        finally:
            writer.transport.abort()
            stats_w.close()


async def never_reads_all() -> dict[str, dict]:
    policies = ("unbounded", "drop", "disconnect")
    runs = await asyncio.gather(*(never_reads(policy) for policy in policies))
    return dict(zip(policies, runs, strict=True))


# --8<-- [end:never_reads]


def main() -> None:
    # one after the other: the PING floods would slow the timed cases down
    cases, pings = asyncio.run(bad_input()), asyncio.run(never_reads_all())
    print(f"broker limits: frames up to 1 MiB, {FRAME_TIMEOUT} s to finish a started frame")
    print("each case on its own connection, all at once, each beside a healthy pair")
    for name, answer, state, seconds, ok in cases:
        print(f"{name}:\n  -> {answer}  [{state} after {seconds:.1f} s]  healthy pair got {ok}/10")
    print(
        f"a client sends {PINGS:,} PINGs and never reads a PONG ({PINGS * 8:,} bytes of replies);"
    )
    print(f"bound {MAX_PENDING // 1024} KiB per client:")
    for policy, row in pings.items():
        if row["cut off"]:
            what = "cut off (like a slow consumer)"
        elif row["paused"]:
            what = f"stopped reading it; peak queued {row['peak queued bytes']:,} bytes"
        else:
            # To the nearest 1,000: a few KB may reach the kernel's socket buffer first.
            what = f"read them all; peak queued ~{round(row['peak queued bytes'], -3):,} bytes"
        label = f"{policy} (the control)" if policy == "unbounded" else policy
        print(f"  {label:<21} {what}  healthy pair got {row['healthy got']}/10")


if __name__ == "__main__":
    main()
