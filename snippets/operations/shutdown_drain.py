"""SIGTERM under load: a server process killed by Python's default SIGTERM action (or by
`sys.exit` in a handler) fails every request in flight; one that stops accepting, drains
and then exits fails none. Also: what closing the listener does to a connection still in
Linux's accept queue, and /ready vs /live while a server drains.

Run: python snippets/operations/shutdown_drain.py
(The same file is the server: `python snippets/operations/shutdown_drain.py serve graceful`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http.client
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

# --8<-- [start:server]
MAX_HEAD = 8 * 1024  # request line + headers; more is 431
HEAD_TIMEOUT = 1.0  # a request's head must arrive within 1 s of its first byte (else 408)
IDLE_TIMEOUT = 5.0  # a keep-alive connection with no request for 5 s is closed
LINGER = 0.5  # draining: an idle keep-alive connection may still send one request
MAX_WORK_MS = 10_000
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.6.2
# RFC 9112 3.2.2 absolute-form (a server MUST accept it): scheme://authority then the path
ABSOLUTE = re.compile(r"https?://[^/?#\s]*(?P<rest>[/?].*)?", re.IGNORECASE)
# RFC 9112 3.2: Host = uri-host [ ":" port ] (RFC 3986 3.2.2: IP-literal, IPv4 or reg-name)
HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Content Too Large",
           431: "Request Header Fields Too Large", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}  # fmt: skip


class HttpError(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    close: bool  # the client asked to close (Connection: close, or HTTP/1.0)


def parse(head: bytes) -> Request:
    """Request line and headers (no body: this server accepts none). Raises HttpError."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "not ASCII") from None
    line, *fields = text.split("\r\n")
    parts = line.split(" ")
    if len(parts) == 3 and (absolute := ABSOLUTE.fullmatch(parts[1])):
        rest = absolute["rest"] or ""  # we route on the path; the authority is ours
        parts[1] = rest if rest.startswith("/") else "/" + rest
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1].startswith("/"):
        raise HttpError(400, "bad request line")
    method, target, version = parts
    if not re.fullmatch(r"HTTP/\d\.\d", version):
        raise HttpError(400, "bad version")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(505, version)
    headers: dict[str, str] = {}
    for field_line in fields:
        name, colon, value = field_line.partition(":")
        if not colon or not TOKEN.fullmatch(name) or re.search(r"[\x00-\x08\x0a-\x1f]", value):
            raise HttpError(400, "bad header line")  # also: space before the colon (RFC 9112 5.1)
        name, value = name.lower(), value.strip(" \t")
        if name in headers and name in ("host", "content-length"):
            raise HttpError(400, f"{name} twice")
        # other repeated fields are one comma-separated list (RFC 9110 5.3)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if version == "HTTP/1.1" and "host" not in headers:
        raise HttpError(400, "no Host")  # RFC 9112 3.2: a MUST
    if "host" in headers and not HOST.fullmatch(headers["host"]):
        raise HttpError(400, "bad Host")  # RFC 9112 3.2: also a MUST
    if "transfer-encoding" in headers:  # RFC 9112 6.3: chunked must be the final coding
        codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",")]
        if codings[-1] != "chunked":
            raise HttpError(400, "chunked is not the final transfer coding")
        raise HttpError(413, "this server takes no request body")
    if not re.fullmatch(r"[0-9]+", headers.get("content-length", "0")):
        raise HttpError(400, "bad Content-Length")  # RFC 9112 6.3: a MUST
    if int(headers.get("content-length", "0")):
        raise HttpError(413, "this server takes no request body")
    if method not in ("GET", "HEAD"):
        raise HttpError(405, method)
    url = urlsplit(target)
    options = {o.strip().lower() for o in headers.get("connection", "").split(",")}
    close = "close" in options or version == "HTTP/1.0"  # RFC 9112 9.3, 9.6
    return Request(method, url.path, parse_qs(url.query), close)


