"""A rolling restart of two instances behind real HAProxy under steady load: instances that
turn /ready to 503 on SIGTERM, keep serving until HAProxy's health check has taken them out,
then drain, fail no request; instances that close at once, or die at once, fail some.

Run: python snippets/operations/shutdown_rolling.py
Needs: HAPROXY_BIN
(The same file is the server: `python snippets/operations/shutdown_rolling.py serve graceful`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import email.utils
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# --8<-- [start:config]
CONFIG = """
global
    stats socket {dir}/admin.sock mode 600 level admin
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 15s
    timeout server 15s
    timeout check 1s
    retries 0            # no retries: every failed request reaches a client, counted
frontend entry
    bind 127.0.0.1:{port}
    default_backend app
backend app
    option http-server-close   # a new connection to the server for every request
    option httpchk GET /ready
    http-check expect status 200
    default-server check inter 50ms fall 2 rise 2   # DOWN after 2 failed checks, UP after 2
    server s1 127.0.0.1:{s1}
    server s2 127.0.0.1:{s2}
"""
# --8<-- [end:config]

# Break it: retry a failed connection on the other server (see the page)
RETRYING = CONFIG.replace(
    "    retries 0            # no retries: every failed request reaches a client, counted",
    "    retries 3\n    option redispatch 1   # a retry may go to the other server",
)

# What each kind of instance does on SIGTERM: (mode, delay before it stops accepting)
VARIANTS = {
    "graceful": ("graceful", 0.3),  # /ready 503, serve 0.3 s more, stop accepting, drain
    "no delay": ("graceful", 0.0),  # /ready 503, stop accepting at once, drain
    "naive": ("kill", 0.0),  # Python's default SIGTERM action: the process ends
    # the control for readiness: the same delay, but /ready keeps answering 200
    "delay, no readiness": ("unannounced", 0.3),
}


# --8<-- [start:haproxy]
def find_haproxy() -> str:
    found = os.environ.get("HAPROXY_BIN") or shutil.which("haproxy")
    found = found or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/bin")
    if not found:
        sys.exit("haproxy is not installed: sudo apt-get install haproxy  (macOS: brew install)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ask(sock_path: Path, command: str) -> str:
    """One command on HAProxy's runtime API (the stats socket); its answer."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(str(sock_path))
        sock.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer.decode()


def answers(sock_path: Path) -> bool:
    """HAProxy's stats socket answers once every listener is bound and it is serving."""
    try:
        return "Name: HAProxy" in ask(sock_path, "show info")
    except OSError:
        return False


