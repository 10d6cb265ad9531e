"""A backend killed under load behind real HAProxy: client errors without retries and with
`retries` + `option redispatch`; a POST the backend dropped is not replayed unless HAProxy
is told to; draining over the runtime API removes a backend with zero failed requests.

Run: python snippets/proxies/failover_haproxy.py
Needs: HAPROXY_BIN
"""

from __future__ import annotations

import csv
import http.client
import itertools
import os
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
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    option httpchk GET /health
    default-server check inter 100ms fall 2 rise 2
frontend entry
    bind 127.0.0.1:{port}
    use_backend %[path,field(2,/)]    # /retry/x -> backend retry

backend noretry          # the control: a failed request is the client's problem
    retries 0
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2}
    server b3 127.0.0.1:{b3}

backend retry            # retry elsewhere, but only what is safe to send twice
    retries 3
    option redispatch 1                     # every retry may pick another server
    retry-on conn-failure empty-response    # refused, or closed with no response byte
    http-request disable-l7-retry unless METH_GET   # METH_GET: GET or HEAD
    server b1 127.0.0.1:{b1}
    server b2 127.0.0.1:{b2}
    server b3 127.0.0.1:{b3}

backend retryall         # the same without the method rule: replays a POST too
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
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

    def stats(self, backend: str, server: str) -> dict[str, str]:
        """The server's row of `show stat`: status (UP, DOWN, DRAIN…), scur (its sessions)…"""
        rows = csv.DictReader(ask(self.admin, "show stat").removeprefix("# ").splitlines())
        return next(r for r in rows if (r["pxname"], r["svname"]) == (backend, server))

    def wait_until(self, backend: str, server: str, test, seconds: float = 4) -> None:
        """Poll the runtime API until test(the server's stats row) holds."""
        deadline = time.monotonic() + seconds
        while not test(row := self.stats(backend, server)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{backend}/{server}: {row['status']}, {row['scur']} sessions")
            time.sleep(0.01)  # polls a readiness signal (HAProxy's state), not a fixed wait


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
SERVER = r"""
import socket, sys, threading, time
name, port = sys.argv[1], int(sys.argv[2])
hold = []  # path prefixes: the next request to each is held forever (set over stdin)
lock = threading.Lock()
def say(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
def commands():
    for line in sys.stdin:
        hold.append(line.split()[1])
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    try:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            method, target = head.decode().split(" ")[:2]
            length = 0
            for line in head.decode().split("\r\n")[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":")[1])
            while len(buffer) < length:
                buffer += conn.recv(65536)
            buffer = buffer[length:]
            if target != "/health":
                say(f"start {method} {target}")  # the request reached the application
                for prefix in [p for p in hold if target.startswith(p)][:1]:
                    hold.remove(prefix)
                    say("held")
                    threading.Event().wait(60)  # held until the parent kills this process
                time.sleep(0.002)  # the work
            body = name.encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            if target != "/health":
                say(f"end {method} {target}")
    except OSError:
        return
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(128)
threading.Thread(target=commands, daemon=True).start()
say("ready")
while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
"""


@dataclass
class Backend:
    """A backend in a process of its own, so that it can be killed (SIGKILL: no goodbye).
    It prints a line when a request reaches it and when it answers; we count them."""

    name: str
    port: int = field(default_factory=free_port)
    started: list[str] = field(default_factory=list)  # "POST /retry/pay?id=…" per request
    ended: int = 0

    def spawn(self) -> None:
        self.changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.name, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self.read, args=(self.proc,), daemon=True).start()
        self.wait(lambda: self.ready)

    def read(self, proc: subprocess.Popen) -> None:
        self.ready, self.held = False, 0
        for line in proc.stdout:  # type: ignore[union-attr]
            with self.changed:
                kind, _, request = line.strip().partition(" ")
                if kind == "start":
                    self.started.append(request)
                elif kind == "end":
                    self.ended += 1
                self.ready |= kind == "ready"
                self.held += kind == "held"
                self.changed.notify_all()

    def wait(self, test, seconds: float = 5) -> None:
        with self.changed:
            if not self.changed.wait_for(test, seconds):
                raise TimeoutError(f"{self.name}: {test}")

    def hold(self, *prefixes: str) -> None:
        """Block the next request to each path prefix: they stay in flight. Returns when
        they have all arrived."""
        for prefix in prefixes:
            self.proc.stdin.write(f"hold {prefix}\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        self.wait(lambda: self.held == len(prefixes))

    def in_flight(self) -> int:
        with self.changed:
            return len(self.started) - self.ended

    def kill(self) -> int:
        """SIGKILL: no chance to finish a request; the kernel closes its sockets. Returns
        how many requests it was in the middle of."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        with self.changed:
            lost, self.ended = len(self.started) - self.ended, len(self.started)
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.stdout.close()  # type: ignore[union-attr]
        return lost


@contextmanager
def backends_and_haproxy() -> Iterator[tuple[dict[str, Backend], Haproxy]]:
    backends = {name: Backend(name) for name in ("b1", "b2", "b3")}
    try:
        for backend in backends.values():
            backend.spawn()
        with running_haproxy(CONFIG, **{n: b.port for n, b in backends.items()}) as haproxy:
            yield backends, haproxy
    finally:
        for backend in backends.values():
            if backend.proc.poll() is None:
                backend.kill()


# --8<-- [end:backends]


# --8<-- [start:load]
class Load:
    """Closed-loop clients: each thread sends its next request as soon as the last one is
    answered, over its own keep-alive connection, cycling through `requests` ((method,
    path) pairs). Every answer is counted under the phase in which the request was sent."""

    runs = itertools.count()

    def __init__(self, port: int, requests: list[tuple[str, str]], threads: int = 4) -> None:
        self.port, self.requests, self.run = port, requests, next(self.runs)
        self.phase = "before"
        self.results: Counter[tuple[str, str, str]] = Counter()  # (phase, path, outcome)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def client(self, number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        sent = 0
        while not self.stop.is_set():
            method, path = self.requests[sent % len(self.requests)]
            phase, section = self.phase, path.split("/")[1]
            target = f"{path}?id={self.run}-{number}-{sent}"  # every request: its own id
            try:
                conn.request(method, target)  # a POST without a body: Content-Length: 0
                response = conn.getresponse()
                response.read()
                outcome = "ok" if response.status == 200 else str(response.status)
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__
                conn.close()
            with self.lock:
                self.results[(phase, section, outcome)] += 1
            sent += 1
        conn.close()

    def count(self, phase: str | None = None) -> int:
        with self.lock:
            return sum(n for (p, _, _), n in self.results.items() if phase in (None, p))

    def wait_for(self, phase: str | None, n: int, seconds: float = 5) -> None:
        deadline = time.monotonic() + seconds
        while self.count(phase) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.count(phase)} answers in phase {phase}")
            time.sleep(0.005)  # polls a counter (answers received), not a fixed wait

    def finish(self) -> dict[str, dict[str, Counter[str]]]:
        """Stop; {section: {phase: Counter(outcome)}}."""
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        table: dict[str, dict[str, Counter[str]]] = {}
        for (phase, section, outcome), n in self.results.items():
            table.setdefault(section, {}).setdefault(phase, Counter())[outcome] += n
        return table


# --8<-- [end:load]


# --8<-- [start:kill]
def kill_under_load(
    haproxy: Haproxy,
    backends: dict[str, Backend],
    requests: list[tuple[str, str]],
    drain: str | None = None,
    after: int = 100,
    command: bool = True,
) -> dict[str, dict[str, object]]:
    """Load through HAProxy; then b2 dies with one request of each kind held in flight
    (or, with `drain`, is first drained in that backend section — `command=False`: the
    control, the same waits without the drain command — and killed once nothing is in
    flight and 60 more answers came). The load goes on until every section has marked b2
    DOWN ("the check window"), then for `after` more answers. b2 is started again at the
    end. Returns {section: {"failed", "sent", "failed_after", "sent_after", "twice",
    "kinds"}}; with `drain`, also "status" (b2's in `show stat` before the kill) and
    "b2_drained" (requests that reached b2 in those 60 answers)."""
    b2, sections = backends["b2"], sorted({path.split("/")[1] for _, path in requests})
    marks = {name: len(backend.started) for name, backend in backends.items()}
    load = Load(haproxy.port, requests)
    drained: dict[str, object] = {}
    try:
        b2.wait(lambda: len(b2.started) - marks["b2"] >= 20)  # b2 is serving its share
        if drain:
            if command:
                ask(haproxy.admin, f"set server {drain}/b2 state drain")  # the runtime API
            haproxy.wait_until(drain, "b2", lambda row: row["scur"] == "0")
            b2.wait(lambda: len(b2.started) == b2.ended)  # nothing in flight at b2
            reached, answered = len(b2.started), load.count()
            load.wait_for(None, answered + 60)  # 60 more answers while b2 is drained
            drained = {
                "status": haproxy.stats(drain, "b2")["status"],  # DRAIN (or UP)
                "b2_drained": len(b2.started) - reached,
            }
        else:
            b2.hold(*(path for _, path in requests))  # in flight at b2, one per kind
        load.phase = "window"
        b2.kill()
        for section in sections:  # the health checks notice: fall 2 x inter 100 ms
            haproxy.wait_until(section, "b2", lambda row: row["status"].startswith("DOWN"))
        load.phase = "after"
        load.wait_for("after", after)
    finally:
        table = load.finish()
    b2.spawn()
    if drain and command:
        ask(haproxy.admin, f"set server {drain}/b2 state ready")
    for section in sections:
        haproxy.wait_until(section, "b2", lambda row: row["status"] == "UP")
    twice = twice_received(backends, marks)
    result = {}
    for section in sections:
        until = table[section].get("before", Counter()) + table[section].get("window", Counter())
        after_down = table[section].get("after", Counter())
        result[section] = {
            "failed": failed(until),
            "sent": sum(until.values()),
            "failed_after": failed(after_down),
            "sent_after": sum(after_down.values()),
            "twice": twice[section],
            "kinds": {outcome for outcome in until if outcome != "ok"},  # 503, closed…
            **drained,
        }
    return result


def failed(outcomes: Counter[str]) -> int:
    return sum(n for outcome, n in outcomes.items() if outcome != "ok")


def twice_received(backends: dict[str, Backend], marks: dict[str, int]) -> Counter[str]:
    """Per section: requests (by id) that reached an application more than once."""
    seen = Counter(r for n, b in backends.items() for r in b.started[marks[n] :])
    return Counter(r.split("/")[1] for r, times in seen.items() if times > 1)


# --8<-- [end:kill]


def report(title: str, run: dict[str, dict[str, object]]) -> None:
    print(title)
    for section, n in run.items():
        tilde = "~" if n["failed"] else ""  # 0 is exact; other counts vary run to run
        print(
            f"  {section:8}  until DOWN: {tilde}{n['failed']:<3} of ~{n['sent']:<4} failed;"
            f"  after: {n['failed_after']} of ~{n['sent_after']};"
            f"  received twice: {'~' if n['twice'] else ''}{n['twice']}"
        )


def main() -> None:
    with backends_and_haproxy() as (backends, haproxy):  # one HAProxy for every run
        gets = [("GET", "/noretry/work"), ("GET", "/retry/work")]
        report(
            "b2 killed under GET load (closed loop, 4 clients):",
            kill_under_load(haproxy, backends, gets),
        )
        posts = [("POST", "/retry/pay"), ("POST", "/retryall/pay")]
        report("b2 killed under POST load:", kill_under_load(haproxy, backends, posts))
        pay = [("POST", "/retry/pay")]
        drained = kill_under_load(haproxy, backends, pay, drain="retry", after=50)
        report("b2 drained first, then killed, under POST load:", drained)
        control = kill_under_load(haproxy, backends, pay, "retry", after=50, command=False)
        for title, run in (("drained", drained), ("not drained (control)", control)):
            n = run["retry"]
            got = f"{'~' if n['b2_drained'] else ''}{n['b2_drained']}"  # 0 is exact
            print(f"  {title}: b2 {n['status']}, reached by {got} of the 60", end="")
            print(" requests after its sessions reached 0")


if __name__ == "__main__":
    main()
