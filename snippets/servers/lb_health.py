"""Active health checks take a failed backend out of a load balancer and put it back.

Run: python snippets/servers/lb_health.py
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class BackendHandler(BaseHTTPRequestHandler):
    """GET /health -> 200 "ok"; anything else -> 200 with the backend's name."""

    def do_GET(self) -> None:
        body = b"ok" if self.path == "/health" else self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_backend(name: str, port: int = 0) -> ThreadingHTTPServer:
    """A backend on 127.0.0.1 (port 0: any free port; or the port it had before a crash)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), BackendHandler)
    server.name = name  # type: ignore[attr-defined]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server


def crash(server: ThreadingHTTPServer) -> None:
    """Stop accepting and close the socket: connections are now refused."""
    server.shutdown()
    server.server_close()


def get(address: tuple[str, int], path: str, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --8<-- [start:pool]
@dataclass
class Member:
    address: tuple[str, int]
    healthy: bool = True
    streak: int = 0  # consecutive check results that disagree with `healthy`


@dataclass
class Pool:
    """Round robin over the healthy members. A checker probes GET /health on every member
    every `interval` s: `fall` failures in a row take a member out, `rise` successes in a
    row put it back (HAProxy's names and defaults are rise 2, fall 3)."""

    members: list[Member]
    interval: float = 0.02
    timeout: float = 0.2
    rise: int = 2
    fall: int = 2
    turn: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def check_once(self) -> None:
        for member in self.members:
            try:
                ok = get(member.address, "/health", self.timeout)[0] == 200
            except OSError:  # refused, reset, timed out
                ok = False
            with self.changed:
                member.streak = 0 if ok == member.healthy else member.streak + 1
                if member.streak >= (self.rise if ok else self.fall):
                    member.healthy, member.streak = ok, 0
                    self.changed.notify_all()

    @contextmanager
    def checking(self) -> Iterator[None]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.interval):
                self.check_once()

        checker = threading.Thread(target=loop, daemon=True)
        checker.start()
        try:
            yield
        finally:
            stop.set()
            checker.join()

    def wait_until(self, member: Member, healthy: bool, timeout: float = 5.0) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: member.healthy == healthy, timeout):
                raise TimeoutError(f"{member.address} never became healthy={healthy}")

    def pick(self) -> Member:
        with self.changed:
            healthy = [m for m in self.members if m.healthy]
        if not healthy:
            raise ConnectionError("no healthy backend: 503")
        self.turn += 1
        return healthy[self.turn % len(healthy)]

    def request(self, path: str) -> bytes:
        return get(self.pick().address, path, timeout=1.0)[1]


# --8<-- [end:pool]


# --8<-- [start:demo]
def send(pool: Pool, n: int) -> Counter[str]:
    """n requests through the pool: responses per backend, and errors."""
    counts: Counter[str] = Counter()
    for _ in range(n):
        try:
            counts[pool.request("/").decode()] += 1
        except OSError:
            counts["errors"] += 1
    return counts


def main() -> None:
    backends = [start_backend(name) for name in ("b1", "b2", "b3")]
    pool = Pool([Member(b.server_address) for b in backends])
    b2, member2 = backends[1], pool.members[1]
    try:
        print("all up:                ", dict(sorted(send(pool, 30).items())))
        crash(b2)
        print("b2 crashed, no checks: ", dict(sorted(send(pool, 30).items())))
        with pool.checking():
            start = time.perf_counter()
            pool.wait_until(member2, healthy=False)
            print(f"the checker took b2 out after {time.perf_counter() - start:.2f} s")
            print("b2 out of the pool:    ", dict(sorted(send(pool, 30).items())))
            b2 = backends[1] = start_backend("b2", port=member2.address[1])  # restarted
            start = time.perf_counter()
            pool.wait_until(member2, healthy=True)
            print(f"the checker put b2 back after {time.perf_counter() - start:.2f} s")
            print("b2 back in the pool:   ", dict(sorted(send(pool, 30).items())))
    finally:
        for backend in backends:
            crash(backend)


# --8<-- [end:demo]


if __name__ == "__main__":
    main()
