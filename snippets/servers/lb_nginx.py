"""NGINX upstreams for real: round robin, least_conn with a slow backend, and a killed backend
taken out by passive health checks (max_fails, fail_timeout) and put back.

Run: python snippets/servers/lb_nginx.py
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
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template

CONF = Path(__file__).parent / "nginx" / "upstream.conf"


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


class Log(list[str]):
    """NGINX's error log lines so far, appended by a drain thread; wait_for() waits for one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def append(self, line: str) -> None:
        with self.changed:
            super().append(line)
            self.changed.notify_all()

    def wait_for(self, marker: str, timeout: float = 5.0) -> None:
        """Block until a line contains marker (NGINX may log a moment after it answers)."""
        with self.changed:
            if not self.changed.wait_for(lambda: any(marker in line for line in self), timeout):
                raise TimeoutError(f"nginx did not log {marker!r}:\n" + "\n".join(self))


@contextmanager
def running_nginx(conf: Path, **values: str) -> Iterator[tuple[str, Log]]:
    """NGINX in the foreground, prefix in a temp dir; yields (base URL, its log lines).
    Ready when it logs "start worker processes"; a taken port means: retry with another.
    (The same function as in nginx_proxy.py, shortened; see the NGINX page.)"""
    nginx = find_nginx()
    with tempfile.TemporaryDirectory() as prefix:
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
            log = Log()
            lines: queue.Queue[str] = queue.Queue()

            def drain(stream=proc.stderr, log=log, lines=lines) -> None:
                for line in stream:
                    log.append(line.rstrip())
                    lines.put(line)
                lines.put("")  # NGINX exited

            threading.Thread(target=drain, daemon=True).start()
            try:
                deadline = time.monotonic() + 5
                while "start worker process" not in (
                    line := lines.get(timeout=max(0.01, deadline - time.monotonic()))
                ):
                    if not line or "Address already in use" in line:
                        break
                else:
                    yield f"http://127.0.0.1:{port}", log
                    return
                if not line:
                    raise RuntimeError("nginx exited:\n" + "\n".join(log))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        raise RuntimeError("no free port after 5 attempts")


class NamedHandler(BaseHTTPRequestHandler):
    """Answers with the backend's name after the backend's current delay."""

    def do_GET(self) -> None:
        self.server.stopping.wait(self.server.delay)  # type: ignore[attr-defined]
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_backend(name: str, port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), NamedHandler)
    server.name = name  # type: ignore[attr-defined]
    server.delay = 0.0  # type: ignore[attr-defined]
    server.stopping = threading.Event()  # type: ignore[attr-defined]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.stopping.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def get(base: str, path: str = "/") -> tuple[str, float]:
    """One request through NGINX: (which backend answered, seconds)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        name = body if response.status == 200 else f"HTTP {response.status}"
        return name, time.perf_counter() - start
    finally:
        conn.close()


def addresses(backends: list[ThreadingHTTPServer]) -> dict[str, str]:
    """The config's ${B1}, ${B2}, ${B3}: host:port of each backend."""
    return {f"B{i}": f"127.0.0.1:{b.server_address[1]}" for i, b in enumerate(backends, 1)}


# --8<-- [start:balance]
def sequential(base: str, n: int) -> Counter[str]:
    return Counter(get(base)[0] for _ in range(n))


def concurrent(base: str, n: int, clients: int = 6) -> tuple[Counter[str], float]:
    """n requests from `clients` threads: (responses per backend, mean latency)."""
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: get(base), range(n)))
    return Counter(name for name, _ in results), statistics.mean(t for _, t in results)


def uneven(backends: list[ThreadingHTTPServer], balance: str) -> tuple[Counter[str], float]:
    """b3 answers in 100 ms, b1 and b2 at once: what does each algorithm send where?"""
    with running_nginx(CONF, BALANCE=balance, **addresses(backends)) as (base, _):
        return concurrent(base, n=60)


# --8<-- [end:balance]


# --8<-- [start:failover]
@dataclass
class Failover:
    after_kill: Counter[str]  # responses per backend once b2 is dead
    logged: list[str]  # what NGINX said about it
    back_after: float  # seconds from b2's failure to its first request after the restart
    after_restart: Counter[str]


def failover(backends: list[ThreadingHTTPServer]) -> Failover:
    with running_nginx(CONF, BALANCE="", **addresses(backends)) as (base, log):
        port = backends[1].server_address[1]
        stop(backends[1])  # b2 crashes: its port now refuses connections
        failed = time.perf_counter()  # NGINX marks b2 down within the next 3 requests
        after_kill = sequential(base, 30)
        log.wait_for("temporarily disabled")  # the drain thread may not have read it yet
        logged = [
            line.split("*", 1)[1].split(" ", 1)[1].split(",")[0]  # the message only
            for line in log
            if "upstream" in line and ("failed" in line or "disabled" in line)
        ]
        backends[1] = start_backend("b2", port)  # b2 restarts on the same port
        start = time.perf_counter()
        while get(base)[0] != "b2":  # NGINX retries b2 with live traffic after fail_timeout
            if time.perf_counter() - start > 4:  # NGINX counts fail_timeout in whole seconds
                raise TimeoutError("b2 never received traffic again")
            threading.Event().wait(0.02)  # pace the probe traffic: 50 requests/s
        back_after = time.perf_counter() - failed  # fail_timeout counts from the failure
        return Failover(after_kill, logged, back_after, sequential(base, 30))


# --8<-- [end:failover]


def show(counts: Counter[str], approx: bool = False) -> str:
    """ "b1 10, b2 0, b3 20": every backend, even one that got nothing, plus any errors."""
    names = sorted({"b1", "b2", "b3"} | set(counts))
    return ", ".join(f"{name} {'~' if approx else ''}{counts[name]}" for name in names)


def main() -> None:
    backends = [start_backend(name) for name in ("b1", "b2", "b3")]
    try:
        with running_nginx(CONF, BALANCE="", **addresses(backends)) as (base, _):
            print("round robin, 30 requests:", show(sequential(base, 30)))
        backends[2].delay = 0.1  # type: ignore[attr-defined]
        print("b3 now takes 100 ms; 60 requests from 6 concurrent clients:")
        for balance in ("", "least_conn;"):
            counts, mean = uneven(backends, balance)
            name = balance.rstrip(";") or "round robin"
            print(f"  {name:11}  {show(counts, approx=bool(balance))}  mean {mean * 1000:.1f} ms")
        backends[2].delay = 0.0  # type: ignore[attr-defined]
        result = failover(backends)
        print("b2 killed; 30 requests:", show(result.after_kill))
        for message in result.logged:
            print("  NGINX logged:", message)
        print(
            f"b2 restarted; it got traffic again {result.back_after:.1f} s after it failed"
            f" (fail_timeout=1s); 30 requests: {show(result.after_restart, approx=True)}"
        )
    finally:
        for backend in backends:
            stop(backend)


if __name__ == "__main__":
    main()
