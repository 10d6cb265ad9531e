"""NGINX as a shield for a synchronous one-worker app: with proxy buffering on, clients that
stall do not hold the worker; with it off, they do (counted). And NGINX's upstream
keep-alive pool vs a new connection per request (connections counted, latency as a ratio
of medians).

Run: python snippets/proxies/shield_nginx.py
Needs: NGINX_BIN
"""

from __future__ import annotations

import http.client
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template

# --8<-- [start:config]
CONFIG = """
daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path client_body;
    proxy_temp_path proxy;            # where buffered responses spill to disk
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;

    upstream sync_app { server 127.0.0.1:${SYNC}; }
    upstream pooled   { server 127.0.0.1:${APP}; keepalive 8; }   # idle connections kept
    upstream fresh    { server 127.0.0.1:${APP}; }

    server {
        listen 127.0.0.1:${PORT} sndbuf=64k;
        location /buffered/ {          # the default: read the whole response, free the app
            proxy_pass http://sync_app/;
            proxy_buffering on;
        }
        location /unbuffered/ {        # pass it through as fast as the CLIENT reads
            proxy_pass http://sync_app/;
            proxy_buffering off;
        }
        location /pooled/ {
            proxy_pass http://pooled/;
            proxy_http_version 1.1;          # keep-alive needs HTTP/1.1 upstream ...
            proxy_set_header Connection "";  # ... and no "Connection: close"
        }
        location /fresh/ {             # the default: HTTP/1.0, a new connection each time
            proxy_pass http://fresh/;
        }
    }
}
"""
# --8<-- [end:config]


