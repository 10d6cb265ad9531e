"""HAProxy in front of three backends, once in `mode tcp` (L4) and once in `mode http` (L7):
30 requests over one keep-alive connection land on one backend at L4 and spread 10/10/10 at
L7; what L7 adds (X-Forwarded-For, routing by path) and what it costs in latency.

Run: python snippets/proxies/l4_l7_haproxy.py
Needs: HAPROXY_BIN
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# --8<-- [start:config]
CONFIG = """
global
    stats socket {dir}/admin.sock mode 600 level admin
    nbthread 1
defaults
    mode {mode}
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend entry
    bind 127.0.0.1:{port}
    {frontend}
    default_backend app
backend app
    balance roundrobin
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2}
    server b3 127.0.0.1:{b3}
backend api
    server b3 127.0.0.1:{b3}
"""
L7_EXTRAS = {  # what only `mode http` can do: it reads the request
    "frontend": "\n    ".join(
        (
            "option forwardfor",  # append X-Forwarded-For: <client address>
            "http-request set-header X-Proxy haproxy",  # rewrite headers
            "use_backend api if { path_beg /api/ }",  # route by path
        )
    ),
}
# --8<-- [end:config]


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


def answers(sock_path: Path) -> bool:
    """HAProxy's stats socket answers once every listener is bound and it is serving."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(str(sock_path))
            sock.sendall(b"show info\n")
            return b"Name: HAProxy" in sock.recv(65536)
    except OSError:
        return False


@contextmanager
def running_haproxy(config: str, **values: object) -> Iterator[int]:
    """HAProxy in the foreground (-db), its config in a temp dir; yields the port it listens
    on. Ready when the stats socket answers; "cannot bind" (a port taken between choosing and
    binding it) means: retry with another port. (The same function is copied into each
    snippet of this chapter: snippets do not import each other.)"""
    haproxy = find_haproxy()
    with tempfile.TemporaryDirectory() as tmp:
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


# --8<-- [end:haproxy]


# --8<-- [start:backends]
class Backend(ThreadingHTTPServer):
    """An HTTP/1.1 keep-alive server that counts the requests and connections it got and
    keeps the headers of the last request."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.name = name
        self.requests = 0
        self.connections = 0
        self.last_headers: Message = Message()
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # HAProxy stopping resets them
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK
    server: Backend

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.last_headers = self.headers
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_backends() -> list[Backend]:
    return [Backend(name) for name in ("b1", "b2", "b3")]


def stop_backends(backends: list[Backend]) -> None:
    for backend in backends:
        backend.shutdown()
        backend.server_close()


def reset(backends: list[Backend]) -> None:
    for backend in backends:
        backend.requests = backend.connections = 0


def config_for(mode: str, backends: list[Any]) -> dict[str, object]:
    extras = L7_EXTRAS if mode == "http" else {"frontend": ""}
    ports = {f"b{i}": getattr(b, "port", b) for i, b in enumerate(backends, 1)}
    return {"mode": mode, **extras, **ports}


# --8<-- [end:backends]


# --8<-- [start:spread]
def one_connection(port: int, n: int, path: str = "/") -> list[str]:
    """n requests, one after another, over ONE keep-alive connection to the proxy."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        names = []
        for _ in range(n):
            conn.request("GET", path)
            names.append(conn.getresponse().read().decode())
        return names
    finally:
        conn.close()


def new_connections(port: int, n: int) -> list[str]:
    """n requests, each on a connection of its own (the Break it)."""
    return [one_connection(port, 1)[0] for _ in range(n)]


def spread(
    mode: str, backends: list[Backend], n: int = 30, send=one_connection
) -> dict[str, tuple[int, int]]:
    """Through HAProxy in `mode`: {backend: (requests it counted, connections it accepted)}."""
    reset(backends)
    with running_haproxy(CONFIG, **config_for(mode, backends)) as port:
        send(port, n)
    return {b.name: (b.requests, b.connections) for b in backends}


# --8<-- [end:spread]


