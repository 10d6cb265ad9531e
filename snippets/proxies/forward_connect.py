"""A forward proxy's view: a CONNECT tunnel built by hand carries TLS it cannot read; real
Tinyproxy logs the full URL of an http:// request but only `CONNECT host:port` for
https://, and answers 407 without credentials.

Run: python snippets/proxies/forward_connect.py
Needs: TINYPROXY_BIN
"""

from __future__ import annotations

import os
import queue
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme


# --8<-- [start:origins]
def serve_forever(listener: socket.socket, answer: bytes, tls: ssl.SSLContext | None) -> None:
    """An origin server: reads one request head per connection, sends `answer`."""

    def one(conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            stream = tls.wrap_socket(conn, server_side=True) if tls else conn
            with stream:
                head = b""
                while b"\r\n\r\n" not in head and (chunk := stream.recv(65536)):
                    head += chunk
                stream.sendall(answer)
        except (OSError, ssl.SSLError):
            pass

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # closed
            return
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def start_origin(body: bytes, tls: ssl.SSLContext | None = None) -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0))
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
    answer += f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    threading.Thread(target=serve_forever, args=(listener, answer, tls), daemon=True).start()
    return listener


# --8<-- [end:origins]


# --8<-- [start:tunnel]
TIMEOUT = 2.0  # seconds a client has to send its whole request head (a deadline)
MAX_HEAD = 8192  # bytes of request head; more gets 431


