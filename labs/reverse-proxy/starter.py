"""Lab: build a reverse proxy (docs/proxies/lab-reverse-proxy.md).

Fill in the TODOs stage by stage; after each, run the stages against this file:

Run: make lab LAB=reverse-proxy FILE=labs/reverse-proxy/starter.py
Serve: python labs/reverse-proxy/starter.py --port 0 --backend 127.0.0.1:8001 [--backend …]

Copy it first if you like (cp labs/reverse-proxy/starter.py my_proxy.py) and pass FILE=.
Keep the contract the stages rely on: started with `--port 0` and one `--backend
host:port` per backend, the program binds 127.0.0.1 on a free port and prints
`listening on 127.0.0.1:<port>` before serving. Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 8 * 1024  # request line + headers; more gets 431 (stage 6)
# CLIENT_TIMEOUT is a deadline for the whole head, not a limit per recv(): a client that
# drips one byte every 0.6 s must still be cut off after 1 s (stage 6).
CLIENT_TIMEOUT = 1.0  # seconds a client has to send a whole request head; then 408 (stage 6)
BACKEND_TIMEOUT = 1.0  # seconds to connect to a backend and for its head; then 504 (stage 6)
CHECK_INTERVAL = 0.2  # seconds between two health checks of a backend (stage 5)
CHECK_TIMEOUT = 1.0  # a health check not answered in time failed (stage 5)
FALL = 2  # failed health checks in a row that mark a backend down (stage 5)
# RFC 9110 §9.2.2: "A proxy MUST NOT automatically retry non-idempotent requests." (stage 4)
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}
# Hop-by-hop headers (RFC 9110 §7.6.1): about one connection, never forwarded; and the
# proxy credentials (§11.7) this proxy consumes (stage 6).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
}


def handle_client(sock: socket.socket, peer: str, backends: list[tuple[str, int]]) -> None:
    """Serve one client connection."""
    with sock:
        # TODO stage 1: read the request head (up to the blank line) and its body
        #   (Content-Length bytes), send them to backends[0], read the backend's response
        #   (status line, headers, Content-Length or chunked body) and send it to the client.
        # TODO stage 2: keep serving requests on this client connection (HTTP/1.1
        #   keep-alive), and keep the connection to the backend open in a pool of idle
        #   connections, shared by all client threads, instead of opening one per request.
        # TODO stage 3: choose the backend in turn (round robin), one pool per backend.
        # TODO stage 4: when a backend fails (its connection refused or timed out, or a new
        #   connection closed without a response byte), mark it down and stop choosing it
        #   (passive detection); send the request to the next backend that is up only if
        #   it was never sent (the connection was refused or timed out) or its method is
        #   IDEMPOTENT; answer anything else 502 (it may have been acted on: never send it
        #   twice); 503 when no backend is up.
        # TODO stage 5: a thread per backend sends GET /health every CHECK_INTERVAL on a new
        #   connection: a 2xx or 3xx answer within CHECK_TIMEOUT marks it up, FALL other
        #   outcomes in a row mark it down (active health checks bring a revived backend back).
        # TODO stage 6: 400 for a malformed request, 431 over MAX_HEAD_BYTES, 408 after
        #   CLIENT_TIMEOUT, 504 after BACKEND_TIMEOUT, 502 for a response that is not HTTP
        #   and for a backend that refuses the connection; never retry a POST (only
        #   idempotent methods, RFC 9110 §9.2.2); drop HOP_BY_HOP headers (and those named
        #   in Connection) both ways; add Via: 1.1 <name>; append the client's address to
        #   X-Forwarded-For.
        body = b"not implemented yet\n"
        with contextlib.suppress(OSError):
            sock.sendall(
                b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )


def parse_backend(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", action="append", required=True, type=parse_backend)
    args = parser.parse_args()
    listener = socket.create_server((HOST, args.port))
    print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    with listener:
        while True:
            sock, (peer, _) = listener.accept()
            threading.Thread(
                target=handle_client, args=(sock, peer, args.backend), daemon=True
            ).start()


if __name__ == "__main__":
    main()
