"""NGINX in front of a Python app: static files from disk, /api/ proxied with X-Forwarded-For,
a slow app gets 504, a stopped one 502, and malformed requests 400 before reaching the app.

Run: python snippets/servers/nginx_proxy.py
Needs: NGINX_BIN
"""

from __future__ import annotations

import http.client
import json
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, urlsplit

CONF = Path(__file__).parent / "nginx" / "proxy.conf"


def find_nginx() -> str:
    """NGINX_BIN if set, else nginx on PATH or in /usr/sbin; exit with a hint if missing."""
    found = os.environ.get("NGINX_BIN") or shutil.which("nginx")
    found = found or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/bin")
    if not found:
        sys.exit("nginx is not installed: sudo apt-get install nginx-light  (macOS: brew install)")
    return found


def free_port() -> int:
    """A port that was free a moment ago. Racy on its own: see running_nginx()."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --8<-- [start:run]
class Nginx:
    """A running NGINX: its base URL and every line of its error log so far."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}"
        self.log: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr
        for line in self.proc.stderr:  # error_log stderr: read it so NGINX never blocks
            self.log.append(line.rstrip())
            self.lines.put(line)
        self.lines.put(None)  # NGINX exited

    def wait_for(self, *markers: str, timeout: float = 5.0) -> str:
        """Block until a log line contains one of the markers; return that marker."""
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
def running_nginx(conf: Path, **values: str) -> Iterator[Nginx]:
    """Run NGINX in the foreground with a temp dir as its prefix; stop it on exit.

    The port: we pick a free one and write it into the config. Another process could take
    it before NGINX binds, so we do not trust a TCP connect as readiness (we might reach
    that other process); we wait for NGINX's own log line instead, and if it says the
    address is in use we start again with a new port."""
    nginx = find_nginx()
    with tempfile.TemporaryDirectory() as prefix:
        os.chmod(prefix, 0o755)  # as root, workers run as "nobody" and must read it
        for _attempt in range(5):
            port = free_port()
            text = Template(conf.read_text()).safe_substitute(PORT=port, **values)
            Path(prefix, "nginx.conf").write_text(text)
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
                    continue  # lost the race for the port: try another (finally stops it)
                yield server
                return
            finally:
                proc.terminate()  # SIGTERM: fast shutdown, the master stops its workers
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        raise RuntimeError("no free port after 5 attempts")


# --8<-- [end:run]


# --8<-- [start:app]
class AppHandler(BaseHTTPRequestHandler):
    """The Python app behind NGINX: reports what it saw; /api/slow?delay=s answers late;
    /api/trickle?seconds=s answers at once but sends its body a byte every 0.1 s."""

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        if url.path.endswith("/trickle"):
            return self.trickle(float(parse_qs(url.query).get("seconds", ["1"])[0]))
        if url.path == "/api/slow":
            delay = float(parse_qs(url.query).get("delay", ["1"])[0])
            self.server.stopping.wait(delay)  # type: ignore[attr-defined]
        body = json.dumps(
            {
                "peer": self.client_address[0],  # the TCP peer: always NGINX
                "x-forwarded-for": self.headers.get("X-Forwarded-For"),
                "x-real-ip": self.headers.get("X-Real-IP"),
                "host": self.headers.get("Host"),
            }
        ).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # NGINX gave up on us (504) and closed the connection

    def trickle(self, seconds: float) -> None:
        steps = max(1, round(seconds / 0.1))
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(steps))
            self.end_headers()
            for _ in range(steps):  # never silent for long: proxy_read_timeout never fires
                if self.server.stopping.wait(0.1):  # type: ignore[attr-defined]
                    return
                self.wfile.write(b".")
        except BrokenPipeError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the output to what the snippet prints


@contextmanager
def running_app() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AppHandler)
    server.hits = 0  # type: ignore[attr-defined]
    server.stopping = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.stopping.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


# --8<-- [end:app]


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """GET through NGINX: (status, headers, body)."""
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw_request(base: str, request: bytes) -> str:
    """Send bytes as they are (even invalid HTTP); return the <title> of NGINX's error page."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(4096):  # NGINX closes the connection after an error
            reply += chunk
    match = re.search(rb"<title>(.*?)</title>", reply)
    return match[1].decode() if match else reply.split(b"\r\n", 1)[0].decode()


# --8<-- [start:demo]
def main() -> None:
    with tempfile.TemporaryDirectory() as root, running_app() as app:
        os.chmod(root, 0o755)
        Path(root, "index.html").write_text("<h1>served by NGINX from disk</h1>\n")
        os.chmod(Path(root, "index.html"), 0o644)
        app_address = f"127.0.0.1:{app.server_address[1]}"
        with running_nginx(CONF, ROOT=root, APP=app_address) as nginx:
            status, headers, body = get(nginx.url, "/index.html")
            server = headers["Server"].split("/")[0]  # "nginx", without its version
            print(
                f"GET /index.html -> {status} from {server}, {len(body)} bytes;"
                f" requests that reached the app: {app.hits}"
            )

            _, _, body = get(nginx.url, "/api/whoami")
            print("GET /api/whoami -> the app saw", body.decode())
            _, _, body = get(nginx.url, "/api/whoami", {"X-Forwarded-For": "203.0.113.7"})
            print("  with a client-sent X-Forwarded-For:", json.loads(body)["x-forwarded-for"])

            for delay in (0.05, 1.0):
                start = time.perf_counter()
                status, _, _ = get(nginx.url, f"/api/slow?delay={delay}")
                print(
                    f"GET /api/slow (app takes {delay} s) -> {status}"
                    f" after {time.perf_counter() - start:.2f} s"
                )
            start = time.perf_counter()  # a byte every 0.1 s: never 1 s of silence
            status, _, body = get(nginx.url, "/api/trickle?seconds=1.2")
            print(
                f"GET /api/trickle (a byte every 0.1 s for 1.2 s, read timeout 1 s) -> {status}"
                f" after {time.perf_counter() - start:.2f} s, {len(body)} bytes"
            )
            nginx.wait_for("timed out")  # the log line can trail the 504 by a moment
            logged = next(line for line in nginx.log if "timed out" in line)
            print("  NGINX logged:", re.sub(r".*\*\d+ (.*?),.*", r"\1", logged))

            print("request line 'HELLO?' ->", raw_request(nginx.url, b"HELLO?\r\n\r\n"))
            huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"
            print("a 10 KB header line ->", raw_request(nginx.url, huge))

            app.shutdown()
            app.server_close()  # the app is gone: nothing listens on its port any more
            status, _, _ = get(nginx.url, "/api/whoami")
            print(f"GET /api/whoami with the app stopped -> {status}")


# --8<-- [end:demo]


if __name__ == "__main__":
    main()
