"""Request smuggling on loopback: a lax toy front (Content-Length only) and a toy back
(Transfer-Encoding first) desynchronise, so an attacker's prefix becomes the start of the
next user's request; a strict front (RFC 9112 §6.1: reject, then close) refuses it, and
so do real NGINX and HAProxy. Then hop-by-hop headers and X-Forwarded-For trusted only
from known proxies.

Run: python snippets/proxies/smuggling_desync.py
Needs: NGINX_BIN, HAPROXY_BIN
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

FRONT_ADDRESS = "127.0.0.2"  # the fronts connect to the back from here (Linux: all of
CLIENT_ADDRESS = "127.0.0.3"  # 127.0.0.0/8 is loopback), clients from here
TRUSTED_PROXIES = {FRONT_ADDRESS}
HEAD_LIMIT = 8 * 1024  # bytes of request line + headers: more is 431
BODY_LIMIT = 64 * 1024  # bytes of body: more is 413
TIMEOUT = 2.0  # seconds for a whole head, or a whole body, once it has started
IDLE = 5.0  # seconds a keep-alive connection may wait for its next request


# --8<-- [start:parse]
class HttpError(Exception):
    """A request we answer with an error status and then close the connection."""

    REASONS = {
        400: "Bad Request",
        408: "Request Timeout",
        413: "Content Too Large",
        431: "Request Header Fields Too Large",
        500: "Internal Server Error",
        501: "Not Implemented",
        502: "Bad Gateway",
        504: "Gateway Timeout",
    }

    def __init__(self, status: int, why: str) -> None:
        super().__init__(f"{status} {self.REASONS[status]}: {why}")
        self.status, self.why = status, why

    def response(self) -> bytes:
        body = f"{self.why}\n".encode()
        return (
            f"HTTP/1.1 {self.status} {self.REASONS[self.status]}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]  # in order, names as sent
    body: bytes = b""
    version: str = "HTTP/1.1"

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name]


TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than HTAB: a bare CR or LF inside a line would let another
# parser see a second line there, NUL can end a C string early (RFC 9110 §5.5: reject, or
# replace each with SP; RFC 9112 §2.2: a bare CR). The request target takes no HTAB either.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
HOST = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=\[\]:]*")  # uri-host [ ":" port ], loosely


def parse_head(head: bytes) -> Request:
    """Request line and header fields (RFC 9112 §3, §5). Anything else is a 400."""
    lines = head.decode("latin-1").split("\r\n")[:-2]  # the head ends with an empty line
    parts = lines[0].split(" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise HttpError(400, f"malformed request line {lines[0][:40]!r}")
    if CONTROL.search(parts[1]) or "\t" in parts[1]:
        raise HttpError(400, f"control character in the request target {parts[1][:40]!r}")
    if parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, f"unsupported version {parts[2][:20]!r}")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not TOKEN.fullmatch(name):  # also: whitespace before the colon
            raise HttpError(400, f"malformed header line {line[:40]!r}")
        if CONTROL.search(value):
            raise HttpError(400, f"control character in the value of {name[:40]}")
        headers.append((name, value.strip(" \t")))
    request = Request(parts[0], parts[1], headers, version=parts[2])
    hosts = request.values("host")  # RFC 9112 §3.2: 400 for none (HTTP/1.1), two, or invalid
    if len(hosts) > 1 or (parts[2] == "HTTP/1.1" and not hosts):
        raise HttpError(400, "a request needs exactly one Host (HTTP/1.0: at most one)")
    if hosts and not HOST.fullmatch(hosts[0]):
        raise HttpError(400, f"invalid Host {hosts[0][:40]!r}")
    return request


def keep_alive(request: Request) -> bool:
    """Whether the connection may carry another request after this one's response (RFC 9112
    §9.3, §9.6): not after "Connection: close", and not after an HTTP/1.0 request (these
    toys do not do HTTP/1.0 keep-alive; closing is always allowed)."""
    options = {o.strip().lower() for v in request.values("connection") for o in v.split(",")}
    return request.version == "HTTP/1.1" and "close" not in options


# --8<-- [end:parse]


# --8<-- [start:wire]
class Wire:
    """One connection's bytes with a buffer, so a head, a chunk-size line or a body can be
    read with a limit and a deadline for the whole thing (not per recv())."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.buffer = reader, writer, bytearray()

    async def _more(self, deadline: float) -> None:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError
        chunk = await asyncio.wait_for(self.reader.read(4096), left)
        if not chunk:
            raise EOFError
        self.buffer += chunk

    async def head(self, idle: float = IDLE) -> bytes | None:
        """The next head, up to its empty line; None if the peer closed or stayed idle
        before sending a byte (the normal end of a keep-alive connection)."""
        loop = asyncio.get_running_loop()
        if not self.buffer:
            try:
                await self._more(loop.time() + idle)
            except (TimeoutError, EOFError):
                return None
        deadline = loop.time() + TIMEOUT
        while (end := self.buffer.find(b"\r\n\r\n")) < 0 or end + 4 > HEAD_LIMIT:
            if len(self.buffer) > HEAD_LIMIT:
                raise HttpError(431, f"head over {HEAD_LIMIT} bytes")
            try:
                await self._more(deadline)
            except TimeoutError:
                raise HttpError(408, f"head not complete within {TIMEOUT} s") from None
            except EOFError:
                raise HttpError(400, "connection closed inside a head") from None
        head = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        return head

    async def exactly(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            try:
                await self._more(deadline)
            except TimeoutError:
                raise HttpError(408, f"body not complete within {TIMEOUT} s") from None
            except EOFError:
                raise HttpError(400, "connection closed inside a body") from None
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def line(self, deadline: float, limit: int = 256) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > limit:
                raise HttpError(400, f"chunk line over {limit} bytes")
            try:
                await self._more(deadline)
            except TimeoutError:
                raise HttpError(408, f"body not complete within {TIMEOUT} s") from None
            except EOFError:
                raise HttpError(400, "connection closed inside a body") from None
        data = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return data


def content_length(request: Request) -> int:
    """The one valid Content-Length, 0 if none; several different values, or anything but
    digits, is a 400 (RFC 9112 §6.3 item 5); too large is a 413."""
    values = {v for raw in request.values("content-length") for v in raw.split(",")}
    values = {v.strip() for v in values}
    # Not str.isdigit(): that is also true of "²" and other Unicode digits int() refuses.
    if len(values) > 1 or any(not re.fullmatch(r"[0-9]{1,18}", v) for v in values):
        raise HttpError(400, f"invalid Content-Length {sorted(values)}")
    length = int(values.pop()) if values else 0
    if length > BODY_LIMIT:
        raise HttpError(413, f"body of {length} bytes over {BODY_LIMIT}")
    return length


async def read_chunked(wire: Wire, deadline: float) -> bytes:
    """A chunked body (RFC 9112 §7.1): size line, data, CRLF ... a 0 chunk, trailers."""
    body = bytearray()
    while True:
        size_line = (await wire.line(deadline)).split(b";")[0]  # extensions are ignored
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_line):
            raise HttpError(400, f"malformed chunk size {size_line[:20]!r}")
        size = int(size_line, 16)
        if size == 0:
            break
        if len(body) + size > BODY_LIMIT:
            raise HttpError(413, f"chunked body over {BODY_LIMIT} bytes")
        data = await wire.exactly(size + 2, deadline)
        if data[-2:] != b"\r\n":
            raise HttpError(400, "chunk data not followed by CRLF")
        body += data[:-2]
    for _ in range(32):  # trailer fields, up to an empty line
        if not await wire.line(deadline, limit=1024):
            return bytes(body)
    raise HttpError(400, "too many trailer fields")