class App:
    """The HTTP server's state: is it ready, is it draining, which connections are busy."""

    def __init__(
        self, delay: float, deadline: float, announce: bool = True, head_timeout: float = 1.0
    ) -> None:
        self.delay = delay  # SIGTERM -> stop accepting: time for the LB to see /ready fail
        self.deadline = deadline  # the longest the drain may take
        self.announce = announce  # False: /ready stays 200 after SIGTERM (a control)
        self.head_timeout = head_timeout  # HEAD_TIMEOUT unless a test sets it
        self.sigterm = asyncio.Event()
        self.ready = True  # what GET /ready says
        self.draining = False  # every response now says Connection: close
        self.linger_over = asyncio.Event()  # idle connections are closed now
        self.busy: dict[asyncio.Task, bool] = {}  # connection task -> is a request in it?
        self.ready_503 = 0  # /ready checks answered 503
        self.drained = 0  # connections that ended during the drain, not cut by the deadline

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task
        self.busy[task] = False
        buffer = bytearray()
        try:
            while True:
                try:
                    head = await self.read_head(reader, buffer, task)
                    if head is None:  # the client closed, idle timeout, or the drain
                        return
                    request = parse(head)
                except HttpError as error:
                    await self.send(writer, error.status, f"{error}\n", close=True)
                    break
                status, body = await self.route(request)
                close = request.close or self.draining
                await self.send(writer, status, body, close, head_only=request.method == "HEAD")
                self.busy[task] = False
                if close:
                    break
            await self.lingering_close(reader, writer)
        except (ConnectionError, TimeoutError):
            pass  # the client went away; nothing to answer
        finally:
            del self.busy[task]
            self.drained += self.draining and not task.cancelling()
            writer.close()

    async def read_head(
        self, reader: asyncio.StreamReader, buffer: bytearray, task: asyncio.Task
    ) -> bytes | None:
        deadline = None
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise HttpError(431, "head too large")
            if not buffer:  # idle, between requests
                chunk = await self.next_bytes(reader)
                if not chunk:
                    return None
                self.busy[task] = True  # a request has started: the drain waits for it
                deadline = asyncio.get_running_loop().time() + self.head_timeout
            else:
                if deadline is None:  # a pipelined request's first bytes came with the last
                    deadline = asyncio.get_running_loop().time() + self.head_timeout
                try:
                    async with asyncio.timeout_at(deadline):  # the whole head, not each read
                        chunk = await reader.read(65536)
                except TimeoutError:
                    raise HttpError(408, "head not complete in time") from None
                if not chunk:
                    return None
            buffer += chunk
        if end > MAX_HEAD:
            raise HttpError(431, "head too large")
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        self.busy[task] = True
        return head

    async def next_bytes(self, reader: asyncio.StreamReader) -> bytes:
        """The first bytes of the next request; b"" when the client closes, after
        IDLE_TIMEOUT, or once a drain's linger is over."""
        read = asyncio.ensure_future(reader.read(65536))
        linger = asyncio.ensure_future(self.linger_over.wait())
        try:
            done, _ = await asyncio.wait(
                {read, linger}, timeout=IDLE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            return read.result() if read in done else b""
        finally:
            read.cancel()
            linger.cancel()

    async def route(self, request: Request) -> tuple[int, str]:
        if request.path == "/live":  # the process can still serve: the event loop runs
            return 200, "live\n"
        if request.path == "/ready":  # should a load balancer send requests here?
            if not self.ready:
                self.ready_503 += 1
            return (200, "ready\n") if self.ready else (503, "draining\n")
        if request.path == "/work":
            ms = request.query.get("ms", ["50"])[-1]
            if not ms.isdigit() or not ms.isascii() or int(ms) > MAX_WORK_MS:
                return 400, "ms: 0 to 10000\n"
            say("start")
            await asyncio.sleep(int(ms) / 1000)  # the work: waits, like a call to a database
            say("end")
            return 200, "done\n"
        return 404, "not found\n"

    async def send(
        self, writer: asyncio.StreamWriter, status: int, body: str, close: bool,
        head_only: bool = False,
    ) -> None:  # fmt: skip
        data = body.encode()
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
            + ("Allow: GET, HEAD\r\n" if status == 405 else "")
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        writer.write(head.encode() + (b"" if head_only else data))
        await writer.drain()

    async def lingering_close(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """RFC 9112 9.6: half-close, then read until the client closes (at most 1 s), so
        that unread bytes cannot make the kernel reset the last response away."""
        writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while await reader.read(65536):
                    pass

    # --8<-- [start:shutdown]
    async def shutdown(self, server: asyncio.Server) -> int:
        """After SIGTERM: not ready; wait `delay`; stop accepting; drain; the exit status."""
        await self.sigterm.wait()
        self.ready = not self.announce  # GET /ready now answers 503; GET /live still 200
        say(f"SIGTERM: /ready is {503 if self.announce else 200}")
        await asyncio.sleep(self.delay)  # still serving while the LB notices
        server.close()  # stop accepting: the listening socket is closed
        self.draining = True  # every response from now on says Connection: close
        in_flight = sum(self.busy.values())
        say(f"stopped accepting after {self.ready_503} /ready checks answered 503;"
            f" {in_flight} requests in flight")  # fmt: skip
        loop = asyncio.get_running_loop()
        loop.call_later(LINGER, self.linger_over.set)  # then idle connections close
        end = loop.time() + self.deadline
        await asyncio.sleep(0)  # a connection accepted just before the close starts its task
        while self.busy and loop.time() < end:  # wait for every connection, up to the end
            await asyncio.wait(set(self.busy), timeout=end - loop.time())
        left = list(self.busy)
        for task in left:  # the deadline: a slow client cannot hold the exit forever
            task.cancel()
        say(f"drained {self.drained} connections, abandoned {len(left)}")
        return 1 if left else 0

    # --8<-- [end:shutdown]


def say(line: str) -> None:
    """A line for the parent process (it counts requests in flight from these)."""
    print(line, flush=True)


async def serve(
    mode: str, port: int, delay: float, deadline: float, head_timeout: float = HEAD_TIMEOUT
) -> int:
    # "unannounced": the graceful sequence, but /ready keeps saying 200 (the control)
    app = App(delay, deadline, announce=mode != "unannounced", head_timeout=head_timeout)
    server = await asyncio.start_server(app.handle, "127.0.0.1", port, backlog=128)
    if mode in ("graceful", "unannounced"):  # loop.add_signal_handler: Unix only
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, app.sigterm.set)
    elif mode == "exit":  # a common handler: exit at once (SystemExit in the main thread)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    else:  # "kill": Python installs no SIGTERM handler: the default action ends the process
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # (set, in case the parent ignored it)
    say(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}")
    return await app.shutdown(server)


# --8<-- [end:server]


# --8<-- [start:parent]
@dataclass
class Instance:
    """A server process, started at once; it prints `listening on 127.0.0.1:<port>` when
    it is ready (`.ready()` waits for that)."""

    mode: str  # "kill" (default SIGTERM action), "exit" (sys.exit in a handler), "graceful"
    delay: float = 0.0
    deadline: float = 5.0
    port: int = 0
    head_timeout: float = HEAD_TIMEOUT
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", self.mode, str(self.port), str(self.delay),
             str(self.deadline), str(self.head_timeout)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.errors: list[str] = []  # its stderr (sys.exit in a handler makes tracebacks)
        self.readers = [
            threading.Thread(target=self.read, daemon=True),
            threading.Thread(target=lambda: self.errors.extend(self.proc.stderr), daemon=True),
        ]
        self.started = self.ended = 0  # requests to /work, as the server reports them
        for reader in self.readers:
            reader.start()

    def ready(self) -> Instance:
        """Wait for its readiness line; learn its port."""
        try:
            self.wait(lambda: self.lines and self.lines[0].startswith("listening"))
        except TimeoutError:
            self.stop()
            raise
        self.port = int(self.lines[0].rsplit(":", 1)[1])
        return self

    def read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            with self.changed:
                line = line.strip()
                if line in ("start", "end"):
                    self.started += line == "start"
                    self.ended += line == "end"
                else:
                    self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("EOF")
            self.changed.notify_all()

    def wait(self, test, seconds: float = 20.0) -> None:
        with self.changed:
            if not self.changed.wait_for(test, seconds):
                raise TimeoutError(f"{self.mode} server: {self.lines[-3:]}")

    def in_flight(self) -> int:
        return self.started - self.ended

    def saw(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines)

    def sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def exit_status(self, seconds: float = 20.0) -> int:
        status = self.proc.wait(seconds)
        self.wait(lambda: self.lines[-1] == "EOF")
        return status

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for reader in self.readers:  # they end at EOF, when the process has gone
            reader.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()  # type: ignore[union-attr]


# --8<-- [end:parent]


# --8<-- [start:load]
class Load:
    """Closed-loop clients: each sends its next GET /work as soon as the last is answered,
    on its own keep-alive connection. A client stops when it is told `Connection: close`
    (behind a load balancer it would reconnect elsewhere) or when a request fails."""

    def __init__(self, port: int, clients: int = 8, ms: int = 50) -> None:
        self.port, self.ms = port, ms
        self.answered = 0
        self.told_to_close = 0
        self.failed: Counter[str] = Counter()  # exception name -> count
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            while True:
                try:
                    conn.request("GET", f"/work?ms={self.ms}")
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as error:
                    with self.lock:
                        self.failed[type(error).__name__] += 1
                    return
                with self.lock:
                    self.answered += 1
                    if response.will_close:  # "Connection: close": go away
                        self.told_to_close += 1
                        return
        finally:
            conn.close()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)


