"""Idle keep-alive connections hold Apache prefork's processes, not event's threads or NGINX.

Each server gets the same budget (8 workers) and 8 clients that make one request and then
sit idle on their keep-alive connection; then a new client asks for a page.

Run: python snippets/servers/apache_mpm.py
Needs: APACHE2_BIN, NGINX_BIN
"""

from __future__ import annotations

import os
import queue
import selectors
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
from pathlib import Path
from string import Template

CONFS = Path(__file__).parent / "nginx"
APACHE_MODULES = "/usr/lib/apache2/modules"  # Debian's apache2 package
SBIN = "/usr/sbin:/usr/local/sbin"


def find(name: str, variable: str, package: str) -> str:
    found = os.environ.get(variable) or shutil.which(name) or shutil.which(name, path=SBIN)
    if not found:
        sys.exit(f"{name} is not installed: sudo apt-get install {package}")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PortTaken(Exception):
    """Another process bound the port between free_port() and the server's bind()."""


@contextmanager
def running(command: list[str], env: dict[str, str], ready: str) -> Iterator[int]:
    """Start a server that logs to stderr; yield its master pid once it logs `ready`.
    Lines saying the port is taken mean we lost a race for it: raise, the caller retries."""
    # Its own process group: on shutdown Apache signals its whole group, which would
    # otherwise include us.
    proc = subprocess.Popen(
        command,
        env={**os.environ, **env},
        text=True,
        process_group=0,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in proc.stderr] + [lines.put("")], daemon=True
    ).start()  # drain stderr so the server never blocks on it
    try:
        deadline = time.monotonic() + 5
        while (line := lines.get(timeout=max(deadline - time.monotonic(), 0.01))) and (
            ready not in line
        ):
            if "Address already in use" in line:
                raise PortTaken(env["PORT"])
        if not line:
            raise RuntimeError(f"{command[0]} exited with {proc.wait()}")
        yield proc.pid
    finally:
        proc.terminate()  # both stop their children on SIGTERM
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the master and every child it left
            proc.wait()


@contextmanager
def server(kind: str, root: str) -> Iterator[tuple[int, int]]:
    """Start "prefork", "event" (Apache) or "nginx" serving root; yield (pid, port)."""
    for _attempt in range(5):
        port, prefix = free_port(), tempfile.mkdtemp()
        os.chmod(prefix, 0o755)
        env = {"PORT": str(port), "PREFIX": prefix, "ROOT": root, "MODULES": APACHE_MODULES}
        if kind == "nginx":
            conf = Template((CONFS / "static.conf").read_text()).safe_substitute(env)
            Path(prefix, "nginx.conf").write_text(conf)
            nginx = find("nginx", "NGINX_BIN", "nginx-light")
            command = [nginx, "-p", prefix, "-c", "nginx.conf", "-e", "stderr"]
            ready = "start worker process"
        else:
            apache = find("apache2", "APACHE2_BIN", "apache2")
            command = [
                apache,
                "-d",
                prefix,
                "-f",
                str(CONFS / "apache.conf"),
                "-D",
                kind,
                "-D",
                "FOREGROUND",
            ]
            ready = "resuming normal operations"
        try:
            with running(command, env, ready) as pid:
                yield pid, port
                return
        except PortTaken:
            continue  # the port was taken between free_port() and the bind: try another
        finally:
            shutil.rmtree(prefix, ignore_errors=True)
    raise RuntimeError("no free port after 5 attempts")


# --8<-- [start:clients]
def process_tree(pid: int) -> list[int]:
    """The pid and all its descendants, from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # FileNotFoundError, ProcessLookupError: it exited while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo += parents.get(current, [])
    return tree


def threads_of(pids: list[int]) -> int:
    """How many threads the processes have; one that exited meanwhile counts none."""
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:  # it exited since process_tree() saw it
            continue
    return total


def request(sock: socket.socket) -> None:
    """One keep-alive GET on an open connection; read the whole (tiny) response."""
    sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
    reply = b""
    while not reply.endswith(b"hello\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response was complete")
        reply += chunk


def new_client_latency(port: int) -> float:
    """Seconds for a brand-new client to connect and get the page."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        request(sock)
    return time.perf_counter() - start


def close_when_server_does(socks: list[socket.socket], stop: threading.Event) -> None:
    """Idle clients behave like browsers: when the server closes, they close too."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map() and not stop.is_set():
            for key, _ in selector.select(timeout=0.05):
                if not key.fileobj.recv(1):  # type: ignore[union-attr]
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]


# --8<-- [end:clients]


# --8<-- [start:measure]
def measure(kind: str, root: str, idle_clients: int = 8) -> dict[str, float]:
    with server(kind, root) as (pid, port), ExitStack() as idle:
        unloaded = statistics.median(new_client_latency(port) for _ in range(5))
        socks = []
        for _ in range(idle_clients):  # one request each, then silence: keep-alive idle
            socks.append(idle.enter_context(socket.create_connection(("127.0.0.1", port), 5)))
            request(socks[-1])
        stop = threading.Event()
        watcher = threading.Thread(target=close_when_server_does, args=(socks, stop))
        watcher.start()
        idle.callback(watcher.join)
        idle.callback(stop.set)
        pids = process_tree(pid)
        loaded = new_client_latency(port)  # the 9th client
        return {
            "processes": len(pids),
            "threads": threads_of(pids),
            "unloaded": unloaded,
            "loaded": loaded,
        }


# --8<-- [end:measure]


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        os.chmod(root, 0o755)
        Path(root, "index.html").write_text("hello\n")
        os.chmod(Path(root, "index.html"), 0o644)
        print("8 workers each; 8 clients hold idle keep-alive connections; a 9th arrives")
        # (timings unpadded at the end of the line: their width varies from run to run)
        print(f"{'server':16} {'processes':>9} {'threads':>7}   a new client's wait: idle / 8 idle")
        results = {}
        for kind, name in [
            ("prefork", "Apache prefork"),
            ("event", "Apache event"),
            ("nginx", "NGINX"),
        ]:
            results[kind] = m = measure(kind, root)
            print(
                f"{name:16} {m['processes']:9} {m['threads']:7}   "
                f"{m['unloaded'] * 1000:.1f} ms / {m['loaded'] * 1000:.1f} ms"
            )
        # One sample each: the absolute waits, not their ratio (a few ms of noise on event's
        # wait would move a ratio tenfold; prefork's ~1 s is the KeepAliveTimeout's)
        print(
            "prefork kept the 9th client waiting until an idle connection's KeepAliveTimeout"
            f" (1 s) freed a process: {results['prefork']['loaded'] * 1000:.1f} ms, against"
            f" {results['event']['loaded'] * 1000:.1f} ms on event (one request each)"
        )


if __name__ == "__main__":
    main()
