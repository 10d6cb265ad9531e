"""Lab solution: a reverse proxy with a keep-alive upstream pool and round robin
(docs/proxies/lab-reverse-proxy.md). One thread per client connection.

Run: python labs/reverse-proxy/solution.py --port 0 --backend 127.0.0.1:8001 --backend ...
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import socket
import threading
import time

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 8 * 1024  # request line + headers; more gets 431 (stage 4)
# A deadline for the whole head, not a limit per recv(): a client dripping one byte every
# 0.6 s would pass a per-recv timeout for as long as it likes (HAProxy's `timeout
# http-request` is likewise "the maximum allowed time to wait for a complete HTTP request").
CLIENT_TIMEOUT = 1.0  # seconds a client has to send a whole request head; then 408 (stage 4)
BACKEND_TIMEOUT = 1.0  # seconds to connect to a backend, and for its response head; then 504
VIA = "1.1 reverse-proxy-lab"  # RFC 9110 §7.6.3: a gateway MUST send Via (stage 4)
# RFC 9110 §9.2.2: "A proxy MUST NOT automatically retry non-idempotent requests."
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}
# Hop-by-hop headers (RFC 9110 §7.6.1): about one connection, never forwarded; and the
# proxy credentials (§11.7) this proxy consumes.
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
REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    411: "Length Required",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}


class HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class Conn:
    """A socket with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def read_head(self, limit: int, too_big: HttpError, seconds: float) -> bytes | None:
        """Up to and including the blank line; None if the peer closed before any byte.
        TimeoutError if the whole head has not arrived `seconds` after the call."""
        deadline = time.monotonic() + seconds
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > limit:
                raise too_big
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the head did not arrive in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                if self.buffer:
                    raise HttpError(400, "closed in the middle of a head")
                return None
            self.buffer += chunk
        self.sock.settimeout(seconds)  # for the body: a limit per recv()
        if end + 4 > limit:
            raise too_big
        head, self.buffer = self.buffer[: end + 4], self.buffer[end + 4 :]
        return head

    def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the middle of a body")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the middle of a chunk")
            self.buffer += chunk
        line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return line


def parse_head(head: bytes, error: HttpError) -> tuple[str, list[tuple[str, str]]]:
    """(start line, [(name, value)]); `error` for anything that is not HTTP/1.x."""
    start, *lines = head[:-4].decode("latin-1").split("\r\n")
    fields = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or " " in name:
            raise error
        fields.append((name, value.strip()))
    return start, fields


def get(fields: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in fields if k.lower() == name]
    return ", ".join(values) if values else None