@dataclass
class Outcome:
    mode: str
    in_flight: int  # requests the server had started when the signal was sent
    status: int  # the exit status (negative: killed by that signal)
    seconds: float  # from SIGTERM to exit
    answered: int
    told_to_close: int
    failed: Counter[str]


def sigterm_under_load(mode: str, clients: int = 8, deadline: float = 5.0) -> Outcome:
    server = Instance(mode, deadline=deadline).ready()
    try:
        load = Load(server.port, clients)
        server.wait(lambda: server.ended >= 2 * clients)  # a steady load
        server.wait(lambda: server.in_flight() >= clients)  # all of them in flight
        in_flight = server.in_flight()
        start = time.monotonic()
        server.sigterm()
        status = server.exit_status()
        seconds = time.monotonic() - start
        load.join()
    finally:
        server.stop()
    return Outcome(mode, in_flight, status, seconds, load.answered, load.told_to_close,
                   load.failed)  # fmt: skip


# --8<-- [end:load]


# --8<-- [start:backlog]
def queued_connection_when_the_listener_closes() -> str:
    """A connection the kernel has accepted (handshake done, request sent) but the
    application has not accept()ed yet, when the listening socket is closed (Linux)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=8)
    client = socket.create_connection(listener.getsockname(), timeout=2)
    with client:
        client.sendall(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
        listener.close()  # no accept() was ever called
        try:
            return f"recv() returned {client.recv(100)!r}"
        except OSError as error:
            return f"recv() raised {type(error).__name__}"


# --8<-- [end:backlog]


# --8<-- [start:probes]
def probe(port: int, path: str) -> str:
    """One GET on a new connection: its status, or why there was none."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path)
        return str(conn.getresponse().status)
    except OSError as error:
        return type(error).__name__
    finally:
        conn.close()


