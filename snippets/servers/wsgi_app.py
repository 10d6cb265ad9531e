"""A WSGI application written by hand (PEP 3333), called directly, then served by gunicorn.

Run: python snippets/servers/wsgi_app.py
"""

from __future__ import annotations

import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

MAX_BODY = 1024 * 1024  # refuse bodies over 1 MiB with 413
WAIT_SECONDS = 0.05  # /wait sleeps 50 ms: a blocking database call
StartResponse = Callable[[str, list[tuple[str, str]]], object]


# --8<-- [start:app]
def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """PEP 3333: called once per request with the CGI-style `environ` dict; it calls
    start_response(status, headers) and returns an iterable of bytes: the body."""
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if path == "/wait":
        time.sleep(WAIT_SECONDS)  # blocks this worker: it serves nobody else meanwhile
        return respond(start_response, "200 OK", f"waited in pid {os.getpid()}\n")
    if path == "/echo" and method == "POST":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)  # may be empty or absent
        except ValueError:
            return respond(start_response, "400 Bad Request", "bad Content-Length\n")
        if length > MAX_BODY:
            return respond(start_response, "413 Content Too Large", "body too large\n")
        body = environ["wsgi.input"].read(length)  # never read past Content-Length
        return respond(start_response, "200 OK", f"{len(body)} bytes: {body[:40]!r}\n")
    if path == "/":
        return respond(start_response, "200 OK", f"hello from pid {os.getpid()}\n")
    return respond(start_response, "404 Not Found", "no such page\n")


def respond(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# --8<-- [end:app]


# --8<-- [start:by_hand]
def call_by_hand(method: str, path: str, body: bytes = b"") -> tuple[str, list, bytes]:
    """Be the server: build environ, pass start_response, join the body it returns."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    started: list = []
    written: list[bytes] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> Callable:
        if started and not exc_info:  # PEP 3333: a second call only to replace an error page
            raise AssertionError("start_response called twice without exc_info")
        started[:] = [status, headers]  # nothing is sent before we return: it may replace
        return written.append  # write(data): the legacy API, its bytes come first

    chunks = app(environ, start_response)
    try:
        body = b"".join(written) + b"".join(chunks)
    finally:  # PEP 3333: the server must call close() if the iterable has one, even on error
        if hasattr(chunks, "close"):
            chunks.close()
    return started[0], started[1], body


# --8<-- [end:by_hand]


# --8<-- [start:serve]
@contextmanager
def serve(command: list[str], ready_path: str = "/") -> Iterator[tuple[str, int]]:
    """Start a server process on a socket we bound (port 0: no race for a port), wait until
    it answers HTTP, stop it in `finally`."""
    with socket.create_server(("127.0.0.1", 0)) as listener, tempfile.TemporaryFile() as log:
        fd = listener.fileno()
        process = subprocess.Popen(
            [arg.replace("{fd}", str(fd)) for arg in command],
            pass_fds=(fd,),
            stdout=log,
            stderr=log,
        )
        try:
            address = listener.getsockname()
            deadline = time.monotonic() + 15
            while get(address, ready_path, timeout=0.25) is None:  # ready: a real response
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"server did not start:\n{log.read().decode()[-2000:]}")
            yield address
        finally:
            process.send_signal(signal.SIGTERM)  # graceful: finish requests, then exit
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def get(address: tuple[str, int], path: str, timeout: float = 5) -> tuple[int, bytes] | None:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def gunicorn(workers: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        "fd://{fd}",
        "--workers",
        str(workers),
        "--graceful-timeout",
        "2",
        "--chdir",
        str(Path(__file__).parent),
        "wsgi_app:app",
    ]


# --8<-- [end:serve]


def concurrent(address: tuple[str, int], path: str, n: int = 20) -> tuple[float, set[bytes]]:
    """n requests sent at once: (wall seconds, the distinct last words of the bodies)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda _: get(address, path), range(n)))
    seconds = time.perf_counter() - start
    if any(r is None or r[0] != 200 for r in replies):
        raise RuntimeError(f"failed requests: {replies}")
    return seconds, {r[1].split()[-1] for r in replies if r}


def main() -> None:
    status, headers, body = call_by_hand("POST", "/echo", b"hello")
    print(f"by hand:  POST /echo -> {status} {headers} {body!r}")
    print(f"by hand:  GET /nope  -> {call_by_hand('GET', '/nope')[0]}")
    with serve(gunicorn(workers=2)) as address:
        seconds, pids = concurrent(address, "/wait")
        print(
            f"gunicorn: 20 concurrent /wait (each sleeps {WAIT_SECONDS * 1e3:.0f} ms),"
            f" 2 sync workers: {seconds:.2f} s, answered by ~{len(pids)} processes"
        )


if __name__ == "__main__":
    main()