def end_to_end(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, and every header the Connection header names."""
    named = {t.strip().lower() for t in (get(fields, "connection") or "").split(",")}
    return [(k, v) for k, v in fields if k.lower() not in HOP_BY_HOP | named]


def content_length(fields: list[tuple[str, str]], error: HttpError) -> int:
    values = {v.strip() for k, v in fields if k.lower() == "content-length"}
    if not values:
        return 0
    if len(values) > 1 or not next(iter(values)).isdigit():
        raise error
    return int(next(iter(values)))


class Pool:
    """Idle keep-alive connections per backend, and round robin over the backends."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.idle: dict[tuple[str, int], list[Conn]] = {b: [] for b in backends}
        self.turn = itertools.cycle(backends)
        self.lock = threading.Lock()

    def next_backend(self) -> tuple[str, int]:
        with self.lock:
            return next(self.turn)

    def take(self, backend: tuple[str, int]) -> tuple[Conn, bool]:
        """(a connection, whether it was reused from the pool)."""
        with self.lock:
            if self.idle[backend]:
                return self.idle[backend].pop(), True
        sock = socket.create_connection(backend, timeout=BACKEND_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Conn(sock), False

    def give_back(self, backend: tuple[str, int], conn: Conn) -> None:
        with self.lock:
            self.idle[backend].append(conn)


def exchange(
    pool: Pool, backend: tuple[str, int], request: bytes, method: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Send one request upstream, read its response: (status line, fields, body)."""
    for attempt in range(2):
        try:
            upstream, reused = pool.take(backend)
        except TimeoutError:  # RFC 9110 §15.6.5: no timely answer from upstream
            raise HttpError(504, "could not connect to the backend in time") from None
        except OSError as error:  # refused, unreachable: RFC 9110 §15.6.3, invalid upstream
            raise HttpError(502, f"could not connect to the backend ({error.strerror})") from None
        try:
            upstream.sock.sendall(request)
            head = upstream.read_head(
                64 * 1024, HttpError(502, "response head too large"), BACKEND_TIMEOUT
            )
        except TimeoutError:
            upstream.sock.close()
            raise HttpError(504, "the backend did not answer in time") from None
        except OSError:
            upstream.sock.close()
            head = None
        if head is None:  # closed without a response byte: maybe an idle pooled connection
            # the backend had dropped, maybe a crash after it acted on the request. Only an
            # idempotent request may be sent again (RFC 9110 §9.2.2); a POST gets 502.
            if reused and attempt == 0 and method in IDEMPOTENT:
                continue
            raise HttpError(502, "the backend closed the connection")
        try:
            status, fields = parse_head(head, HttpError(502, "malformed response header"))
            parts = status.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise HttpError(502, "malformed status line")
            code = int(parts[1])
            if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
                body = b""
            elif "chunked" in (get(fields, "transfer-encoding") or "").lower():
                body = b""
                while (size := int(upstream.read_line().split(b";")[0], 16)) > 0:
                    body += upstream.read_exactly(size)
                    upstream.read_line()
                while upstream.read_line():  # trailers, ignored
                    pass
            elif get(fields, "content-length") is not None:
                body = upstream.read_exactly(
                    content_length(fields, HttpError(502, "bad Content-Length from backend"))
                )
            else:  # delimited by close
                while chunk := upstream.sock.recv(65536):
                    upstream.buffer += chunk
                body, upstream.buffer = upstream.buffer, b""
                fields.append(("Connection", "close"))
        except TimeoutError:
            upstream.sock.close()
            raise HttpError(504, "the backend did not finish in time") from None
        except (ValueError, ConnectionError) as error:
            upstream.sock.close()
            raise HttpError(502, f"bad response from the backend: {error}") from None
        if "close" in (get(fields, "connection") or "").lower():
            upstream.sock.close()
        else:
            pool.give_back(backend, upstream)
        return status, fields, body
    raise AssertionError("unreachable")


def error_response(status: int, detail: str) -> bytes:
    body = f"{status} {REASONS[status]}: {detail}\n".encode()
    return (
        f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def handle_client(sock: socket.socket, peer: str, pool: Pool) -> None:
    client = Conn(sock)
    with sock:
        while True:
            try:
                head = client.read_head(
                    MAX_HEAD_BYTES, HttpError(431, "request head too large"), CLIENT_TIMEOUT
                )
                if head is None:
                    return
                bad = HttpError(400, "malformed request")
                start, fields = parse_head(head, bad)
                parts = start.split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    raise bad
                method, target, version = parts
                if get(fields, "transfer-encoding") is not None:
                    raise HttpError(411, "chunked request bodies are not supported here")
                body = client.read_exactly(content_length(fields, bad))
                forwarded = end_to_end(fields)
                prior = get(forwarded, "x-forwarded-for")
                forwarded = [(k, v) for k, v in forwarded if k.lower() != "x-forwarded-for"]
                forwarded.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
                via = get(forwarded, "via")
                forwarded = [(k, v) for k, v in forwarded if k.lower() != "via"]
                forwarded.append(("Via", f"{via}, {VIA}" if via else VIA))
                if body or get(fields, "content-length") is not None:
                    forwarded = [(k, v) for k, v in forwarded if k.lower() != "content-length"]
                    forwarded.append(("Content-Length", str(len(body))))
                request = f"{method} {target} HTTP/1.1\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in forwarded
                )
                status, rfields, rbody = exchange(
                    pool, pool.next_backend(), request.encode("latin-1") + b"\r\n" + body, method
                )
            except TimeoutError:
                with contextlib.suppress(OSError):
                    sock.sendall(error_response(408, "the request took too long"))
                return
            except HttpError as error:
                with contextlib.suppress(OSError):
                    sock.sendall(error_response(error.status, str(error)))
                return
            except OSError:
                return
            keep = (
                version == "HTTP/1.1" and "close" not in (get(fields, "connection") or "").lower()
            )
            out = [(k, v) for k, v in end_to_end(rfields) if k.lower() != "content-length"]
            if (
                method != "HEAD"
                and not (100 <= int(status.split()[1]) < 200)
                and int(status.split()[1]) not in (204, 304)
            ):
                out.append(("Content-Length", str(len(rbody))))
            elif method == "HEAD" and get(rfields, "content-length") is not None:
                out.append(("Content-Length", get(rfields, "content-length") or "0"))
            out.append(("Connection", "keep-alive" if keep else "close"))
            response = status + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in out) + "\r\n"
            try:
                sock.sendall(response.encode("latin-1") + rbody)
            except OSError:
                return
            if not keep:
                return


def parse_backend(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", action="append", required=True, type=parse_backend)
    args = parser.parse_args()
    pool = Pool(args.backend)
    listener = socket.create_server((HOST, args.port))
    print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    with listener:
        while True:
            sock, (peer, _) = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle_client, args=(sock, peer, pool), daemon=True).start()


if __name__ == "__main__":
    main()
