"""A slow subscriber against the broker from scratch (broker_pubsub.py, run as a server): with a
bounded buffer per subscriber the broker drops (counted) or cuts the slow one off, and the fast
subscribers get everything; with an unbounded buffer the broker's queue grows with every
message published.

Run: python snippets/messaging/broker_slow_subscriber.py
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
from collections.abc import AsyncIterator
from pathlib import Path

BROKER = Path(__file__).with_name("broker_pubsub.py")
PAYLOAD = b"x" * 100  # each MSG frame is 4 + len("MSG ticks.0001 ") + 100 = 119 bytes
BATCH = 125  # messages per batch; the next batch goes when the fast subscribers have it
STEPS = (250, 500, 1000)  # messages published so far when the broker is asked for STATS
MAX_PENDING = 16 * 1024  # > one batch, so a subscriber that keeps up never hits it


# The framing, as in broker_pubsub.py (copied: snippets do not import each other).
def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None  # EOF: the broker closed the connection


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.got = reader, writer, 0

    @classmethod
    async def connect(cls, port: int, rcvbuf: int | None = None) -> Client:
        sock = socket.socket()
        if rcvbuf:  # a small receive window: this client's kernel holds little for it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # limit: asyncio pauses reading from the socket once its buffer holds over 2 KiB
        # (the read that crosses it can bring whatever the small kernel buffer holds)
        return cls(*await asyncio.open_connection(sock=sock, limit=1024 if rcvbuf else 2**16))

    async def call(self, payload: bytes, timeout: float = 5.0) -> bytes | None:
        """Send a command; read frames (counting MSGs) up to the reply; None at EOF."""
        self.writer.write(frame(payload))
        async with asyncio.timeout(timeout):
            await self.writer.drain()
            while (reply := await read_frame(self.reader)) is not None:
                if not reply.startswith(b"MSG "):
                    return reply
                self.got += 1
        return None

    async def read_until(self, n: int, timeout: float = 5.0) -> None:
        """Count MSG frames until there are n, EOF, or `timeout` s without a frame."""
        with contextlib.suppress(TimeoutError):
            while self.got < n and await asyncio.wait_for(read_frame(self.reader), timeout):
                self.got += 1

    def close(self) -> None:
        self.writer.transport.abort()


@contextlib.asynccontextmanager
async def broker(policy: str) -> AsyncIterator[int]:
    """broker_pubsub.py --serve in its own process; yields its port; stops it. (The same in
    broker_slow_subscriber.py and broker_bad_input.py: snippets do not import each other.)"""
    proc = subprocess.Popen(
        [sys.executable, str(BROKER), "--serve", "--policy", policy,
         "--max-pending", str(MAX_PENDING), "--sndbuf", "4096"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
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


# --8<-- [start:run]
async def slow_subscriber(
    policy: str, steps: tuple[int, ...] = STEPS, patience: float = 5.0
) -> list[dict]:
    """Two fast subscribers and one that stops reading, all on `ticks.>`; publish in
    batches; after each step ask the broker how much it holds for the slow one."""
    rows: list[dict] = []
    async with broker(policy) as port:
        fast = [await Client.connect(port) for _ in range(2)]
        slow = await Client.connect(port, rcvbuf=4096)
        for client in [*fast, slow]:
            assert await client.call(b"SUB ticks.>") == b"OK"
        host, slow_port = slow.writer.get_extra_info("sockname")[:2]
        slow_name = f"{host}:{slow_port}"  # how the broker's STATS names it
        publisher = await Client.connect(port)
        sent = 0
        try:
            for step in steps:
                while sent < step:  # closed loop: a batch, then wait until it is fanned out
                    for _ in range(BATCH):
                        sent += 1
                        publisher.writer.write(frame(b"PUB ticks.%04d %s" % (sent, PAYLOAD)))
                    assert await publisher.call(b"PING", patience) == b"PONG"
                    await asyncio.gather(*(c.read_until(sent, patience) for c in fast))
                stats = json.loads((await publisher.call(b"STATS"))[6:])
                mine = stats["clients"].get(slow_name, {})  # gone if it was cut off
                rows.append({
                    "published": sent,
                    "fast got": [client.got for client in fast],
                    "slow queued bytes": mine.get("queued_bytes", 0),
                    "slow dropped": mine.get("dropped", 0),
                    "slow cut off": stats["slow consumers cut"],
                })  # fmt: skip
            # Now the slow one reads: what reaches it, and is it still connected?
            connected = await slow.call(b"PING") == b"PONG"
            rows[-1] |= {"slow then read": slow.got, "slow still connected": connected}
        except TimeoutError:  # the broker stopped answering within `patience` seconds
            await asyncio.gather(*(c.read_until(sent, patience) for c in fast))
            rows.append({"published": sent, "fast got": [c.got for c in fast], "stalled": True})
        finally:
            for client in [*fast, slow, publisher]:
                client.close()
    return rows


# --8<-- [end:run]


async def all_policies() -> dict[str, list[dict]]:
    """The three policies side by side, each with its own broker process."""
    policies = ("unbounded", "drop", "disconnect")
    runs = await asyncio.gather(*(slow_subscriber(policy) for policy in policies))
    return dict(zip(policies, runs, strict=True))


def main() -> None:
    frame_size = len(frame(b"MSG ticks.0001 " + PAYLOAD))  # every subject is 4 digits wide
    print(f"3 subscribers on ticks.>, one stops reading; {frame_size}-byte frames")
    print(f"({STEPS[-1]:,} published: {STEPS[-1] * frame_size:,} bytes per subscriber);")
    print(f"bounded policies: {MAX_PENDING // 1024} KiB of buffer per subscriber")
    results = asyncio.run(all_policies())
    print("unbounded (the control): bytes the broker holds for the slow subscriber")
    for row in results["unbounded"]:
        print(f"  after {row['published']:>4} messages: ~{row['slow queued bytes']} bytes")
    print(f"after {STEPS[-1]} messages:")
    print("policy      fast subs got  slow: queued  dropped  then read  connection")
    for policy, rows in results.items():
        last = rows[-1]
        got = ", ".join(str(g) for g in last["fast got"])
        queued = f"~{last['slow queued bytes']}" if not last["slow cut off"] else "-"
        dropped = f"~{last['slow dropped']}" if last["slow dropped"] else "0"
        state = "open" if last["slow still connected"] else "cut off (EOF)"
        print(
            f"{policy:<11} {got:<14} {queued:<13} {dropped:<8} ~{last['slow then read']:<9} {state}"
        )


if __name__ == "__main__":
    main()
