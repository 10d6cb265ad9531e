"""TLS at the proxy, on real HAProxy with certificates made at run time (trustme): with
termination the backend reads `GET /`, with passthrough it reads a TLS record (0x16 0x03),
routed by SNI in `mode tcp` without decrypting; re-encryption; verification always on.

Run: python snippets/proxies/tls_haproxy.py
Needs: HAPROXY_BIN
"""

from __future__ import annotations

import os
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

# --8<-- [start:configs]
TERMINATE = """
frontend https
    mode http
    bind 127.0.0.1:{port} ssl crt {dir}/app.test.pem
    default_backend plain
backend plain
    mode http
    server a 127.0.0.1:{a}
"""
PASSTHROUGH = """
frontend tls
    mode tcp
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 2s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend a if {{ req.ssl_sni -i a.test }}
    use_backend b if {{ req.ssl_sni -i b.test }}
backend a
    mode tcp
    server a 127.0.0.1:{a}
backend b
    mode tcp
    server b 127.0.0.1:{b}
"""
REENCRYPT = """
frontend https
    mode http
    bind 127.0.0.1:{port} ssl crt {dir}/app.test.pem
    option forwardfor
    default_backend tls
backend tls
    mode http
    retries 0  # a failed handshake is final here (a retry waits up to 1 s first)
    server a 127.0.0.1:{a} ssl verify required ca-file {dir}/{ca} sni str(a.test)
"""
COMMON = """
global
    stats socket {dir}/admin.sock mode 600 level admin
    nbthread 1
defaults
    timeout connect 2s
    timeout client 5s
    timeout server 5s
"""
# --8<-- [end:configs]


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


# --8<-- [start:backend]
class Backend:
    """A backend that peeks at the first 5 bytes of each connection before anything else
    reads them, then speaks TLS (with its own certificate) if they are a TLS record, or
    plain HTTP if not, and answers with its name and what it spoke."""

    def __init__(self, name: str, ca: trustme.CA) -> None:
        self.name = name
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(self.tls)
        self.first_bytes: list[bytes] = []
        self.headers: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            first = conn.recv(5, socket.MSG_PEEK | socket.MSG_WAITALL)
            self.first_bytes.append(first)
            stream: socket.socket = conn
            if first[:1] == b"\x16":  # a TLS handshake record: decrypt here
                stream = self.tls.wrap_socket(conn, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = stream.recv(65536)
                if not chunk:
                    return
                head += chunk
            self.headers.append(head.decode("latin-1"))
            body = f"{self.name} over {'TLS' if stream is not conn else 'plain TCP'}".encode()
            stream.sendall(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


# --8<-- [end:backend]


# --8<-- [start:client]
def https_get(port: int, hostname: str, ca: trustme.CA) -> str:
    """GET / over TLS, verifying the certificate against our CA and `hostname` (the
    default context: verification on, hostname checked). Returns the status code and the
    body, e.g. "200 a.test over TLS"."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\n\r\n".encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += tls.recv(65536) or b"\r\n\r\n"
        head, body = response.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            (
                int(v)
                for k, _, v in (h.partition(":") for h in lines[1:])
                if k.lower() == "content-length"
            ),
            0,
        )
        while len(body) < length and (chunk := tls.recv(65536)):
            body += chunk
    return f"{lines[0].split()[1]} {body.decode()}"


@contextmanager
def world() -> Iterator[dict[str, object]]:
    """A CA, HAProxy's certificate for app.test, and backends a.test and b.test."""
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as certs:
        ca.issue_cert("app.test").private_key_and_cert_chain_pem.write_to_path(
            f"{certs}/app.test.pem"
        )
        ca.cert_pem.write_to_path(f"{certs}/ca.pem")
        trustme.CA().cert_pem.write_to_path(f"{certs}/other-ca.pem")  # signed nothing here
        a, b = Backend("a.test", ca), Backend("b.test", ca)
        try:
            yield {"ca": ca, "certs": certs, "a": a, "b": b}
        finally:
            a.close()
            b.close()


def through(config: str, w: dict, hostname: str, ca_file: str = "ca.pem") -> str:
    """One verified HTTPS request through HAProxy running `config`; the body it got."""
    a, b = w["a"], w["b"]
    text = COMMON + config.replace("{dir}/app.test.pem", f"{w['certs']}/app.test.pem")
    text = text.replace("{dir}/{ca}", f"{w['certs']}/{ca_file}")
    with running_haproxy(text, a=a.port, b=b.port) as port:
        return https_get(port, hostname, w["ca"])


# --8<-- [end:client]


def show(first: bytes) -> str:
    """The first bytes a backend read: text, or a TLS record header (type, version; the
    two length bytes that follow depend on the TLS library, so they are not shown)."""
    if first[:1] == b"\x16":
        return " ".join(f"{byte:02x}" for byte in first[:3]) + " = a TLS handshake record"
    return repr(first)


def main() -> None:
    with world() as w:
        a, b = w["a"], w["b"]
        print("termination (mode http, HAProxy holds app.test's key):")
        print("  client got:", through(TERMINATE, w, "app.test"))
        print("  backend a's first bytes:", show(a.first_bytes[-1]))
        print("passthrough (mode tcp, routed on the SNI in the ClientHello):")
        for name, backend in (("a.test", a), ("b.test", b)):
            print(f"  SNI {name}: client got:", through(PASSTHROUGH, w, name))
            print(f"    {backend.name}'s first bytes:", show(backend.first_bytes[-1]))
        print("re-encryption (terminate, then TLS to the backend, verified):")
        print("  client got:", through(REENCRYPT, w, "app.test"))
        print("  backend a's first bytes:", show(a.first_bytes[-1]))
        xff = [h for h in a.headers[-1].split("\r\n") if h.lower().startswith("x-forwarded")]
        print("  and it read, once decrypted:", xff)
        status = through(REENCRYPT, w, "app.test", ca_file="other-ca.pem").split()[0]
        print("re-encryption trusting a CA that did not sign a.test's certificate:", status)


if __name__ == "__main__":
    main()
