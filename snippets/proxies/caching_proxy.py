"""Real NGINX `proxy_cache` in front of an origin that counts what reaches it: MISS, HIT and
EXPIRED; the cache key; Vary; what a shared cache refuses to store; and stampedes: on a new
entry with and without `proxy_cache_lock`, on an expired one with and without
`proxy_cache_use_stale updating`.

Run: python snippets/proxies/caching_proxy.py
Needs: NGINX_BIN
"""

from __future__ import annotations

import http.client
import math
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template

CONF = Path(__file__).parent / "nginx" / "cache.conf"
MAX_AGE = 1  # seconds: the first answer for .../news and .../hot is fresh this long
CLIENTS = 10  # concurrent clients in the stampede


# --8<-- [start:origin]
class Origin(ThreadingHTTPServer):
    """The origin: answers by the last path segment and counts every request it receives.
    Most answers are fresh for 60 s; the first answer for .../news and .../hot only for
    MAX_AGE s, so the demo can watch it expire (and a refreshed copy cannot expire again
    while a busy machine runs the demo). While `gate` is clear, requests for .../hot and
    .../new wait for it (a slow origin that the demo releases when it is ready, not after
    a guess)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.seen: Counter[str] = Counter()  # request target -> requests received
        self.changed = threading.Condition()
        self.gate = threading.Event()
        self.gate.set()
        self.held: set[str] = set()  # X-Client of each request waiting at the gate

    def count(self, target: str) -> None:
        with self.changed:
            self.seen[target] += 1
            self.changed.notify_all()


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Origin

    def do_GET(self) -> None:
        self.server.count(self.path)
        n = self.server.seen[self.path]  # this is the n-th request for this target
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        short = name in ("news", "hot") and n == 1
        headers = {"Cache-Control": f"max-age={MAX_AGE if short else 60}"}
        body = f"{self.path} version {n}"
        if self.path.startswith("/swr/"):  # the origin asks for RFC 5861 itself
            headers["Cache-Control"] += ", stale-while-revalidate=60"
        if name in ("hot", "new") and not self.server.gate.is_set():
            client = self.headers.get("X-Client", "")  # NGINX passes request headers on
            with self.server.changed:
                self.server.held.add(client)
                self.server.changed.notify_all()
            self.server.gate.wait(timeout=5)  # held while the demo lines up its clients
            with self.server.changed:
                self.server.held.discard(client)
        elif name == "vary":
            headers["Vary"] = "Accept-Language"
            body = f"in {self.headers.get('Accept-Language')}, version {n}"
        elif name == "vary-flavor":  # a header NGINX does not normalise
            headers["Vary"] = "X-Flavor"
            body = f"flavor {self.headers.get('X-Flavor')}, version {n}"
        elif name == "aged":  # as if it came from a cache further up, 30 s ago
            headers["Age"] = "30"
        elif name == "vary-star":
            headers["Vary"] = "*"
        elif name == "plain":
            headers = {}  # says nothing about caching
        elif name == "private":
            headers["Cache-Control"] = "private, max-age=60"
        elif name in ("no-store", "no-cache"):
            headers["Cache-Control"] = name
        elif name == "login":
            headers["Set-Cookie"] = f"session=user{n}"
        elif name == "account":
            # max-age=60 only: no public, s-maxage or must-revalidate
            body = f"account page of {self.headers.get('Authorization')}"
        data = body.encode()
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


# --8<-- [end:origin]


# --8<-- [start:nginx]
# running_nginx() is the function of snippets/servers/lb_nginx.py, copied (snippets do not
# import each other); the NGINX page of chapter 2 explains its four details.
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


@contextmanager
def running_nginx(conf: Path, **values: str) -> Iterator[str]:
    """NGINX in the foreground, prefix in a temp dir; yields its base URL. Ready when it
    logs "start worker processes"; a taken port means: retry with another."""
    nginx = find_nginx()
    with tempfile.TemporaryDirectory() as prefix:
        os.chmod(prefix, 0o755)  # as root, workers run as "nobody" and must reach cache/
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
            lines: queue.Queue[str] = queue.Queue()
            log: list[str] = []

            def drain(stream=proc.stderr, lines=lines, log=log) -> None:
                for line in stream:  # read the log so NGINX never blocks on a full pipe
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
                    yield f"127.0.0.1:{port}"
                    return
                if not line:
                    raise RuntimeError("nginx exited:\n" + "\n".join(log))
            finally:
                proc.terminate()  # SIGTERM: the master stops its workers and cache manager
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        raise RuntimeError("no free port after 5 attempts")


# --8<-- [end:nginx]


# --8<-- [start:client]
def get(address: str, target: str, **headers: str) -> tuple[str, str, dict[str, str]]:
    """GET through NGINX: (X-Cache-Status, body, response headers)."""
    conn = http.client.HTTPConnection(address, timeout=5)
    try:
        conn.request("GET", target, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, (response.status, body)
        return response.getheader("X-Cache-Status", "-"), body, dict(response.getheaders())
    finally:
        conn.close()


def wait_for_expiry(stored_before: float) -> None:
    """Sleep until an entry stored before `stored_before` (wall clock) with max-age=MAX_AGE
    is expired for NGINX, which counts in whole seconds: stored during second s, it is
    valid until s + MAX_AGE and stale once its clock reads s + MAX_AGE + 1. This waits for
    the clock itself (what expiry is), not for a server to be ready."""
    stale_at = math.floor(stored_before) + MAX_AGE + 1 + 0.05
    time.sleep(max(0.0, stale_at - time.time()))


# --8<-- [end:client]


# --8<-- [start:basics]
def basics(nginx: str, origin: Origin) -> list[tuple[str, str, str, int]]:
    """Rows of (what was asked, X-Cache-Status, body, requests the origin got for it)."""
    rows = []

    def ask(label: str, target: str, **headers: str) -> None:
        status, body, _ = get(nginx, target, **headers)
        rows.append((label, status, body, origin.seen[target]))

    ask("GET /page", "/page")
    ask("GET /page again", "/page")
    ask("GET /page?utm=mail", "/page?utm=mail")  # another key: a separate entry
    ask("GET /by-path/search?q=cats", "/by-path/search?q=cats")
    ask("GET /by-path/search?q=dogs", "/by-path/search?q=dogs")  # key without the query
    for lang in ("en", "de", "en", "de"):
        ask(f"GET /vary, Accept-Language: {lang}", "/vary", Accept_Language=lang)
    for _ in range(2):
        ask("GET /vary-star", "/vary-star")
    for _ in range(2):
        ask("GET /plain (no Cache-Control)", "/plain")
    for _ in range(2):
        ask("GET /private", "/private")
    for _ in range(2):
        ask("GET /no-store", "/no-store")
    return rows


def shared_cache_leaks(nginx: str, origin: Origin) -> list[tuple[str, str, str, int]]:
    """Responses meant for one user: who else gets them from the shared cache?"""
    rows = []
    for user in ("alice", "bob"):
        status, _, headers = get(nginx, "/login", Cookie=f"user={user}")
        rows.append((f"{user}: GET /login", status, headers["Set-Cookie"], origin.seen["/login"]))
    for user in ("alice", "bob"):
        status, _, headers = get(nginx, "/ignore-cookie/login", Cookie=f"user={user}")
        seen = origin.seen["/ignore-cookie/login"]
        rows.append((f"{user}: GET /ignore-cookie/login", status, headers["Set-Cookie"], seen))
    for target in ("/account", "/auth-safe/account"):  # the second: the NGINX-side fix
        for user in ("alice", "bob"):
            status, body, _ = get(nginx, target, Authorization=f"Bearer {user}")
            rows.append((f"{user}: GET {target}", status, body, origin.seen[target]))
    return rows


# --8<-- [end:basics]


# --8<-- [start:stampede]
def in_progress(nginx: str) -> int:
    """Requests NGINX is working on ("Writing" in stub_status), not counting this one. Its
    one worker handles a request up to its cache lock or its request to the origin before
    it reads the next, so a request counted here has already made that choice."""
    conn = http.client.HTTPConnection(nginx, timeout=5)
    try:
        conn.request("GET", "/nginx-status")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(text.split("Writing: ")[1].split()[0]) - 1


def stampede(nginx: str, origin: Origin, target: str) -> tuple[int, Counter[str], str]:
    """CLIENTS concurrent GETs of one entry while the origin holds its answer. Returns
    (requests the origin received for it, the clients' X-Cache-Status counts, the
    X-Cache-Status of the next request once the answer is stored).

    The origin is released once every client has its answer, or once a client's own
    request is waiting at the origin (NGINX passes each client's X-Client header on; a
    background update carries the header of a client already answered) AND NGINX is
    working on every client not yet answered: each of those is then either on its way to
    the origin or waiting inside NGINX (for proxy_cache_lock), and nothing more can happen
    until the origin answers. (5 s without that releases it anyway, and the counts are
    then whatever arrived: a test would see it.)"""
    before = origin.seen[target]
    answered = Counter[str]()
    origin.gate.clear()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(get, nginx, target, X_Client=str(i)) for i in range(CLIENTS)]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            waiting = [str(i) for i, f in enumerate(futures) if not f.done()]
            if not waiting:
                break
            with origin.changed:
                held = origin.held & set(waiting)
            if held and in_progress(nginx) >= len(waiting):
                break
            time.sleep(0.005)  # polls NGINX's and the origin's own state
        origin.gate.set()
        for future in futures:
            answered[future.result()[0]] += 1
    # A background update may still be on its way to the origin or writing its file: until
    # it is stored, a request still gets the stale copy (UPDATING, no origin request).
    deadline = time.monotonic() + 3
    while (status := get(nginx, target)[0]) == "UPDATING" and time.monotonic() < deadline:
        time.sleep(0.01)  # polls the cache's own state, as a client would see it
    return origin.seen[target] - before, answered, status


# --8<-- [end:stampede]


# --8<-- [start:main]
def main() -> None:
    with Origin() as origin:
        threading.Thread(target=origin.serve_forever, args=(0.05,), daemon=True).start()
        try:
            run(origin)
        finally:
            origin.gate.set()
            origin.shutdown()


def run(origin: Origin) -> None:
    with running_nginx(CONF, ORIGIN=f"127.0.0.1:{origin.server_address[1]}") as nginx:
        print(f"{'request':38} {'cache':8} {'origin got':>10}  body")
        for label, status, body, seen in basics(nginx, origin):
            print(f"{label:38} {status:8} {seen:>10}  {body}")

        print("\nResponses for one user, through the shared cache:")
        for label, status, detail, seen in shared_cache_leaks(nginx, origin):
            print(f"{label:38} {status:8} {seen:>10}  {detail}")

        print(f"\nStored with max-age={MAX_AGE}, asked again once that has passed:")
        status, body, _ = get(nginx, "/news")
        print(f"{'GET /news':38} {status:8} {origin.seen['/news']:>10}  {body}")
        for target in ("/hot", "/lock/hot", "/stale/hot"):  # stored for the stampede below
            get(nginx, target)
        wait_for_expiry(time.time())
        for _ in range(2):
            status, body, _ = get(nginx, "/news")
            print(f"{'GET /news':38} {status:8} {origin.seen['/news']:>10}  {body}")

        for what, runs in (
            ("an entry not stored yet", (("/new", "defaults"), ("/lock/new", "lock"))),
            (
                "an expired entry",
                (("/hot", "defaults"), ("/lock/hot", "lock"), ("/stale/hot", "stale")),
            ),
        ):
            print(f"\n{CLIENTS} clients at once on {what} (the origin holds its answer):")
            print(f"{'setting':32} {'origin got':>10}  {'clients saw':24} next")
            for target, setting in runs:
                arrived, statuses, then = stampede(nginx, origin, target)
                counts = sorted(statuses.items(), key=lambda item: (item[1], item[0]))
                listed = ", ".join(f"{n} {status}" for status, n in counts)
                print(f"{SETTINGS[setting]:32} {arrived:>10}  {listed:24} {then}")


SETTINGS = {
    "defaults": "defaults",
    "lock": "proxy_cache_lock on",
    "stale": "use_stale updating + background",
}


# --8<-- [end:main]


if __name__ == "__main__":
    main()
