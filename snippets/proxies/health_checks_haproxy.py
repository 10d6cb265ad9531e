"""Active vs passive health checks on real HAProxy: a backend whose health check fails is
taken out after `fall` checks and brought back after `rise`; a backend that fails real
requests but passes its health check is taken out only by passive checks (`observe layer7`).

Run: python snippets/proxies/health_checks_haproxy.py
Needs: HAPROXY_BIN
"""

from __future__ import annotations

import csv
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# --8<-- [start:config]
CONFIG = """
global
    stats socket {dir}/admin.sock mode 600 level admin
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 2s     # a check's reply may take 2 s; unset, the whole check must finish
                         # within `inter` (100 ms), and a busy machine failed a live backend
    retries 0            # no retries: every failed request reaches the client, counted
frontend entry
    bind 127.0.0.1:{port}
    use_backend %[path,field(2,/)]    # /checked/x -> backend checked

backend unchecked        # the control: no health checks at all
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2}
    server b3 127.0.0.1:{b3}

backend checked          # ACTIVE: HAProxy asks GET /health every 100 ms
    option httpchk GET /health?checked
    default-server check inter 100ms fall 2 rise 2
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2}
    server b3 127.0.0.1:{b3}

backend observed         # PASSIVE as well: real responses count (5xx but 501/505 = error)
    option httpchk GET /health?observed
    default-server check inter 1s fastinter 100ms fall 2 rise 30
    # checked every 1 s while UP; after a mark-down every 100 ms (fastinter), and UP
    # again after 30 passed checks: ~3 s, long enough to see it DOWN
    default-server observe layer7 error-limit 3 on-error mark-down
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2}
    server b3 127.0.0.1:{b3}
"""
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

    def states(self) -> dict[tuple[str, str], str]:
        """{(backend, server): status} from `show stat`: UP, DOWN, UP 1/2, DRAIN, no check…"""
        rows = csv.DictReader(ask(self.admin, "show stat").removeprefix("# ").splitlines())
        return {
            (row["pxname"], row["svname"]): row["status"]
            for row in rows
            if row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_for(self, backend: str, server: str, status: str, seconds: float = 4) -> float:
        """Poll the runtime API until the server has `status`; the seconds it took."""
        start = time.monotonic()
        while (now := self.states()[(backend, server)]) != status:
            if time.monotonic() - start > seconds:
                raise TimeoutError(f"{backend}/{server} is {now!r}, not {status!r}")
            time.sleep(0.01)  # polls a readiness signal (HAProxy's state), not a fixed wait
        return time.monotonic() - start


@contextmanager
def running_haproxy(config: str, **values: object) -> Iterator[Haproxy]:
    """HAProxy in the foreground (-db), its config in a temp dir. Ready when the stats
    socket answers; "cannot bind" (a port taken between choosing and binding it) means:
    retry with another port. (Copied, with small changes, into each snippet of this
    chapter that starts HAProxy: snippets do not import each other.)"""
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
                deadline = time.monotonic() + 5
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


# --8<-- [start:backends]
class Backend(ThreadingHTTPServer):
    """An HTTP/1.1 keep-alive server with two switches: what GET /health answers (the health
    check) and what every other request gets (the application). Counts both."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.name = name
        self.health = 200  # what GET /health answers
        self.app = 200  # what everything else answers
        self.checks: Counter[str] = Counter()  # health checks received, per pool
        self.requests = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # HAProxy stopping resets them
            super().handle_error(request, client_address)

    def set(self, health: int, app: int) -> None:
        with self.lock:
            self.health, self.app = health, app

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    server: Backend

    def do_GET(self) -> None:
        with self.server.lock:
            if self.path.startswith("/health"):
                self.server.checks[self.path.partition("?")[2]] += 1
                status = self.server.health
            else:
                self.server.requests += 1
                status = self.server.app
        body = f"{self.server.name} {status}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def backends_and_haproxy() -> Iterator[tuple[list[Backend], Haproxy]]:
    """Three healthy backends and one HAProxy in front of them, all servers UP."""
    backends = [Backend(name) for name in ("b1", "b2", "b3")]
    ports = {b.name: b.port for b in backends}
    try:
        with running_haproxy(CONFIG, **ports) as haproxy:
            for pool in ("checked", "observed"):
                for name in ports:  # a server starts "UP 1/2" (one failed check from DOWN);
                    haproxy.wait_for(pool, name, "UP")  # after its first passed check: "UP"
            yield backends, haproxy
    finally:
        for backend in backends:
            backend.shutdown()
            backend.server_close()


# --8<-- [end:backends]


# --8<-- [start:traffic]
def send(haproxy: Haproxy, pool: str, n: int = 30) -> Counter[str]:
    """n GETs to a pool: {"b1 200": 10, "b2 500": 10, …} as the client received them."""
    return Counter(in_order(haproxy, pool, n))


def in_order(haproxy: Haproxy, pool: str, n: int = 30) -> list[str]:
    """n GETs, one after another on one keep-alive connection (a closed loop), to a pool:
    the answers in the order they came ("b1 200", "b2 500", …)."""
    conn = http.client.HTTPConnection("127.0.0.1", haproxy.port, timeout=5)
    try:
        answers = []
        for i in range(n):
            conn.request("GET", f"/{pool}/{i}")
            answers.append(conn.getresponse().read().decode())
        return answers
    finally:
        conn.close()


def failed(answers: Counter[str]) -> int:
    return sum(n for answer, n in answers.items() if not answer.endswith(" 200"))


# --8<-- [end:traffic]


# --8<-- [start:active]
def active_check_takes_it_out_and_brings_it_back(
    haproxy: Haproxy, backends: list[Backend]
) -> dict[str, object]:
    """b2 breaks and its health check says so (503); later it recovers (200)."""
    b2 = backends[1]
    b2.set(health=503, app=500)
    down = haproxy.wait_for("checked", "b2", "DOWN")  # after `fall` failed checks
    broken = {pool: send(haproxy, pool) for pool in ("checked", "unchecked")}
    b2.set(health=200, app=200)
    up = haproxy.wait_for("checked", "b2", "UP")  # after `rise` passed checks
    back = send(haproxy, "checked")
    return {"down_after": down, "broken": broken, "up_after": up, "back": back}


# --8<-- [end:active]


# --8<-- [start:passive]
def passive_check_catches_what_the_health_check_misses(
    haproxy: Haproxy, backends: list[Backend]
) -> dict[str, object]:
    """b2 fails every real request (500) but its /health still answers 200."""
    b2 = backends[1]
    b2.set(health=200, app=500)
    seen = b2.checks["checked"]
    ordered = {pool: in_order(haproxy, pool) for pool in ("checked", "observed")}
    while b2.checks["checked"] < seen + 3:  # the active checks ran meanwhile, and passed
        time.sleep(0.01)  # polls a counter (health checks received), not a fixed wait
    states = haproxy.states()
    return {
        "answers": {pool: Counter(got) for pool, got in ordered.items()},
        "observed_order": ordered["observed"],
        "checks": b2.checks["checked"] - seen,
        "checked_b2": states[("checked", "b2")],
        "observed_b2": states[("observed", "b2")].split()[0],  # "DOWN 5/30": going up
    }


# --8<-- [end:passive]


def shown(answers: Counter[str], vary: tuple[str, ...] = ()) -> str:
    """{"b1 200": 14, …} as "b1 200 x14, …"; the counts of backends in `vary` get a "~"
    (round robin's starting point decides them, not the lesson)."""
    return ", ".join(
        f"{answer} x{'~' if answer.split()[0] in vary else ''}{n}"
        for answer, n in sorted(answers.items())
    )


def main() -> None:
    with backends_and_haproxy() as (backends, haproxy):  # one HAProxy for both
        # Passive first: `observed` checks /health too, and would take b2 out for seconds
        # (rise 30) had it seen the active experiment's failing health check.
        passive = passive_check_catches_what_the_health_check_misses(haproxy, backends)
        active = active_check_takes_it_out_and_brings_it_back(haproxy, backends)
    print("ACTIVE: b2's health check answers 503 (and its requests 500)")
    print(f"  checked: b2 marked DOWN after {active['down_after']:.1f} s (fall 2, inter 100 ms)")
    for pool, answers in active["broken"].items():  # type: ignore[union-attr]
        print(f"  30 GETs to {pool:9}: {failed(answers):2} failed   {shown(answers)}")
    print(f"  b2 healthy again: marked UP after {active['up_after']:.1f} s (rise 2)")
    back = active["back"]
    print(f"  30 GETs to checked  : {failed(back):2} failed   {shown(back)}")  # type: ignore[arg-type]
    print("PASSIVE: b2 answers its health check 200 but every request 500")
    for pool, answers in passive["answers"].items():  # type: ignore[union-attr]
        vary = ("b1", "b2", "b3") if pool == "observed" else ()  # see the page
        lost = f"{'~' if vary else ''}{failed(answers)}"
        print(f"  30 GETs to {pool:9}: {lost:>2} failed   {shown(answers, vary)}")
    print("  b2 passed 3 or more health checks meanwhile:", end=" ")
    print(f"checked/b2 is {passive['checked_b2']}, observed/b2 is {passive['observed_b2']}")


if __name__ == "__main__":
    main()
