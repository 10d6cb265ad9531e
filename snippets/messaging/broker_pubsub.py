"""A pub/sub broker from scratch: asyncio, length-prefixed frames, NATS-style wildcard topics
(`*` one token, `>` the rest) and fan-out through a bounded buffer per subscriber.

Run: python snippets/messaging/broker_pubsub.py
(`--serve` runs it as a server that prints `listening on 127.0.0.1:<port>`; the other broker
snippets start it that way.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

MAX_FRAME = 1024 * 1024  # the largest frame we accept (NATS's default max_payload is 1 MB)
MAX_PENDING = 64 * 1024  # bytes queued for one subscriber before the policy applies
FRAME_TIMEOUT = 2.0  # seconds a started frame may take to arrive in full
POLICIES = ("drop", "disconnect", "unbounded", "block")


# --8<-- [start:framing]
def frame(payload: bytes) -> bytes:
    """One frame: a 4-byte big-endian length, then that many bytes."""
    return struct.pack(">I", len(payload)) + payload


class FrameError(Exception):
    """The stream cannot be trusted any more: answer with ERR, then close."""


async def read_frame(
    reader: asyncio.StreamReader, max_frame: int = MAX_FRAME, timeout: float = FRAME_TIMEOUT
) -> bytes | None:
    """The next frame's payload, or None at a clean EOF between frames.

    An idle connection may wait forever for its *first* byte (a subscriber only listens),
    but once a frame has started, the rest must arrive within `timeout` seconds. A length
    over `max_frame` is refused before the broker waits for, or allocates, the body it
    declares (only what asyncio has already read ahead from the socket is buffered)."""
    first = await reader.read(1)
    if not first:
        return None  # EOF between frames: the client left cleanly
    try:
        async with asyncio.timeout(timeout):
            (length,) = struct.unpack(">I", first + await reader.readexactly(3))
            if length > max_frame:
                raise FrameError(f"frame too large: {length} > {max_frame} bytes")
            return await reader.readexactly(length)
    except asyncio.IncompleteReadError as e:
        raise FrameError(f"truncated frame: EOF after {len(e.partial)} bytes") from None
    except TimeoutError:
        raise FrameError(f"frame not completed within {timeout} s") from None


# --8<-- [end:framing]


# --8<-- [start:match]
def tokens(subject: str, wildcards: bool) -> list[str]:
    """Split a subject on '.', NATS's rules: no empty token; a publish subject has no
    wildcard; in a pattern, '*' and '>' are whole tokens and '>' only comes last."""
    parts = subject.split(".")
    if not subject or "" in parts:
        raise ValueError(f"empty token in {subject!r}")
    for i, part in enumerate(parts):
        has_wildcard = "*" in part or ">" in part
        if has_wildcard and not wildcards:
            raise ValueError(f"wildcard in a publish subject {subject!r}")
        if has_wildcard and (part not in ("*", ">") or (part == ">" and i != len(parts) - 1)):
            raise ValueError(f"bad wildcard in {subject!r}")
    return parts


def matches(pattern: list[str], subject: list[str]) -> bool:
    """`*` matches exactly one token; `>` matches one or more tokens at the end."""
    for i, p in enumerate(pattern):
        if p == ">":
            return len(subject) > i
        if i >= len(subject) or (p != "*" and p != subject[i]):
            return False
    return len(pattern) == len(subject)


# --8<-- [end:match]


@dataclass(eq=False)
class Subscriber:
    """One connection: its patterns and its outbound buffer (frames not yet written)."""

    writer: asyncio.StreamWriter
    patterns: dict[str, list[str]] = field(default_factory=dict)
    buffer: deque[bytes] = field(default_factory=deque)
    queued: int = 0  # bytes in `buffer`
    peak: int = 0
    delivered: int = 0  # frames handed to the socket
    commands: int = 0  # frames read from it
    dropped: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set when the buffer drains
    paused: bool = False  # its commands are not read while its buffer is over the bound
    cut: bool = False
    gone: bool = False  # its pump has stopped (the socket failed, or it was cut)

    @property
    def name(self) -> str:
        host, port = self.writer.get_extra_info("peername")[:2]
        return f"{host}:{port}"


# --8<-- [start:broker]
class Broker:
    def __init__(
        self,
        policy: str = "drop",
        max_pending: int = MAX_PENDING,
        max_frame: int = MAX_FRAME,
        frame_timeout: float = FRAME_TIMEOUT,
        sndbuf: int | None = None,
    ) -> None:
        assert policy in POLICIES, policy
        self.policy, self.max_pending = policy, max_pending
        self.max_frame, self.frame_timeout, self.sndbuf = max_frame, frame_timeout, sndbuf
        self.clients: set[Subscriber] = set()
        self.handlers: set[asyncio.Task] = set()
        self.stats = {"published": 0, "slow consumers cut": 0, "errors": 0}

    def offer(self, sub: Subscriber, data: bytes, reply: bool = False) -> None:
        """Queue a frame for one subscriber, never beyond max_pending bytes (unless the
        policy is 'unbounded', the control). Returns at once: one slow subscriber does
        not hold up the fan-out to the others. Everything sent to a client counts, replies
        (OK, PONG, ERR) too, as NATS counts all of a connection's outbound data."""
        if self.policy != "unbounded" and sub.queued + len(data) > self.max_pending:
            if self.policy == "disconnect":  # what NATS does to a slow consumer
                sub.cut = True
                self.stats["slow consumers cut"] += 1
                sub.writer.transport.abort()
                return
            if not reply:
                sub.dropped += 1  # counted, and visible in STATS
                return
            # A reply is never dropped (a client waiting for its PONG would hang): it is
            # queued, and handle() reads no more of this client's commands until the buffer
            # is back under the bound, so replies overshoot it by at most one reply.
        sub.buffer.append(data)
        sub.queued += len(data)
        sub.peak = max(sub.peak, sub.queued)
        sub.wake.set()

    async def room(self, sub: Subscriber) -> None:
        """Wait while this client's buffer is at the bound: a client that sends commands
        and never reads the replies is not read either (TCP then pushes back on it).
        ('disconnect' never waits: the next frame that does not fit cuts the client off.)"""
        bounded = self.policy not in ("unbounded", "disconnect")
        while bounded and sub.queued >= self.max_pending and not sub.gone:
            sub.paused = True
            sub.room.clear()
            await sub.room.wait()
        sub.paused = False

    async def publish(self, subject: str, payload: bytes) -> None:
        parts = tokens(subject, wildcards=False)
        data = frame(b"MSG " + subject.encode() + b" " + payload)
        self.stats["published"] += 1
        for sub in list(self.clients):
            if sub.cut or not any(matches(p, parts) for p in sub.patterns.values()):
                continue
            if self.policy == "block":  # the naive fan-out: wait for each socket in turn
                sub.writer.write(data)
                await sub.writer.drain()
                sub.delivered += 1
            else:
                self.offer(sub, data)

    async def pump(self, sub: Subscriber) -> None:
        """Move one subscriber's buffer to its socket, at the pace the socket drains."""
        try:
            while not sub.cut:
                await sub.wake.wait()
                sub.wake.clear()
                while sub.buffer and not sub.cut:
                    data = sub.buffer.popleft()
                    sub.queued -= len(data)
                    sub.writer.write(data)
                    sub.delivered += 1
                    await sub.writer.drain()  # waits while the client is not reading
                    sub.room.set()
        except ConnectionError:  # the client left, or was cut
            pass
        finally:
            sub.gone = True
            sub.room.set()  # a handler waiting for room stops waiting

    # --8<-- [end:broker]

    # --8<-- [start:commands]
    async def command(self, sub: Subscriber, payload: bytes) -> bytes | None:
        """One command frame -> the reply frame's payload (None: no reply)."""
        verb, _, rest = payload.partition(b" ")
        try:
            if not payload:
                raise ValueError("empty frame")
            if verb == b"PUB":
                subject, sep, body = rest.partition(b" ")
                if not sep:
                    raise ValueError("usage: PUB <subject> <payload>")
                await self.publish(subject.decode("ascii"), body)
                return None
            if verb in (b"SUB", b"UNSUB"):
                pattern = rest.decode("ascii")
                if verb == b"SUB":
                    sub.patterns[pattern] = tokens(pattern, wildcards=True)
                elif sub.patterns.pop(pattern, None) is None:
                    raise ValueError(f"not subscribed to {pattern!r}")
                return b"OK"
            if verb == b"PING" and not rest:
                return b"PONG"
            if verb == b"STATS" and not rest:
                return b"STATS " + json.dumps(self.snapshot()).encode()
            raise ValueError(f"unknown command {verb[:16]!r}")
        except UnicodeDecodeError:
            self.stats["errors"] += 1
            return b"ERR subject is not ASCII"
        except ValueError as e:
            # The frame was read whole, so the stream is still in step: answer, carry on.
            self.stats["errors"] += 1
            return b"ERR " + str(e).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio's own write buffer is kept small (drain() waits above 4 KiB), and so
        # can the kernel's (--sndbuf): then the broker's queue is what holds the backlog.
        writer.transport.set_write_buffer_limits(high=4096)
        if self.sndbuf:
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf
            )
        sub = Subscriber(writer)
        self.clients.add(sub)
        self.handlers.add(asyncio.current_task())
        pump = asyncio.create_task(self.pump(sub))
        try:
            while not sub.cut:
                await self.room(sub)  # no reading while its replies are not being read
                if sub.gone:
                    break
                payload = await read_frame(reader, self.max_frame, self.frame_timeout)
                if payload is None:
                    break
                sub.commands += 1
                reply = await self.command(sub, payload)
                if reply is not None:
                    self.offer(sub, frame(reply), reply=True)
        except FrameError as e:  # oversized, truncated or stalled: say why, then close
            self.stats["errors"] += 1
            writer.write(frame(b"ERR " + str(e).encode()))
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(writer.drain(), 1)
        except ConnectionError:
            pass
        finally:
            self.clients.discard(sub)
            self.handlers.discard(asyncio.current_task())
            pump.cancel()
            writer.close()

    # --8<-- [end:commands]

    def snapshot(self) -> dict:
        return {
            **self.stats,
            "clients": {
                s.name: {
                    "queued_bytes": s.queued,
                    "peak_queued_bytes": s.peak,
                    "delivered": s.delivered,
                    "commands": s.commands,
                    "dropped": s.dropped,
                    "paused": s.paused,
                }
                for s in self.clients
            },
        }

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        """Listen on 127.0.0.1 on an ephemeral port; yield the port; stop everything."""
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            for sub in list(self.clients):
                sub.writer.transport.abort()  # its handler sees EOF and returns
            await asyncio.gather(*self.handlers, return_exceptions=True)
            await server.wait_closed()


