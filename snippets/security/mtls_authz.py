"""Mutual TLS with Python's ssl: a server with CERT_REQUIRED refuses a client without a
certificate or with one from another CA (the real error on each side, TLS 1.3 and 1.2),
then authorizes by the client certificate's DNS SAN: orders.internal may GET /orders,
another valid client gets 403.

Run: python snippets/security/mtls_authz.py
"""

from __future__ import annotations

import contextlib
import queue
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import trustme

TIMEOUT = 5.0
MAX_REQUEST = 1024  # bytes of a request line: longer gets 400 and the connection closed


def reason(error: Exception) -> str:
    """The error's text without CPython's source location ("(_ssl.c:1006)")."""
    return re.sub(r" \(_ssl\.c:\d+\)$", "", str(error))


# --8<-- [start:authz]
ALLOWED = {"/orders": {"orders.internal"}}  # path -> client identities (DNS SANs) allowed


def identity(tls: ssl.SSLSocket) -> set[str]:
    """The client's DNS names from its verified certificate (getpeercert() returns {} or
    None only when no certificate was verified; CERT_REQUIRED guarantees there is one)."""
    cert = tls.getpeercert() or {}
    return {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}


def authorize(tls: ssl.SSLSocket, request: bytes) -> bytes:
    method, _, path = request.decode("ascii", "replace").strip().partition(" ")
    if method != "GET" or path not in ALLOWED:
        return b"404 Not Found\n"
    names = identity(tls)
    if names & ALLOWED[path]:
        return f"200 OK: {path} for {sorted(names)[0]}\n".encode()
    return f"403 Forbidden: {sorted(names)} may not GET {path}\n".encode()


# --8<-- [end:authz]


# --8<-- [start:server]
def server_context(server_ca: trustme.CA, client_ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ca.issue_cert("orders-api.test").configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED  # no certificate, or an unverifiable one: refused
    client_ca.configure_trust(ctx)  # only certificates from this CA are clients
    return ctx


def linger(sock: socket.socket) -> None:
    """Close gracefully: send FIN, then read until the client closes (or 1 s). Closing
    with the client's request unread would send a TCP RST, which can reach the client
    before it reads our alert: it would see a reset or an EOF instead of the reason."""
    with sock:
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(1.0)
            while sock.recv(4096):
                pass
        except OSError:
            pass


@contextmanager
def mtls_server(
    ctx: ssl.SSLContext, timeout: float = TIMEOUT
) -> Iterator[tuple[int, queue.Queue[str]]]:
    """One connection at a time on 127.0.0.1: handshake, read one request line (at most
    MAX_REQUEST bytes, within `timeout`), answer, close. Yields its port and a queue that
    gets each connection's outcome once it is over: "-" or the error the server raised."""
    outcomes: queue.Queue[str] = queue.Queue()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            raw.settimeout(timeout)
            tls = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            try:
                tls.do_handshake()
                request = b""
                while b"\n" not in request and len(request) <= MAX_REQUEST:
                    if not (data := tls.recv(MAX_REQUEST + 1)):
                        break
                    request += data
                if len(request) > MAX_REQUEST:
                    tls.sendall(b"400 Bad Request: request line too long\n")
                elif request:
                    tls.sendall(authorize(tls, request))
                outcomes.put("-")
                with contextlib.suppress(ssl.SSLError, OSError):  # the client's EOF or reset
                    tls.unwrap()  # close_notify (RFC 8446 section 6.1): close() sends none
            except (ssl.SSLError, OSError) as error:
                outcomes.put(reason(error))
                linger(socket.socket(fileno=tls.detach()))  # OpenSSL has sent its alert
            finally:
                tls.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], outcomes
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        listener.close()
        thread.join(TIMEOUT)


# --8<-- [end:server]


# --8<-- [start:client]
def call(
    port: int,
    server_ca: trustme.CA,
    cert: trustme.LeafCert | None,
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
    request: bytes = b"GET /orders\n",
) -> tuple[str, str]:
    """(where it ended, what the client read or raised): "handshake" if the handshake
    itself failed, "read" if it completed and the refusal came with the first read."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    server_ca.configure_trust(ctx)
    ctx.minimum_version = ctx.maximum_version = version
    if cert is not None:
        cert.configure_cert(ctx)  # the client's certificate and key
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            tls = ctx.wrap_socket(raw, server_hostname="orders-api.test")
        except ssl.SSLError as error:
            return "handshake", reason(error)
        with tls:
            try:
                tls.sendall(request)
                answer = tls.recv(4096).decode().strip()
            except (ssl.SSLError, OSError) as error:
                return "read", reason(error)
            with contextlib.suppress(ssl.SSLError, OSError):
                tls.unwrap()  # our close_notify, after reading the server's
            return "read", answer


# --8<-- [end:client]


# --8<-- [start:cases]
def cases() -> dict[str, tuple[str, str, str]]:
    """Each case: (where the client saw the outcome, what it saw, what the server logged)."""
    server_ca, client_ca, stranger = trustme.CA(), trustme.CA(), trustme.CA()
    orders = client_ca.issue_cert("orders.internal")
    billing = client_ca.issue_cert("billing.internal")
    impostor = stranger.issue_cert("orders.internal")  # the right name, the wrong CA
    out = {}
    with mtls_server(server_context(server_ca, client_ca)) as (port, outcomes):
        for name, cert, version in [
            ("orders.internal", orders, ssl.TLSVersion.TLSv1_3),
            ("billing.internal (valid, not allowed)", billing, ssl.TLSVersion.TLSv1_3),
            ("no certificate, TLS 1.3", None, ssl.TLSVersion.TLSv1_3),
            ("no certificate, TLS 1.2", None, ssl.TLSVersion.TLSv1_2),
            ("orders.internal from another CA, TLS 1.3", impostor, ssl.TLSVersion.TLSv1_3),
            ("orders.internal from another CA, TLS 1.2", impostor, ssl.TLSVersion.TLSv1_2),
        ]:
            where, what = call(port, server_ca, cert, version)
            out[name] = (where, what, outcomes.get(timeout=TIMEOUT))
    return out


# --8<-- [end:cases]


def main() -> None:
    for name, (where, what, server) in cases().items():
        print(f"{name}:\n  client ({where}): {what}\n  server: {server}")


if __name__ == "__main__":
    main()
