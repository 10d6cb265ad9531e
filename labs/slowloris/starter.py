"""Lab: a server that survives slowloris (docs/servers/lab-slowloris.md).

This is the naive server: one loop that accepts a connection, reads its request head
with blocking recv() calls, answers and closes. One client that connects and says
nothing stops it for everyone. Fill in the TODOs stage by stage, and after each, run:

Run: make lab LAB=slowloris FILE=labs/slowloris/starter.py
Serve: python labs/slowloris/starter.py --port 0   (then: curl -v http://127.0.0.1:<port>/)

Copy it first if you like (cp labs/slowloris/starter.py my_server.py) and pass FILE=.
Keep the contract the stages rely on: started with `--port 0`, the program binds
127.0.0.1 on a free port and prints `listening on 127.0.0.1:<port>` before serving.
Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
from email.utils import formatdate  # noqa: F401  (stage 1: the Date header field)

HOST = "127.0.0.1"
TIMEOUT = 1.0  # seconds from accept() to a complete request head (stage 3)
MAX_CONNECTIONS = 64  # open connections, from accept() to close(); one more gets 503 (stage 4)
MAX_HEAD = 8 * 1024  # request line + headers; more gets 431
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def response(status: int, body: bytes) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    # TODO stage 1: return the status line (b"HTTP/1.1 200 OK\r\n"), the headers
    #   Date (formatdate(usegmt=True), a MUST), Content-Type: text/plain,
    #   Content-Length and Connection: close, a blank line, then the body.
    #   REASONS has the reason phrases.
    raise NotImplementedError("stage 1: build the response bytes")


def respond(head: bytes) -> bytes:
    """The application: the response to one complete request head."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return response(400, b"bad request line\n")
    if parts[0] == b"GET" and parts[1] == b"/":
        return response(200, b"hello\n")
    return response(404, b"not found\n")


def read_head(sock: socket.socket) -> bytes | None:
    """Read until the end of the request head; None if the client closed first."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(4096)  # blocks for as long as the client likes
        if not data:
            return None
        buffer += data
    return buffer.split(b"\r\n\r\n", 1)[0]


def serve_forever(listener: socket.socket) -> None:
    # TODO stage 2: one silent client must not stop everybody else. Read request heads
    #   for all connections at once with an event loop (selectors: register the listener
    #   and every connection for EVENT_READ, keep a buffer per connection), and hand each
    #   complete request to a thread pool (concurrent.futures.ThreadPoolExecutor) that
    #   sends the response.
    # TODO stage 3: give every connection a deadline, TIMEOUT after accept(); close the
    #   connections whose head is not complete by then. A per-recv() timeout is not
    #   enough: a slowloris client sends a byte just before each one expires.
    #   (select(timeout=...) until the nearest deadline, then expire.)
    # TODO stage 4: count every connection from accept() until it is closed (in the pool
    #   or not); when MAX_CONNECTIONS are open, answer the next one with 503 at once and
    #   close it; do not queue it. Heads over MAX_HEAD get 431.
    # TODO stage 5: good clients keep their latency while 50 slowloris connections
    #   trickle bytes, and while 100 clients that got their response never close. If
    #   they do not, look for anything that waits on one client: in the loop (a blocking
    #   send, a sleep), or in a worker (waiting for the client to close after replying).
    while True:
        sock, _ = listener.accept()
        with sock:
            head = read_head(sock)
            if head is not None:
                sock.sendall(respond(head))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with socket.create_server((HOST, args.port), backlog=128) as listener:
        print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            serve_forever(listener)


if __name__ == "__main__":
    main()
