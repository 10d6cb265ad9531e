"""Lab: build an HTTP/1.1 server from a socket up (docs/protocols/lab-http-server.md).

Fill in the TODOs stage by stage; after each, run the stages against this file:

Run: make lab LAB=http-server FILE=labs/http-server/starter.py
Serve: python labs/http-server/starter.py --port 0   (then: curl -v http://127.0.0.1:<port>/)

Copy it first if you like (cp labs/http-server/starter.py my_server.py) and pass FILE=.
Keep the contract the stages rely on: started with `--port 0`, the program binds
127.0.0.1 on a free port and prints `listening on 127.0.0.1:<port>` before serving.
Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
from dataclasses import dataclass, field

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 8 * 1024  # request line + headers; more gets 431 (stage 6)
MAX_BODY_BYTES = 1024 * 1024  # a larger Content-Length gets 413 (stage 6)
TIMEOUT = 1.0  # seconds a request may take from its first byte before 408 (stage 6)


class HttpError(Exception):
    """Raise HttpError(400, "why") anywhere while reading a request; answer, then close."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names (stage 3)
    body: bytes = b""


def read_request(sock: socket.socket, buffer: bytearray) -> Request | None:
    """Read one request from sock; None if the client closed before sending one.

    `buffer` holds bytes already received but not yet used: a recv() may return the end
    of this request *and* the start of the next one (stage 4), so keep what you do not use.
    """
    # TODO stage 1: recv() until the buffer holds b"\r\n\r\n" (the end of the head).
    #   One recv() is not one request: loop. Return None if recv() returns b"" first.
    # TODO stage 2: split the request line into method, target and version.
    # TODO stage 3: parse "Name: value" lines into request.headers (names lower-cased);
    #   then read exactly Content-Length more bytes as the body.
    # TODO stage 6: raise HttpError(400, ...) for a malformed request line or header,
    #   a missing Host in HTTP/1.1 or more than one Host, CR, LF or NUL in a field value,
    #   a Content-Length that is not digits, or Transfer-Encoding with Content-Length;
    #   HttpError(413, ...) for a Content-Length over MAX_BODY_BYTES (before reading it);
    #   HttpError(431, ...) once the buffer holds more than MAX_HEAD_BYTES without the end
    #   of the head; and HttpError(408, ...) when the request is not complete TIMEOUT s
    #   after its first byte: one deadline for the whole request, so before each recv(),
    #   sock.settimeout(what is left of it), and catch TimeoutError.
    # TODO stage 7: accept an absolute-form target (GET http://host:port/echo/x HTTP/1.1:
    #   route on its path); read a Transfer-Encoding: chunked body (hex size [;ext] CRLF,
    #   data CRLF, ..., 0 CRLF, trailer lines, CRLF) and decode it; HttpError(400, ...) for
    #   a malformed chunk size or chunk data not followed by CRLF, or when chunked is not
    #   the last transfer coding.
    raise NotImplementedError("stage 1: read the request")


def route(request: Request) -> tuple[int, bytes, dict[str, str]]:
    """The application: (status, body, extra headers) for a request."""
    # TODO stage 1: GET / -> 200, b"Hello, world!\n"
    # TODO stage 2: GET /echo/<text> -> 200 with <text>; no route -> 404;
    #   a known path with the wrong method -> 405 with an Allow header.
    # TODO stage 3: GET /user-agent -> the User-Agent header; POST /echo -> the body.
    # TODO stage 7: HEAD works wherever GET does (Allow: GET, HEAD).
    raise NotImplementedError("stage 1: route GET /")


def response_bytes(status: int, body: bytes, headers: dict[str, str], close: bool) -> bytes:
    """Serialise a response: status line, header lines, blank line, body."""
    # TODO stage 1: b"HTTP/1.1 200 OK\r\n" ... b"\r\n" + body
    # TODO stage 3: always send Content-Length, Content-Type and Date
    #   (email.utils.formatdate(usegmt=True)).
    # TODO stage 4: add "Connection: close" when you are going to close.
    # TODO stage 7: the response to HEAD has GET's header fields (Content-Length
    #   included) and no body.
    raise NotImplementedError("stage 1: write the response")


def handle_connection(sock: socket.socket) -> None:
    """Serve one client connection until it is done, then close it."""
    with sock:
        # TODO stage 1: buffer = bytearray(); request = read_request(sock, buffer);
        #   route it; sock.sendall(response_bytes(...)); return.
        # TODO stage 4: loop: serve requests until the client closes, sends
        #   Connection: close, or speaks HTTP/1.0 without Connection: keep-alive.
        # TODO stage 6: catch HttpError: answer it with Connection: close, and close.
        raise NotImplementedError("stage 1: serve the connection")


def serve(port: int) -> None:
    with socket.create_server((HOST, port)) as listener:
        print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
        while True:
            sock, _ = listener.accept()
            # TODO stage 5: one connection at a time means an idle client blocks everyone.
            #   Serve each connection in its own thread (threading.Thread, daemon=True).
            handle_connection(sock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    with contextlib.suppress(KeyboardInterrupt):
        serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