# --8<-- [end:wire]


# --8<-- [start:framing]
async def lax_body(wire: Wire, request: Request) -> bytes:
    """THE DELIBERATE BUG of the lax front: the body is Content-Length bytes, and
    Transfer-Encoding is not even looked at (nor removed before forwarding)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    return await wire.exactly(content_length(request), deadline)


def chunked(request: Request) -> bool:
    """Whether the body is chunked. Chunked not last is a 400 (RFC 9112 §6.3 item 4: the
    length "cannot be determined reliably"); another coding before it, 501 (§6.1)."""
    codings = [c.strip().lower() for v in request.values("transfer-encoding") for c in v.split(",")]
    if codings and request.version == "HTTP/1.0":  # §6.1: "as if the framing is faulty"
        raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if codings and codings[-1] != "chunked":
        raise HttpError(400, "chunked is not the final transfer coding")
    if codings and codings != ["chunked"]:
        raise HttpError(501, f"transfer coding {codings[:-1]} not implemented")
    return bool(codings)


async def te_first_body(wire: Wire, request: Request) -> bytes:
    """The toy back: Transfer-Encoding overrides Content-Length, as RFC 9112 §6.3 item 3
    says. (What it skips: §6.1's MUST to close the connection after such a request.)"""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    if chunked(request):
        return await read_chunked(wire, deadline)
    return await wire.exactly(content_length(request), deadline)


async def strict_body(wire: Wire, request: Request) -> bytes:
    """The strict front takes the first branch RFC 9112 §6.1 allows for a request with
    both Transfer-Encoding and Content-Length ("MAY reject ... or process such a request
    in accordance with the Transfer-Encoding alone"; §6.3: it "ought to be handled as an
    error"): 400, then close, which §6.1 requires either way."""
    if request.values("transfer-encoding") and request.values("content-length"):
        raise HttpError(400, "both Transfer-Encoding and Content-Length")
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    if chunked(request):
        return await read_chunked(wire, deadline)
    return await wire.exactly(content_length(request), deadline)


# --8<-- [end:framing]


# --8<-- [start:hop]
# RFC 9110 §7.6.1: the Connection field and every field it names apply to one hop only;
# these are removed before forwarding whether they are named or not.
HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "upgrade"}