@dataclass
class Haproxy:
    port: int
    admin: Path  # the runtime API's socket

    def status(self, server: str) -> str:
        """The server's status in `show stat`: UP, DOWN, "UP 1/2" (one failed check)..."""
        rows = csv.DictReader(ask(self.admin, "show stat").removeprefix("# ").splitlines())
        return next(r["status"] for r in rows if (r["pxname"], r["svname"]) == ("app", server))

    def wait_for(self, server: str, status: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while (now := self.status(server)) != status:
            if time.monotonic() > deadline:
                raise TimeoutError(f"app/{server} is {now!r}, not {status!r}")
            time.sleep(0.01)  # polls a readiness signal (HAProxy's state), not a fixed wait


@contextlib.contextmanager
def running_haproxy(config: str, **values: object) -> Iterator[Haproxy]:
    """HAProxy in the foreground (-db), its config in a temp dir. Ready when the stats
    socket answers; "cannot bind" (a port taken between choosing and binding it) means:
    retry with another port. (Copied, with small changes, from the proxies chapter's
    snippets: snippets do not import each other.)"""
    haproxy = find_haproxy()
    with tempfile.TemporaryDirectory() as tmp:
        admin = Path(tmp, "admin.sock")
        for _attempt in range(5):
            port = free_port()
            path = Path(tmp, "haproxy.cfg")
            path.write_text(config.format(dir=tmp, port=port, **values))
            proc = subprocess.Popen(
                [haproxy, "-db", "-f", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                deadline = time.monotonic() + 20  # a bound for a hang, not a wait
                while not answers(admin):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.005)  # polls a readiness signal; not a wait for the server
                else:
                    yield Haproxy(port, admin)
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


# --8<-- [end:haproxy]


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
    """Closed-loop clients through HAProxy: each sends its next GET /work as soon as the
    last is answered, over a keep-alive connection (a new one after a close). Counts what
    came back: 200, HAProxy's 502/503, or an exception's name."""

    def __init__(self, port: int, clients: int = 4, ms: int = 20) -> None:
        self.port, self.ms = port, ms
        self.results: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        while not self.stop.is_set():
            try:
                conn.request("GET", f"/work?ms={self.ms}")
                response = conn.getresponse()
                response.read()
                outcome = str(response.status)
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__
                conn.close()  # the next request opens a new connection
            with self.lock:
                self.results[outcome] += 1
        conn.close()

    def total(self) -> int:
        with self.lock:
            return sum(self.results.values())

    def wait_for(self, n: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while self.total() < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.total()} answers")
            time.sleep(0.005)  # polls a counter (answers received), not a fixed wait

    def finish(self) -> Counter[str]:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        return self.results


# --8<-- [end:load]


# --8<-- [start:rolling]
@dataclass
class Restart:
    name: str
    status: int  # the old instance's exit status
    ready_503: int  # /ready checks it answered 503 before it stopped accepting (-1: none said)


def rolling_restart(variant: str, config: str = CONFIG) -> tuple[Counter[str], list[Restart]]:
    """Two instances behind HAProxy under load; restart s1, then s2: SIGTERM (once a
    request is in flight there), wait for the exit, start a new instance on a new port,
    point HAProxy's server at it (the runtime API's `set server ... addr`), and wait until
    HAProxy's checks mark it UP. Returns what the clients got, and each restart."""
    mode, delay = VARIANTS[variant]
    everyone: list[Instance] = []  # every process started, to stop them all at the end

    def start() -> Instance:
        everyone.append(instance := Instance(mode, delay=delay))
        return instance

    restarts = []
    try:
        instances = {name: start() for name in ("s1", "s2")}  # both start at once
        ports = {name: instance.ready().port for name, instance in instances.items()}
        with running_haproxy(config, **ports) as haproxy:
            for name in instances:
                haproxy.wait_for(name, "UP")
            load = Load(haproxy.port)
            try:
                load.wait_for(20)
                for name in ("s1", "s2"):
                    old, new = instances[name], start()  # the new one starts meanwhile
                    old.wait(lambda old=old: old.in_flight() >= 1)
                    old.sigterm()
                    status = old.exit_status()
                    said = [line for line in old.lines if line.startswith("stopped accepting")]
                    checks = int(said[0].split()[3]) if said else -1
                    restarts.append(Restart(name, status, checks))
                    instances[name] = new.ready()
                    ask(haproxy.admin, f"set server app/{name} addr 127.0.0.1 port {new.port}")
                    haproxy.wait_for(name, "UP")
                load.wait_for(load.total() + 20)  # and the load goes on, on both
            finally:
                results = load.finish()
    finally:
        for instance in everyone:
            instance.stop()
    return results, restarts


# --8<-- [end:rolling]


def failures(results: Counter[str]) -> int:
    return sum(n for outcome, n in results.items() if outcome != "200")


def main() -> None:
    print("HAProxy in front of two instances; 4 closed-loop clients, 20 ms of work per")
    print("request; HAProxy checks GET /ready every 50 ms (fall 2, rise 2), opens a new")
    print("connection to an instance for every request, and does not retry (retries 0).")
    print("Rolling restart of s1, then s2: SIGTERM, exit, a new instance, wait until UP.")
    for variant in ("graceful", "no delay"):
        results, restarts = rolling_restart(variant)
        lost = failures(results)
        kinds = {"503": results["503"], "502": results["502"]}
        kinds["no answer"] = lost - sum(kinds.values())  # the connection closed or reset
        how = ", ".join(f"{kind} x~{n}" for kind, n in kinds.items())
        print(f"{variant}: {VARIANT_TEXT[variant]}")
        print(f"  requests ~{sum(results.values())}, failed {'~' if lost else ''}{lost}", end="")
        print(f" ({how})" if lost else "")
        for r in restarts:
            n = f"~{r.ready_503}"
            print(f"  {r.name}: exit status {r.status}; /ready had answered 503 to {n} checks"
                  " when it stopped accepting")  # fmt: skip


VARIANT_TEXT = {
    "graceful": "/ready 503 at SIGTERM, serve 0.3 s more, stop accepting, drain",
    "no delay": "/ready 503 at SIGTERM and stop accepting at once, drain",
    "naive": "Python's default SIGTERM action",
    "delay, no readiness": "/ready stays 200, serve 0.3 s more, stop accepting, drain",
}


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        # serve [mode [port [delay [deadline [head timeout]]]]], e.g. `serve graceful 8080 5 30`
        args = sys.argv[2:] + ["graceful", "0", "0", "5", str(HEAD_TIMEOUT)][len(sys.argv[2:]) :]
        mode, port, delay, deadline, head = args[:5]
        sys.exit(asyncio.run(serve(mode, int(port), float(delay), float(deadline), float(head))))
    main()
