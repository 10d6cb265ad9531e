"""Lab: a server that survives slowloris (docs/servers/lab-slowloris.md) — reference solution.

An event loop (selectors) owns every connection while its request head arrives: an idle or
trickling client costs a dictionary entry, not a thread. Each connection has a deadline
from the moment it is accepted, so trickling a byte at a time does not keep it alive. At
most MAX_CONNECTIONS are open; one more is answered 503. Complete requests go to a small
thread pool, which builds and sends the response, so the loop never blocks on a client.

Run: make lab LAB=slowloris FILE=labs/slowloris/solution.py
Serve: python labs/slowloris/solution.py --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import time
from concurrent.futures import ThreadPoolExecutor

HOST = "127.0.0.1"
TIMEOUT = 1.0  # seconds from accept() to a complete request head (stage 3)
MAX_CONNECTIONS = 64  # connections reading a request at once; one more gets 503 (stage 4)
MAX_HEAD = 8 * 1024  # request line + headers; more gets 431
WORKERS = 4  # threads that build and send responses
LINGER = 0.25  # seconds to wait for the client to close after our response
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


def reply(sock: socket.socket, data: bytes) -> None:
    """Send a whole response, then close gently: stop writing, let the client read it and
    close first (a few bytes it sent that we did not read would turn our close into a RST
    that can destroy the response before the client reads it)."""
    try:
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER)
        while sock.recv(4096):  # until the client closes, or LINGER
            pass
    except OSError:
        pass  # the client went away: nothing more to do for it
    finally:
        sock.close()


class Server:
    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(WORKERS)
        self.reading: dict[socket.socket, tuple[bytearray, float]] = {}  # buffer, deadline

    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        while True:
            deadlines = [deadline for _, deadline in self.reading.values()]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self.selector.select(wait):
                if key.fileobj is self.listener:
                    self.accept()
                else:
                    self.read(key.fileobj)  # type: ignore[arg-type]
            self.expire()

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        if len(self.reading) >= MAX_CONNECTIONS:  # full: refuse clearly, do not queue
            self.pool.submit(reply, sock, response(503, b"too many connections\n"))
            return
        sock.setblocking(False)
        self.reading[sock] = (bytearray(), time.monotonic() + TIMEOUT)
        self.selector.register(sock, selectors.EVENT_READ)

    def read(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) before a complete request
            self.forget(sock)
            sock.close()
            return
        buffer = self.reading[sock][0]
        buffer += data
        if b"\r\n\r\n" in buffer:
            self.forget(sock)
            head = bytes(buffer.split(b"\r\n\r\n", 1)[0])
            self.pool.submit(lambda: reply(sock, respond(head)))
        elif len(buffer) > MAX_HEAD:
            self.forget(sock)
            self.pool.submit(reply, sock, response(431, b"request head too large\n"))

    def expire(self) -> None:
        """Close every connection whose request head did not arrive in time."""
        now = time.monotonic()
        for sock in [s for s, (_, deadline) in self.reading.items() if deadline <= now]:
            self.forget(sock)
            sock.close()  # nginx does the same after client_header_timeout

    def forget(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.reading[sock]


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