# --8<-- [start:nginx]
def find_nginx() -> str:
    found = os.environ.get("NGINX_BIN") or shutil.which("nginx")
    found = found or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/bin")
    if not found:
        sys.exit("nginx is not installed: sudo apt-get install nginx-light  (macOS: brew install)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """A running NGINX: its port and every line of its error log so far."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port, self.log = proc, port, []
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.log.append(line.rstrip())
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, *markers: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError("nginx exited:\n" + "\n".join(self.log))
            for marker in markers:
                if marker in line:
                    return marker
        raise TimeoutError(f"nginx did not log any of {markers}:\n" + "\n".join(self.log))


@contextmanager
def running_nginx(**values: object) -> Iterator[Nginx]:
    """NGINX in the foreground, a temp dir as its prefix. Ready when it logs that its worker
    started; "Address already in use" (the port taken between choosing and binding it)
    means: again with another port. (As in snippets/servers/nginx_proxy.py: snippets do not
    import each other.)"""
    nginx = find_nginx()
    with tempfile.TemporaryDirectory() as prefix:
        os.chmod(prefix, 0o755)  # as root, the worker runs as "nobody" and must read it
        for _attempt in range(5):
            port = free_port()
            Path(prefix, "nginx.conf").write_text(Template(CONFIG).substitute(PORT=port, **values))
            proc = subprocess.Popen(
                [nginx, "-p", prefix, "-c", "nginx.conf", "-e", "stderr"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            server = Nginx(proc, port)
            try:
                if server.wait_for("start worker process", "Address already in use") == (
                    "Address already in use"
                ):
                    continue
                yield server
                return
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        raise RuntimeError("no free port after 5 attempts")


# --8<-- [end:nginx]


# --8<-- [start:sync_app]
BIG = 8 * 1024 * 1024  # a response far larger than the socket buffers on the way


class SyncApp:
    """A synchronous app with ONE worker (think gunicorn's sync worker, --workers 1): it
    accepts a connection, answers it, closes it, and only then accepts the next. /big is
    8 MiB, anything else 2 bytes. Counts the big responses it finished sending."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.big_sent = 0  # big responses sent whole
        self.big_bytes = 0  # bytes of the last big response handed to the kernel so far
        threading.Thread(target=self.worker, daemon=True).start()

    def worker(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(10)
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += conn.recv(65536) or b"\r\n\r\n"
                    big = head.startswith(b"GET /big ")
                    body = b"x" * BIG if big else b"ok"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body))
                    conn.sendall(b"Connection: close\r\n\r\n")
                    self.big_bytes = 0 if big else self.big_bytes
                    view = memoryview(body)
                    while view:  # send() blocks while the socket buffers on the way are full
                        sent = conn.send(view[:65536])
                        view = view[sent:]
                        self.big_bytes += sent if big else 0
                    self.big_sent += big
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


# --8<-- [end:sync_app]


# --8<-- [start:shield]
def stalled_client(port: int, path: str) -> socket.socket:
    """A client that asks for /big and then reads nothing (a phone in a tunnel): a tiny
    receive buffer, so it stops the bytes after a few KiB."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: shield\r\n\r\n".encode())
    return sock


def fast_requests(port: int, path: str, n: int = 10, timeout: float = 1.0) -> int:
    """n small requests, one after another; how many were answered (each within `timeout`;
    the first one that is not ends the count)."""
    answered = 0
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            answered += 1
        except TimeoutError:
            break
        finally:
            conn.close()
    return answered


def shield(nginx: Nginx, app: SyncApp, mode: str, stalled: int = 1) -> dict[str, int]:
    """`stalled` clients ask for /big through NGINX and read nothing; then another client
    asks for /small 10 times. {"answered": of 10, "finished": big responses the app sent,
    "big_bytes": how much of the last big response the app had sent}."""
    before = app.big_sent
    with ExitStack() as stack:
        for _ in range(stalled):
            stack.callback(stalled_client(nginx.port, f"/{mode}/big").close)
        answered = fast_requests(nginx.port, f"/{mode}/small")
        finished = app.big_sent - before  # counted while the stalled clients are there
        big_bytes = app.big_bytes
    return {"answered": answered, "finished": finished, "big_bytes": big_bytes}


# --8<-- [end:shield]


# --8<-- [start:pool]
class CountingApp(ThreadingHTTPServer):
    """A threaded keep-alive app that counts the connections it accepts."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CountingHandler)
        self.connections = 0
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


class CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: CountingApp

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def connections_for(nginx: Nginx, app: CountingApp, mode: str, n: int = 50) -> int:
    """n requests over one keep-alive client connection: connections the app accepted."""
    before = app.connections
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
    try:
        for _ in range(n):
            conn.request("GET", f"/{mode}/x")
            conn.getresponse().read()
    finally:
        conn.close()
    return app.connections - before


def latency_medians(nginx: Nginx, rounds: int = 7, n: int = 100) -> dict[str, list[float]]:
    """Per round, the median round trip through each location; the two taken in turn,
    request by request, each over its own keep-alive client connection (closed loop)."""
    medians: dict[str, list[float]] = {"pooled": [], "fresh": []}
    conns = {m: http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5) for m in medians}
    try:
        for _ in range(rounds):
            times: dict[str, list[float]] = {m: [] for m in medians}
            for _ in range(n):
                for mode, conn in conns.items():
                    start = time.perf_counter()
                    conn.request("GET", f"/{mode}/x")
                    conn.getresponse().read()
                    times[mode].append(time.perf_counter() - start)
            for mode in medians:
                medians[mode].append(statistics.median(times[mode]))
        return medians
    finally:
        for conn in conns.values():
            conn.close()


def ratio(medians: dict[str, list[float]]) -> float:
    """Median over rounds of fresh / pooled, each round's two medians taken together."""
    pairs = zip(medians["fresh"], medians["pooled"], strict=True)
    return statistics.median(f / p for f, p in pairs)


# --8<-- [end:pool]


@contextmanager
def world() -> Iterator[tuple[Nginx, SyncApp, CountingApp]]:
    sync, app = SyncApp(), CountingApp()
    try:
        with running_nginx(SYNC=sync.port, APP=app.port) as nginx:
            yield nginx, sync, app
    finally:
        sync.close()
        app.shutdown()
        app.server_close()


def main() -> None:
    with world() as (nginx, sync, app):
        print("1 client stalls on an 8 MiB response; then 10 small requests (1 s each):")
        for mode in ("buffered", "unbuffered"):
            got = shield(nginx, sync, mode)
            setting = "on " if mode == "buffered" else "off"
            print(f"  proxy_buffering {setting}: {got['answered']:2} of 10 answered;", end=" ")
            print(f"the app finished {got['finished']} of 1 big response", end=" ")
            print(f"({got['big_bytes'] / 2**20:.1f} of 8.0 MiB sent)")
        # a thread reads NGINX's stderr: wait until it has read the warning, not just look
        nginx.wait_for("buffered to a temporary file")
        spilled = sum("buffered to a temporary file" in line for line in nginx.log)
        print(f"  NGINX logged {spilled} response buffered to a temporary file")
        print("50 requests through NGINX on one client connection; the app accepted:")
        for mode in ("pooled", "fresh"):
            print(f"  {mode:6}: {connections_for(nginx, app, mode)} connection(s)")
        medians = latency_medians(nginx)
        pooled = statistics.median(medians["pooled"]) * 1e6
        print("round trip, 7 rounds x 100 per location, interleaved (closed loop; not asserted):")
        print(f"  pooled {pooled:.1f} us; a new connection per request x{ratio(medians):.2f}")


if __name__ == "__main__":
    main()
