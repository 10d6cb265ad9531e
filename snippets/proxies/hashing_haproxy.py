"""HAProxy `balance uri` on real backends: adding an 11th server to 10 moves ~1/11 of the
URIs with `hash-type consistent` and most of them with `hash-type map-based` (counted).

Run: python snippets/proxies/hashing_haproxy.py
Needs: HAPROXY_BIN
"""

from __future__ import annotations

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

URIS = [f"/item/{i}" for i in range(500)]

# --8<-- [start:config]
CONFIG = """
global
    stats socket {dir}/admin.sock mode 600 level admin
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
listen web
    bind 127.0.0.1:{port}
    balance uri
    hash-type {hash_type}
{servers}
"""


def server_lines(ports: list[int], new_first: bool = False, pin_ids: bool = False) -> str:
    """s1 … sN, in order: each keeps its position, so its id (1, 2, … by position unless
    pinned with `id`) stays the same when s11 is appended. new_first: s11 goes on top."""
    lines = [
        f"    server s{i} 127.0.0.1:{p}" + (f" id {i}" if pin_ids else "")
        for i, p in enumerate(ports, 1)
    ]
    if new_first and len(lines) == 11:
        lines.insert(0, lines.pop())
    return "\n".join(lines)


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
class Named(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # HAProxy stopping
            super().handle_error(request, client_address)


def start_backends(n: int) -> list[Quiet]:
    servers = []
    for i in range(1, n + 1):
        server = Quiet(("127.0.0.1", 0), Named)
        server.name = f"s{i}"  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
    return servers


def stop_backends(servers: list[Quiet]) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()


# --8<-- [end:backends]


# --8<-- [start:placement]
def placement(hash_type: str, ports: list[int], **order: bool) -> dict[str, str]:
    """Which server answered each URI, through HAProxy with `balance uri`."""
    servers = server_lines(ports, **order)
    with running_haproxy(CONFIG, hash_type=hash_type, servers=servers) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            answered = {}
            for uri in URIS:
                conn.request("GET", uri)
                answered[uri] = conn.getresponse().read().decode()
            return answered
        finally:
            conn.close()


def grow(
    hash_type: str, backends: list[Quiet], before: dict[str, str] | None = None, **order: bool
) -> tuple[float, Counter[str]]:
    """10 servers, then the same 10 plus s11: (fraction of URIs that moved, where to).
    `before`: the placement on the 10 servers, if it is known already."""
    ports = [b.server_address[1] for b in backends]
    before = before or placement(hash_type, ports[:10], **order)
    after = placement(hash_type, ports[:11], **order)
    moved = [uri for uri in URIS if before[uri] != after[uri]]
    return len(moved) / len(URIS), Counter(after[uri] for uri in moved)


# --8<-- [end:placement]


def main() -> None:
    backends = start_backends(11)
    try:
        print(f"{len(URIS)} URIs through HAProxy `balance uri`, 10 -> 11 servers:")
        for hash_type in ("map-based", "consistent"):
            fraction, where = grow(hash_type, backends)
            onto = ", ".join(sorted(where)) if len(where) < 3 else f"{len(where)} servers"
            print(f"  hash-type {hash_type:10}  moved {fraction:.3f}  onto {onto}")
        print("the same, consistent, with s11 inserted FIRST in the server list:")
        ten = placement("consistent", [b.server_address[1] for b in backends[:10]])
        for pin in (False, True):  # with 10 servers, pinned ids are the positional ones
            fraction, where = grow("consistent", backends, ten, new_first=True, pin_ids=pin)
            label = "ids pinned (`id N`)" if pin else "ids by position"
            print(f"  {label:19}  moved {fraction:.3f}  onto {len(where)} server(s)")
    finally:
        stop_backends(backends)


if __name__ == "__main__":
    main()