# --8<-- [start:client]
class Client:
    """A minimal client: send command frames, read reply and MSG frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.messages: list[tuple[str, bytes]] = []

    @classmethod
    async def connect(cls, port: int, rcvbuf: int | None = None) -> Client:
        sock = socket.socket()
        if rcvbuf:  # set before connect: it sizes the window the broker may fill
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(*await asyncio.open_connection(sock=sock))

    async def send(self, payload: bytes) -> None:
        self.writer.write(frame(payload))
        await asyncio.wait_for(self.writer.drain(), 5)

    async def next(self, timeout: float = 5) -> bytes | None:
        """The next frame that is not a MSG (those are kept in .messages); None at EOF."""
        while True:
            payload = await asyncio.wait_for(read_frame(self.reader, MAX_FRAME * 2), timeout)
            if payload is None or not payload.startswith(b"MSG "):
                return payload
            subject, _, body = payload[4:].partition(b" ")
            self.messages.append((subject.decode(), body))

    async def call(self, payload: bytes) -> bytes | None:
        await self.send(payload)
        return await self.next()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# --8<-- [end:client]


# --8<-- [start:demo]
SUBSCRIPTIONS = {
    "exact": "orders.eu.created",
    "one token": "orders.*.created",
    "the rest": "orders.>",
    "everything": ">",
}
PUBLISHED = [
    "orders.eu.created",
    "orders.us.created",
    "orders.eu.refund.issued",
    "orders",
    "users.signup",
]


async def fan_out() -> dict[str, list[str]]:
    """One subscriber per pattern; publish each subject once; who got what."""
    async with Broker().serving() as port:
        subs = {name: await Client.connect(port) for name in SUBSCRIPTIONS}
        for name, pattern in SUBSCRIPTIONS.items():
            assert await subs[name].call(b"SUB " + pattern.encode()) == b"OK"
        publisher = await Client.connect(port)
        for subject in PUBLISHED:
            await publisher.send(b"PUB " + subject.encode() + b" {}")
        assert await publisher.call(b"PING") == b"PONG"  # all fanned out (in order)
        got = {}
        for name, client in subs.items():
            assert await client.call(b"PING") == b"PONG"  # its MSGs were queued first
            got[name] = [subject for subject, _ in client.messages]
            await client.close()
        await publisher.close()
    return got


# --8<-- [end:demo]


async def serve(args: argparse.Namespace) -> None:
    broker = Broker(args.policy, args.max_pending, args.max_frame, args.frame_timeout, args.sndbuf)
    async with broker.serving() as port:
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()  # until the process is stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--policy", choices=POLICIES, default="drop")
    parser.add_argument("--max-pending", type=int, default=MAX_PENDING)
    parser.add_argument("--max-frame", type=int, default=MAX_FRAME)
    parser.add_argument("--frame-timeout", type=float, default=FRAME_TIMEOUT)
    parser.add_argument("--sndbuf", type=int, default=None)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
        return
    got = asyncio.run(fan_out())
    print(f"published, once each: {', '.join(PUBLISHED)}")
    for name, pattern in SUBSCRIPTIONS.items():
        print(f"SUB {pattern:<18} got {len(got[name])}: {', '.join(got[name])}")


if __name__ == "__main__":
    main()