class ConnectProxy:
    """A forward proxy that does only CONNECT (RFC 9110 §9.3.6): open a TCP connection to
    the target, answer 200, then copy bytes both ways without reading them. Any other
    method gets 501. It records what it could see."""

    def __init__(self) -> None:
        self.seen: list[str] = []  # request lines
        self.first_tunnel_bytes: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, client: socket.socket) -> None:
        deadline = time.monotonic() + TIMEOUT  # for the whole head, not per recv()
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                try:
                    client.settimeout(max(deadline - time.monotonic(), 0.001))
                    chunk = client.recv(4096)
                except TimeoutError:  # a silent or slow client is dropped, not waited on
                    return
                if not chunk:
                    return
                head += chunk
                if len(head) > MAX_HEAD:
                    client.sendall(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
                    return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.seen.append(line)
            method, target, _ = (line.split(" ") + ["", ""])[:3]
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
                return
            host, colon, port = target.rpartition(":")
            if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
                # authority-form is host:port (RFC 9112 §3.2.3); RFC 9110 §9.3.6: "A server
                # MUST reject a CONNECT request that targets an empty or invalid port number"
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                upstream = socket.create_connection((host, int(port)), timeout=5)
            except TimeoutError:  # RFC 9110 §15.6.5
                client.sendall(b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\n\r\n")
                return
            except OSError:  # refused, unknown host, unreachable: RFC 9110 §15.6.3
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with upstream:
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                self.relay(client, upstream)

    def relay(self, a: socket.socket, b: socket.socket) -> None:
        """Copy bytes both ways until either side closes (or 5 s of silence)."""
        first = True
        while True:
            ready, _, _ = select.select([a, b], [], [], 5)  # idle tunnels close after 5 s
            if not ready:
                return
            for src in ready:
                data = src.recv(65536)
                if not data:
                    return
                if first and src is a:
                    self.first_tunnel_bytes.append(data[:3])
                    first = False
                (b if src is a else a).sendall(data)

    def close(self) -> None:
        self.listener.close()


def https_via_connect(proxy_port: int, origin_port: int, ca: trustme.CA) -> str:
    """CONNECT through the proxy, then TLS to the origin *inside* the tunnel, verified."""
    raw = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
    target = f"localhost:{origin_port}"
    raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = raw.recv(1)  # byte by byte: nothing after the reply may be consumed here
        if not chunk:
            raw.close()
            return f"proxy closed the connection after {reply!r}"
        reply += chunk
    status = reply.split(b"\r\n", 1)[0].decode()
    if " 200 " not in f"{status} ":
        raw.close()
        return status
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /secret HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    return response.split(b"\r\n\r\n", 1)[1].decode()


def plain_via_connect(proxy_port: int, origin_port: int) -> None:
    """The Break it: plain HTTP inside the tunnel. CONNECT hides nothing by itself."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as raw:
        target = f"localhost:{origin_port}"
        raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply and (chunk := raw.recv(1)):
            reply += chunk
        raw.sendall(b"GET /secret HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        while raw.recv(65536):
            pass


# --8<-- [end:tunnel]


# --8<-- [start:tinyproxy]
TINYPROXY_CONF = """
Port {port}
Listen 127.0.0.1
Timeout 5
LogLevel Info
MaxClients 20
Allow 127.0.0.1
{auth}
"""


def find_tinyproxy() -> str:
    found = os.environ.get("TINYPROXY_BIN") or shutil.which("tinyproxy")
    found = found or shutil.which("tinyproxy", path="/usr/sbin:/usr/local/bin:/opt/homebrew/bin")
    if not found:
        sys.exit(
            "tinyproxy is not installed: sudo apt-get install tinyproxy  (macOS: brew install)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_tinyproxy(auth: str = "") -> Iterator[tuple[int, list[str]]]:
    """Tinyproxy in the foreground (-d), logging to stdout; yields (port, its log lines).
    Ready when it logs "Accepting connections"; a port taken meanwhile: retry another."""
    binary = find_tinyproxy()
    with tempfile.TemporaryDirectory() as tmp:
        for _attempt in range(5):
            port = free_port()
            conf = Path(tmp, "tinyproxy.conf")
            conf.write_text(TINYPROXY_CONF.format(port=port, auth=auth))
            proc = subprocess.Popen(
                [binary, "-d", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            log: list[str] = []
            lines: queue.Queue[str] = queue.Queue()

            def drain(stream=proc.stdout, log=log, lines=lines) -> None:
                for line in stream:
                    log.append(line.rstrip())
                    lines.put(line)
                lines.put("")  # it exited

            threading.Thread(target=drain, daemon=True).start()
            try:
                deadline = time.monotonic() + 5
                while "Accepting connections" not in (
                    line := lines.get(timeout=max(0.01, deadline - time.monotonic()))
                ):
                    if not line:
                        break
                else:
                    yield port, log
                    return
                if "in use" not in "\n".join(log):
                    raise RuntimeError("tinyproxy did not start:\n" + "\n".join(log))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        raise RuntimeError("no free port after 5 attempts")


def http_via_proxy(proxy_port: int, url: str, credentials: str = "") -> str:
    """GET an http:// URL through a forward proxy: absolute-form target (RFC 9112 §3.2.2)."""
    host = url.split("/")[2]
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as sock:
        auth = f"Proxy-Authorization: Basic {credentials}\r\n" if credentials else ""
        sock.sendall(
            f"GET {url} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n".encode()
        )
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status, _, rest = response.partition(b"\r\n")
    body = rest.split(b"\r\n\r\n", 1)[-1].decode().strip()
    return status.decode().split(" ", 1)[1] + " | " + body


def requests_logged(log: list[str], expected: int = 0) -> list[str]:
    """The request lines Tinyproxy logged ("Request (file descriptor N): <line>"), after
    waiting (at most 5 s) until there are `expected` of them: it may log after answering."""
    deadline = time.monotonic() + 5
    while True:
        found = [line.split("): ", 1)[1] for line in log if "Request (file descriptor" in line]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.01)  # polls the drained log; the log line is the readiness signal


# --8<-- [end:tinyproxy]


@contextmanager
def origins() -> Iterator[tuple[trustme.CA, int, int]]:
    """An http:// origin and an https:// origin (certificate for localhost, from a CA made
    now): (the CA, plain port, TLS port)."""
    ca = trustme.CA()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(tls)
    plain = start_origin(b"public page\n")
    secure = start_origin(b"secret page\n", tls)
    try:
        yield ca, plain.getsockname()[1], secure.getsockname()[1]
    finally:
        plain.close()
        secure.close()


def main() -> None:
    with origins() as (ca, plain, secure):
        proxy = ConnectProxy()
        try:
            print("hand-built CONNECT proxy:")
            print("  client got:", https_via_connect(proxy.port, secure, ca).strip())
            print("  proxy saw:", proxy.seen, "then bytes starting", proxy.first_tunnel_bytes)
        finally:
            proxy.close()
        with running_tinyproxy() as (port, log):
            print("Tinyproxy:")
            print("  http:// ->", http_via_proxy(port, f"http://localhost:{plain}/page?id=7"))
            print("  https:// ->", https_via_connect(port, secure, ca).strip())
            for line in requests_logged(log, expected=2):
                print("  logged:", line)
        with running_tinyproxy(auth="BasicAuth learner s3cret") as (port, _):
            url = f"http://localhost:{plain}/page"
            print("Tinyproxy with BasicAuth:")
            print("  no credentials ->", http_via_proxy(port, url).split(" | ")[0])
            wrong = http_via_proxy(port, url, "bGVhcm5lcjp3cm9uZw==")  # learner:wrong
            print("  learner:wrong  ->", wrong.split(" | ")[0])
            print(
                "  learner:s3cret ->",
                http_via_proxy(port, url, "bGVhcm5lcjpzM2NyZXQ=").split(" | ")[0],
            )


if __name__ == "__main__":
    main()