# --8<-- [start:adds]
def what_the_backend_sees(mode: str, backends: list[Backend]) -> dict[str, object]:
    """One request to /api/users: who answered it, and the headers the backend received."""
    reset(backends)
    with running_haproxy(CONFIG, **config_for(mode, backends)) as port:
        answered = one_connection(port, 1, "/api/users")[0]
    seen = next(b for b in backends if b.requests).last_headers
    return {
        "answered": answered,
        "X-Forwarded-For": seen.get("X-Forwarded-For", "-"),  # case-insensitive
        "X-Proxy": seen.get("X-Proxy", "-"),
    }


# --8<-- [end:adds]


# --8<-- [start:latency]
CANNED = """
import socket, sys, threading
RESPONSE = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nb1"
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    try:
        while chunk := conn.recv(65536):
            buffer += chunk
            while b"\\r\\n\\r\\n" in buffer:  # a GET has no body
                _, buffer = buffer.split(b"\\r\\n\\r\\n", 1)
                conn.sendall(RESPONSE)
    except OSError:
        pass
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
"""


@contextmanager
def canned_backend() -> Iterator[int]:
    """A backend as fast as Python gets, in a process of its own (so it does not share our
    GIL): reads a request head, writes a fixed response. Yields its port."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CANNED], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        yield int(proc.stdout.readline())  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()


def interleaved(ports: dict[str, int], n: int) -> dict[str, list[float]]:
    """n round trips per variant over one keep-alive connection each (closed loop), taken
    in turn — direct, L4, L7, direct, … — so a busy moment of the machine hits all three."""
    conns = {v: http.client.HTTPConnection("127.0.0.1", p, timeout=5) for v, p in ports.items()}
    times: dict[str, list[float]] = {v: [] for v in ports}
    try:
        for _ in range(n):
            for variant, conn in conns.items():
                start = time.perf_counter()
                conn.request("GET", "/")
                conn.getresponse().read()
                times[variant].append(time.perf_counter() - start)
        return times
    finally:
        for conn in conns.values():
            conn.close()


def latency_medians(rounds: int = 5, n: int = 120) -> dict[str, list[float]]:
    """Median round trip per round, direct and through each mode, to one fast backend."""
    medians: dict[str, list[float]] = {"direct": [], "tcp": [], "http": []}
    with (
        canned_backend() as fast,
        running_haproxy(CONFIG, **config_for("tcp", [fast] * 3)) as l4,
        running_haproxy(CONFIG, **config_for("http", [fast] * 3)) as l7,
    ):
        ports = {"direct": fast, "tcp": l4, "http": l7}
        for _ in range(rounds):
            for variant, times in interleaved(ports, n).items():
                medians[variant].append(statistics.median(times))
    return medians


def ratio(medians: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of (a's median / b's median) in the same round."""
    return statistics.median(x / y for x, y in zip(medians[a], medians[b], strict=True))


# --8<-- [end:latency]


def main() -> None:
    backends = start_backends()
    try:
        print("30 requests over one keep-alive connection (requests, connections per backend):")
        for mode, label in (("tcp", "L4  mode tcp "), ("http", "L7  mode http")):
            counts = spread(mode, backends)
            shown = ", ".join(f"{name} {r} req/{c} conn" for name, (r, c) in counts.items())
            print(f"  {label}  {shown}")
        print("GET /api/users: who answered and what the backend received:")
        for mode in ("tcp", "http"):
            print(f"  mode {mode:4}  {what_the_backend_sees(mode, backends)}")
        medians = latency_medians()
        direct = statistics.median(medians["direct"]) * 1e6
        print("round trips over keep-alive, 5 rounds x 120 per variant, interleaved (closed loop):")
        print(f"  direct {direct:.1f} us; through L4 x{ratio(medians, 'tcp', 'direct'):.2f},")
        print(f"  through L7 x{ratio(medians, 'http', 'direct'):.2f}", end="; ")
        print(f"L7 / L4 = {ratio(medians, 'http', 'tcp'):.2f}")
    finally:
        stop_backends(backends)


if __name__ == "__main__":
    main()