def probes_while_draining(delay: float = 0.5) -> list[tuple[str, dict[str, str]]]:
    """/ready, /live and /work before SIGTERM, during the delay, after it."""
    server = Instance("graceful", delay=delay).ready()
    paths = ("/ready", "/live", "/work?ms=10")
    try:
        rows = [("before SIGTERM", {p: probe(server.port, p) for p in paths})]
        server.sigterm()
        server.wait(lambda: server.saw("SIGTERM"))
        rows.append(("during the delay", {p: probe(server.port, p) for p in paths}))
        server.wait(lambda: server.saw("stopped accepting"))
        rows.append(("after the delay", {p: probe(server.port, p) for p in paths}))
        rows.append(("exit status", {"": str(server.exit_status())}))
    finally:
        server.stop()
    return rows


# --8<-- [end:probes]


def main() -> None:
    print("8 closed-loop clients, each on its own keep-alive connection; each request")
    print("waits 50 ms in the server. SIGTERM is sent once all 8 are in flight.")
    print(f"{'server':9} {'exit status':24} {'answered':>9} {'failed':>7}  got Connection: close")
    labels = {"kill": "default", "exit": "sys.exit", "graceful": "graceful"}
    for mode in ("kill", "exit", "graceful"):
        r = sigterm_under_load(mode)
        status = f"{r.status}, after {r.seconds:.2f} s"
        if r.status < 0:
            status = f"{r.status} (killed by {signal.Signals(-r.status).name})"
        print(f"{labels[mode]:9} {status:24} {'~' + str(r.answered):>9} "
              f"{sum(r.failed.values()):>7}  {r.told_to_close}")  # fmt: skip
    print("A connection in the accept queue when the listener closes (Linux):")
    print(f"  {queued_connection_when_the_listener_closes()}")
    print("Probes of a graceful server with a 0.5 s delay between SIGTERM and closing:")
    for when, answers in probes_while_draining():
        shown = "  ".join(f"{path.split('?')[0]} {got}".strip() for path, got in answers.items())
        print(f"  {when:17} {shown}".replace("ConnectionRefusedError", "refused"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        # serve [mode [port [delay [deadline [head timeout]]]]], e.g. `serve graceful 8080 5 30`
        args = sys.argv[2:] + ["graceful", "0", "0", "5", str(HEAD_TIMEOUT)][len(sys.argv[2:]) :]
        mode, port, delay, deadline, head = args[:5]
        sys.exit(asyncio.run(serve(mode, int(port), float(delay), float(deadline), float(head))))
    main()
