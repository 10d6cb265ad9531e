"""Lab solution: a reverse proxy with a keep-alive upstream pool, round robin, failover
with passive detection and active health checks (docs/proxies/lab-reverse-proxy.md). One
thread per client connection, one health-check thread per backend.

Run: python labs/reverse-proxy/solution.py --port 0 --backend 127.0.0.1:8001 --backend ...
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import socket
import threading
import time

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 8 * 1024  # request line + headers; more gets 431 (stage 6)
# A deadline for the whole head, not a limit per recv(): a client dripping one byte every
# 0.6 s would pass a per-recv timeout for as long as it likes (HAProxy's `timeout
# http-request` is likewise "the maximum allowed time to wait for a complete HTTP request").
CLIENT_TIMEOUT = 1.0  # seconds a client has to send a whole request head; then 408 (stage 6)
BACKEND_TIMEOUT = 1.0  # seconds to connect to a backend, and for its response head; then 504
CHECK_INTERVAL = 0.2  # seconds between two health checks of a backend (stage 5)
CHECK_TIMEOUT = 1.0  # a health check not answered in time failed (stage 5)
FALL = 2  # failed health checks in a row that mark a backend down (one may be bad luck)
VIA = "1.1 reverse-proxy-lab"  # RFC 9110 §7.6.3: a gateway MUST send Via (stage 6)
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
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class BackendFailed(Exception):
    """The backend failed, not the request: it could not be reached, or it closed a fresh
    connection without a response byte. `sent`: whether the request had been sent."""

    def __init__(self, error: HttpError, sent: bool) -> None:
        super().__init__(str(error))
        self.error, self.sent = error, sent


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
    """Idle keep-alive connections per backend, which backends are up, and round robin
    over the backends that are up."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.idle: dict[tuple[str, int], list[Conn]] = {b: [] for b in backends}
        self.up = dict.fromkeys(backends, True)
        self.turn = itertools.cycle(backends)
        self.lock = threading.Lock()

    def next_backend(self, tried: set[tuple[str, int]]) -> tuple[str, int] | None:
        """The next backend in turn that is up and not yet tried for this request."""
        with self.lock:
            for _ in range(len(self.up)):
                backend = next(self.turn)
                if self.up[backend] and backend not in tried:
                    return backend
        return None

    def mark(self, backend: tuple[str, int], up: bool) -> None:
        with self.lock:
            self.up[backend] = up
            idle = [] if up else self.idle[backend]
            self.idle[backend] = self.idle[backend] if up else []
        for conn in idle:  # a backend that is down: its idle connections are worthless
            conn.sock.close()

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


def exchange(pool: Pool, request: bytes, method: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """Send one request to a backend that is up, in turn; if that backend fails, mark it
    down (passive detection) and, for an idempotent request, try the next one."""
    tried: set[tuple[str, int]] = set()
    error = HttpError(503, "no backend is up")
    while (backend := pool.next_backend(tried)) is not None:
        tried.add(backend)
        try:
            return forward(pool, backend, request, method)
        except BackendFailed as failure:
            pool.mark(backend, up=False)
            error = failure.error
            # RFC 9110 §9.2.2: a request that was sent may have been acted on; only an
            # idempotent one may be sent again.
            if failure.sent and method not in IDEMPOTENT:
                break
    raise error


def forward(
    pool: Pool, backend: tuple[str, int], request: bytes, method: str
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Send one request to this backend, read its response: (status line, fields, body)."""
    for attempt in range(2):
        try:
            upstream, reused = pool.take(backend)
        except TimeoutError:  # RFC 9110 §15.6.5: no timely answer from upstream
            error = HttpError(504, "could not connect to the backend in time")
            raise BackendFailed(error, sent=False) from None
        except OSError as error:  # refused, unreachable: RFC 9110 §15.6.3, invalid upstream
            failed = HttpError(502, f"could not connect to the backend ({error.strerror})")
            raise BackendFailed(failed, sent=False) from None
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
            if reused:  # an idle connection may just have timed out: not a failed backend
                if attempt == 0 and method in IDEMPOTENT:
                    continue
                raise HttpError(502, "the backend closed the connection")
            failed = HttpError(502, "the backend closed a new connection without answering")
            raise BackendFailed(failed, sent=True)
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
                    pool, request.encode("latin-1") + b"\r\n" + body, method
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


def health_check(backend: tuple[str, int]) -> bool:
    """GET /health on a new connection: passed if a 2xx or 3xx answer comes in time."""
    try:
        with socket.create_connection(backend, timeout=CHECK_TIMEOUT) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: health-check\r\nConnection: close\r\n\r\n")
            head = Conn(sock).read_head(64 * 1024, HttpError(502, "too large"), CHECK_TIMEOUT)
    except (OSError, HttpError):  # refused, reset, timed out (TimeoutError is an OSError)
        return False
    return head is not None and re.match(rb"HTTP/1\.[01] [23]\d\d[ \r]", head) is not None


def check_forever(pool: Pool, backend: tuple[str, int]) -> None:
    """Active health checks: every CHECK_INTERVAL; one passed check marks the backend up,
    FALL failed ones in a row mark it down."""
    failed = 0
    while True:
        if health_check(backend):
            failed = 0
            pool.mark(backend, up=True)
        else:
            failed += 1
            if failed >= FALL:
                pool.mark(backend, up=False)
        time.sleep(CHECK_INTERVAL)


def parse_backend(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", action="append", required=True, type=parse_backend)
    args = parser.parse_args()
    pool = Pool(args.backend)
    for backend in args.backend:
        threading.Thread(target=check_forever, args=(pool, backend), daemon=True).start()
    listener = socket.create_server((HOST, args.port))
    print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    with listener:
        while True:
            sock, (peer, _) = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle_client, args=(sock, peer, pool), daemon=True).start()


if __name__ == "__main__":
    main()
