"""Lab: a server that survives slowloris (docs/servers/lab-slowloris.md) — reference solution.

An event loop (selectors) owns every connection from accept() to close(): an idle or
trickling client costs a dictionary entry, not a thread. Each connection has a deadline
from the moment it is accepted, so trickling a byte at a time does not keep it alive. At
most MAX_CONNECTIONS are open, counted until they are closed; one more is answered 503.
Complete requests go to a small thread pool, which builds and sends the response and hands
the socket back: the loop never blocks on a client, and no worker waits for one to close.

Run: make lab LAB=slowloris FILE=labs/slowloris/solution.py
Serve: python labs/slowloris/solution.py --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import selectors
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

HOST = "127.0.0.1"
TIMEOUT = 1.0  # seconds from accept() to a complete request head (stage 3)
MAX_CONNECTIONS = 64  # open connections, from accept() to close(); one more gets 503 (stage 4)
MAX_HEAD = 8 * 1024  # request line + headers; more gets 431
WORKERS = 4  # threads that build and send responses
LINGER = 0.25  # seconds the loop waits for the client to close after our response
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def response(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"  # RFC 9110 §6.6.1: MUST, we have a clock
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def respond(head: bytes) -> bytes:
    """The application: the response to one complete request head."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return response(400, b"bad request line\n")
    if parts[0] == b"GET" and parts[1] == b"/":
        return response(200, b"hello\n")
    return response(404, b"not found\n")


def receive(sock: socket.socket) -> bytes | None:
    """What a non-blocking socket the selector called readable has: None if nothing after
    all, b"" once the client closed or reset the connection."""
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return None
    except OSError:
        return b""


class Server:
    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(WORKERS)
        self.reading: dict[socket.socket, tuple[bytearray, float]] = {}  # buffer, deadline
        self.lingering: dict[socket.socket, float] = {}  # response sent; deadline, oldest first
        self.open = 0  # connections from accept() to close(): reading, in the pool, lingering
        self.sent: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()  # pool -> loop
        self.doorbell, self.ring = socket.socketpair()  # wakes the loop when a worker is done

    def serve_forever(self) -> None:
        for sock in (self.listener, self.doorbell, self.ring):
            sock.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.doorbell, selectors.EVENT_READ)
        while True:
            deadlines = [d for _, d in self.reading.values()] + list(self.lingering.values())
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self.selector.select(wait):
                sock = key.fileobj
                if sock is self.listener:
                    self.accept()
                elif sock is self.doorbell:
                    self.doorbell.recv(4096)
                    self.adopt()
                elif sock in self.reading:
                    self.read(sock)  # type: ignore[arg-type]
                elif sock in self.lingering:
                    self.drain(sock)  # type: ignore[arg-type]
            self.expire()

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        self.open += 1
        self.adopt()
        while self.open > MAX_CONNECTIONS and self.lingering:  # full: a connection that
            self.close(next(iter(self.lingering)))  # already has its response goes first
        if self.open > MAX_CONNECTIONS:  # still full: refuse clearly, do not queue
            self.pool.submit(self.reply, sock, response(503, b"too many connections\n"))
            return
        sock.setblocking(False)
        self.reading[sock] = (bytearray(), time.monotonic() + TIMEOUT)
        self.selector.register(sock, selectors.EVENT_READ)

    def read(self, sock: socket.socket) -> None:
        if (data := receive(sock)) is None:
            return
        if not data:  # the client closed (or reset) before a complete request
            self.close(sock)
            return
        buffer = self.reading[sock][0]
        buffer += data
        if b"\r\n\r\n" in buffer:
            self.selector.unregister(sock)  # the pool has it now; it still counts as open
            del self.reading[sock]
            head = bytes(buffer.split(b"\r\n\r\n", 1)[0])
            self.pool.submit(lambda: self.reply(sock, respond(head)))
        elif len(buffer) > MAX_HEAD:
            self.selector.unregister(sock)
            del self.reading[sock]
            self.pool.submit(self.reply, sock, response(431, b"request head too large\n"))

    def reply(self, sock: socket.socket, data: bytes) -> None:
        """In a worker: send a whole response and stop writing, then hand the socket back.
        The worker does not wait for the client to close: one that never does would hold
        it. The loop waits instead, at the cost of a dictionary entry (lingering close:
        closing with unread bytes from the client would send a reset, which can destroy
        the response before the client reads it)."""
        try:
            sock.settimeout(TIMEOUT)  # a client that does not read gets TIMEOUT, no more
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client went away: the loop closes the socket all the same
        finally:
            self.sent.put(sock)
            with contextlib.suppress(BlockingIOError):  # full: the loop is waking anyway
                self.ring.send(b"!")

    def adopt(self) -> None:
        """Take back the sockets whose response a worker has sent: they linger here."""
        while True:
            try:
                sock = self.sent.get_nowait()
            except queue.Empty:
                return
            sock.setblocking(False)
            self.lingering[sock] = time.monotonic() + LINGER
            self.selector.register(sock, selectors.EVENT_READ)

    def drain(self, sock: socket.socket) -> None:
        """A lingering connection: read and discard until the client closes."""
        if receive(sock) == b"":
            self.close(sock)

    def expire(self) -> None:
        """Close every connection whose request head, or whose client's close, is late."""
        now = time.monotonic()
        for sock in [s for s, (_, deadline) in self.reading.items() if deadline <= now]:
            self.close(sock)  # nginx does the same after client_header_timeout
        for sock in [s for s, deadline in self.lingering.items() if deadline <= now]:
            self.close(sock)

    def close(self, sock: socket.socket) -> None:
        """The only place a connection ends, so the count stays true."""
        self.selector.unregister(sock)
        self.reading.pop(sock, None)
        self.lingering.pop(sock, None)
        sock.close()
        self.open -= 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with socket.create_server((HOST, args.port), backlog=128) as listener:
        print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            Server(listener).serve_forever()


if __name__ == "__main__":
    main()