def end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers` without Connection, the fields it names, and the other hop-by-hop ones."""
    named = {
        o.strip().lower() for n, v in headers if n.lower() == "connection" for o in v.split(",")
    }
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP | named]


def forwarded_headers(request: Request, peer: str, strict: bool) -> list[tuple[str, str]]:
    """The header fields a front sends on. Both append the client's address to
    X-Forwarded-For. The strict front first removes the hop-by-hop fields (parsing
    Connection BEFORE it adds its own fields, so a client cannot name one of those; an
    X-Forwarded-For the client named goes too), and frames the body itself; the lax front
    forwards everything as it came."""
    headers = list(request.headers)
    if strict:
        framed = request.values("content-length") or request.values("transfer-encoding")
        headers = [(n, v) for n, v in end_to_end(headers) if n.lower() != "content-length"]
        if framed:  # the body as we read it, framed one way only
            headers.append(("Content-Length", str(len(request.body))))
    chain = ", ".join([*(v for n, v in headers if n.lower() == "x-forwarded-for"), peer])
    headers = [(n, v) for n, v in headers if n.lower() != "x-forwarded-for"]
    return [*headers, ("X-Forwarded-For", chain)]


# --8<-- [end:hop]


# --8<-- [start:front]
class Front:
    """A toy reverse proxy: every client's requests go, one at a time, over ONE pooled
    keep-alive connection to the back, as a real proxy's upstream pool would reuse it."""

    def __init__(self, back_port: int, strict: bool) -> None:
        self.back_port, self.strict = back_port, strict
        self.lock = asyncio.Lock()
        self.upstream: Wire | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client, peer = Wire(reader, writer), writer.get_extra_info("peername")[0]
        try:
            while (head := await client.head()) is not None:
                request = parse_head(head)
                read_body = strict_body if self.strict else lax_body
                request.body = await read_body(client, request)
                headers = forwarded_headers(request, peer, self.strict)
                if not request.values("host"):  # HTTP/1.0 may omit it; HTTP/1.1 must send it
                    headers.insert(0, ("Host", f"127.0.0.1:{self.back_port}"))
                lines = [f"{request.method} {request.target} HTTP/1.1"]
                lines += [f"{n}: {v}" for n, v in headers]
                raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body
                status, headers, body = await self.exchange(raw)
                keep = keep_alive(request)
                # RFC 9110 §7.6.1 holds for responses too: the back's hop-by-hop fields stop here.
                headers = end_to_end(headers) + ([] if keep else [("Connection", "close")])
                lines = [status, *(f"{n}: {v}" for n, v in headers)]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                await writer.drain()
                if not keep:
                    break
        except HttpError as error:
            writer.write(error.response())  # then close: the framing can no longer be trusted
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass  # the client went away, or the demo is over and the loop is stopping
        except Exception as error:  # a bug of ours: answer, close, and keep serving others
            writer.write(HttpError(500, type(error).__name__).response())
        finally:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                writer.close()
                await writer.wait_closed()

    async def exchange(self, raw: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        """Send on the pooled connection, read one response (Content-Length framed: other
        framing is a 502); (status line, header fields, body). A back that says
        "Connection: close" gets no further request on that connection (RFC 9112 §9.6)."""
        async with self.lock:
            if self.upstream is None or self.upstream.reader.at_eof():
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.back_port, local_addr=(FRONT_ADDRESS, 0)
                )
                self.upstream = Wire(reader, writer)
            up = self.upstream
            try:
                up.writer.write(raw)
                await up.writer.drain()
                deadline = asyncio.get_running_loop().time() + 2 * TIMEOUT
                if not up.buffer:
                    await up._more(deadline)  # the first byte of the answer
                head = await up.head()
                if not head or not re.match(rb"HTTP/1\.[01] \d{3} ", head):
                    raise HttpError(502, "the back's answer is not an HTTP/1.1 response")
                status, *lines = head.decode("latin-1").split("\r\n")[:-2]
                headers = [
                    (n, v.strip(" \t")) for n, _, v in (line.partition(":") for line in lines)
                ]
                lengths = [v for n, v in headers if n.lower() == "content-length"]
                if len(lengths) != 1 or not re.fullmatch(r"[0-9]{1,18}", lengths[0]):
                    raise HttpError(
                        502, f"response framing other than one Content-Length {lengths}"
                    )
                if any(n.lower() == "transfer-encoding" for n, _ in headers):
                    raise HttpError(502, "response framing other than Content-Length")
                body = await up.exactly(int(lengths[0]), deadline)
                options = {
                    o.strip().lower()
                    for n, v in headers
                    if n.lower() == "connection"
                    for o in v.split(",")
                }
                if "close" in options or status.startswith("HTTP/1.0"):
                    self.upstream = None  # the next request opens a new connection
                    up.writer.close()
                return status, headers, body
            except (HttpError, TimeoutError, EOFError, ConnectionError) as error:
                self.upstream = None  # never reuse a connection in an unknown state
                late = isinstance(error, TimeoutError) or getattr(error, "status", 0) == 408
                status = 504 if late else 502
                raise HttpError(status, f"from the back: {error!r}"[:120]) from None


# --8<-- [end:front]


# --8<-- [start:back]
@dataclass
class Back:
    """The toy back end (the application): keep-alive, Transfer-Encoding before
    Content-Length, and a record of every request it parsed, on which connection."""

    close_after_both: bool = False  # True: the RFC 9112 §6.1 MUST this toy skips
    seen: list[tuple[int, Request]] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        wire, number = Wire(reader, writer), self.connections
        peer = writer.get_extra_info("peername")[0]
        try:
            while (head := await wire.head()) is not None:
                request = parse_head(head)
                request.body = await te_first_body(wire, request)
                self.seen.append((number, request))
                body = self.answer(request, peer).encode()
                both = request.values("transfer-encoding") and request.values("content-length")
                keep = keep_alive(request) and not (both and self.close_after_both)
                close = b"" if keep else b"Connection: close\r\n"  # RFC 9112 §9.6: SHOULD say so
                writer.write(
                    b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (close, len(body), body)
                )
                await writer.drain()
                if not keep:
                    break
        except HttpError as error:
            writer.write(error.response())
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        except Exception as error:  # a bug of ours: answer, close, and keep serving others
            writer.write(HttpError(500, type(error).__name__).response())
        finally:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                writer.close()
                await writer.wait_closed()

    def answer(self, request: Request, peer: str) -> str:
        cookie = ", ".join(request.values("cookie")) or "no cookie"
        if request.target == "/whoami":
            chain = request.values("x-forwarded-for")
            return f"leftmost: {leftmost(chain, peer)}; rightmost untrusted: {client(chain, peer)}"
        if request.target == "/admin":
            return f"ADMIN PANEL, for {cookie}"
        return f"page {request.target}, for {cookie}"


# --8<-- [end:back]


# --8<-- [start:xff]
def leftmost(chain: list[str], peer: str) -> str:
    """The naive app: the first address in X-Forwarded-For. The client wrote that one."""
    hops = [h.strip() for v in chain for h in v.split(",") if h.strip()]
    return hops[0] if hops else peer


def client(chain: list[str], peer: str, trusted: set[str] = TRUSTED_PROXIES) -> str:
    """From the right: the TCP peer, then each address our proxies appended. The first
    hop that is not one of our proxies is the client; anything left of it is hearsay."""
    hops = [h.strip() for v in chain for h in v.split(",") if h.strip()] + [peer]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0]


# --8<-- [end:xff]


# --8<-- [start:attack]
def smuggle(prefix: bytes) -> bytes:
    """A POST whose Content-Length covers a chunked body's terminator AND a prefix: a
    Content-Length reader forwards it all as one body; a Transfer-Encoding reader stops
    at 0 CRLF CRLF and leaves the prefix waiting for the next bytes on the connection."""
    body = b"0\r\n\r\n" + prefix
    return (
        b"POST /search HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%s" % (len(body), body)
    )


ATTACK = smuggle(b"GET /admin HTTP/1.1\r\nX-Ignore: x")  # no CRLF: the victim completes it
VICTIM = b"GET /home HTTP/1.1\r\nHost: shop\r\nCookie: session=victim\r\n\r\n"


def exchange(port: int, data: bytes, source: str = CLIENT_ADDRESS, timeout: float = 6.0) -> bytes:
    """Send raw bytes from `source`, read until the server has sent one whole response or
    closed. Returns what came back (b"" if it closed without answering)."""
    with socket.create_connection(("127.0.0.1", port), timeout, (source, 0)) as sock:
        sock.sendall(data)
        reply = b""
        while True:
            head, _, body = reply.partition(b"\r\n\r\n")
            length = re.search(rb"\r\nContent-Length: *(\d+)", head, re.I)
            if _ and length and len(body) >= int(length[1]):
                return reply
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return reply
            if not chunk:
                return reply
            reply += chunk


def summary(reply: bytes) -> str:
    """'<status> | <body, or an HTML page's title>', and whether it announced a close."""
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head:
        return "(closed, no answer)"
    status = head.split(b"\r\n")[0].decode()[9:]
    if re.search(rb"\r\nConnection: *close", head, re.I):
        status += " (Connection: close)"
    title = re.search(rb"<title>(.*?)</title>", body)
    text = (title[1] if title else body).decode().strip()
    return f"{status} | {text}" if text else status


# --8<-- [end:attack]


# --8<-- [start:servers]
class Loop:
    """An asyncio loop in a thread that serves fronts and backs on ephemeral ports, so the
    demo and the tests can talk to them with plain blocking sockets."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.Server] = []

    def __enter__(self) -> Loop:
        self.thread.start()
        return self

    def serve(self, handler, host: str = "127.0.0.1") -> int:  # noqa: ANN001
        async def start() -> asyncio.Server:
            return await asyncio.start_server(handler, host, 0)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def through_toys(strict: bool, close_after_both: bool = False) -> dict:
    """The attacker's request, then the victim's, through a toy front to the toy back."""
    with Loop() as loop:
        back = Back(close_after_both=close_after_both)
        back_port = loop.serve(back.handle)
        front_port = loop.serve(Front(back_port, strict).handle)
        attacker = exchange(front_port, ATTACK)
        victim = exchange(front_port, VICTIM)
        return {"attacker": attacker, "victim": victim, "seen": list(back.seen)}


# --8<-- [end:servers]


# --8<-- [start:real]
NGINX_CONF = """
daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi; scgi_temp_path scgi;
    upstream back { server 127.0.0.1:${BACK}; keepalive 4; }  # a pool, as in production
    server {
        listen 127.0.0.1:${PORT};
        location / {
            proxy_pass http://back;
            proxy_http_version 1.1;          # keep-alive to the back...
            proxy_set_header Connection "";  # ...so both clients share its connection
        }
    }
}
"""

HAPROXY_CFG = """
global
    stats socket {dir}/admin.sock mode 600 level admin
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    http-reuse always  # share idle back connections between clients (default: safe)
frontend entry
    bind 127.0.0.1:{port}
    default_backend app
backend app
    server back 127.0.0.1:{back}
"""


def through_real(proxy: str, first: bytes = ATTACK) -> dict:
    """The same two requests through real NGINX or HAProxy to the same toy back."""
    with Loop() as loop:
        back = Back()
        back_port = loop.serve(back.handle)
        start = running_nginx if proxy == "nginx" else running_haproxy
        with start(back_port) as port:
            attacker = exchange(port, first)
            victim = exchange(port, VICTIM)
        return {"attacker": attacker, "victim": victim, "seen": list(back.seen)}


# --8<-- [end:real]


# --8<-- [start:launch]
# running_nginx() and running_haproxy(): the functions of caching_proxy.py and
# l4_l7_haproxy.py, copied (snippets do not import each other) and given the config as text.
def find(name: str, variable: str, package: str) -> str:
    found = os.environ.get(variable) or shutil.which(name)
    found = found or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/opt/homebrew/bin")
    if not found:
        sys.exit(f"{name} is not installed: sudo apt-get install {package}  (macOS: brew install)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_nginx(back_port: int) -> Iterator[int]:
    nginx = find("nginx", "NGINX_BIN", "nginx-light")
    with tempfile.TemporaryDirectory() as prefix:
        os.chmod(prefix, 0o755)
        for _attempt in range(5):
            port = free_port()
            text = NGINX_CONF.replace("${PORT}", str(port)).replace("${BACK}", str(back_port))
            Path(prefix, "nginx.conf").write_text(text)
            proc = subprocess.Popen(
                [nginx, "-p", prefix, "-c", "nginx.conf", "-e", "stderr"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            lines: queue.Queue[str] = queue.Queue()

            def drain(stream=proc.stderr, lines=lines) -> None:
                for line in stream:
                    lines.put(line)
                lines.put("")

            threading.Thread(target=drain, daemon=True).start()
            try:
                deadline = time.monotonic() + 5
                while "start worker process" not in (
                    line := lines.get(timeout=max(0.01, deadline - time.monotonic()))
                ):
                    if not line or "Address already in use" in line:
                        break
                else:
                    yield port
                    return
                if not line:
                    raise RuntimeError("nginx exited")
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        raise RuntimeError("no free port after 5 attempts")


def answers(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(str(sock_path))
            sock.sendall(b"show info\n")
            return b"Name: HAProxy" in sock.recv(65536)
    except OSError:
        return False


@contextmanager
def running_haproxy(back_port: int) -> Iterator[int]:
    haproxy = find("haproxy", "HAPROXY_BIN", "haproxy")
    with tempfile.TemporaryDirectory() as tmp:
        for _attempt in range(5):
            port = free_port()
            path = Path(tmp, "haproxy.cfg")
            path.write_text(HAPROXY_CFG.format(dir=tmp, port=port, back=back_port))
            proc = subprocess.Popen(
                [haproxy, "-db", "-f", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                deadline = time.monotonic() + 5
                while not answers(Path(tmp, "admin.sock")):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.005)  # polls a readiness signal; not a wait for the server
                else:
                    yield port
                    return
            finally:
                proc.terminate()
                try:
                    _, errors = proc.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, errors = proc.communicate()
            if "cannot bind" not in errors:
                raise RuntimeError("haproxy did not start:\n" + errors)
        raise RuntimeError("no free port after 5 attempts")


# --8<-- [end:launch]


# --8<-- [start:main]
def show(title: str, run: dict) -> None:
    print(f"{title}\n  attacker got: {summary(run['attacker'])}")
    print(f"  victim got:   {summary(run['victim'])}")
    for connection, request in run["seen"]:
        framing = [f"{n}: {v}" for n, v in request.headers if n.lower() in FRAMING]
        cookie = ", ".join(request.values("cookie")) or "no cookie"
        print(
            f"  back parsed, connection {connection}: {request.method} {request.target}, {cookie}"
        )
        print(f"  {'':28}{'; '.join(framing) or 'no body'}")


FRAMING = {"content-length", "transfer-encoding", "x-ignore"}  # what the output shows


def headers_seen(strict: bool | None, request: bytes) -> tuple[Request, str]:
    """What the back parsed from `request` sent through a front (strict or lax), or
    straight to the back (None), and the back's answer."""
    with Loop() as loop:
        back = Back()
        port = loop.serve(back.handle)
        if strict is not None:
            port = loop.serve(Front(port, strict).handle)
        reply = exchange(port, request)
    return back.seen[0][1], summary(reply).split(" | ")[1]


HOP = (
    b"GET /home HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Hop-Secret\r\n"
    b"X-Hop-Secret: for-the-proxy-only\r\nKeep-Alive: timeout=5\r\n\r\n"
)
LIAR = b"GET /whoami HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"


def headers_demo() -> None:
    print("\nA client sends Connection: keep-alive, X-Hop-Secret (and those two fields):")
    for strict in (False, True):
        seen, _ = headers_seen(strict, HOP)
        names = ", ".join(n for n, _ in seen.headers if n.lower() != "host")
        print(f"  {'strict' if strict else 'lax':6} front -> back got {names}")
    print(f"\nA client at {CLIENT_ADDRESS} sends X-Forwarded-For: 203.0.113.7 (a lie):")
    for strict, route in ((True, "through the strict front"), (None, "straight to the back")):
        seen, answer = headers_seen(strict, LIAR)
        print(f"  {route}: X-Forwarded-For: {seen.values('x-forwarded-for')[0]}")
        print(f"    the app: {answer}")


def main() -> None:
    show(
        "LAX front (Content-Length only) -> toy back (Transfer-Encoding first):",
        through_toys(False),
    )
    show("\nSTRICT front (RFC 9112 §6.1: reject, close) -> toy back:", through_toys(True))
    show("\nNGINX 1.22 -> toy back:", through_real("nginx"))
    show("\nHAProxy 2.6 (http-reuse always) -> toy back:", through_real("haproxy"))
    headers_demo()


# --8<-- [end:main]


if __name__ == "__main__":
    main()
