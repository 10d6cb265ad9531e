"""Every way certificate verification fails, each with OpenSSL's own reason: a local CA made
at run time (trustme), a TLS server and a verifying client (Python's ssl) on 127.0.0.1 —
unknown CA, wrong host name, expired, not yet valid, missing intermediate — and the
controls that succeed. Verification is never turned off.

Run: python snippets/security/tls_verify.py
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import trustme

TIMEOUT = 5.0
NOW = dt.datetime.now(dt.UTC)


# --8<-- [start:certs]
def certificates(tmp: Path) -> dict[str, object]:
    """One trusted CA, an intermediate CA under it, and a CA nobody trusts; the server's
    certificates for app.test, each made to fail (or pass) verification one way."""
    ca, stranger = trustme.CA(), trustme.CA()
    intermediate = ca.create_child_ca()
    day = dt.timedelta(days=1)
    return {
        "ca": ca,
        "good": ca.issue_cert("app.test"),
        "stranger": stranger,
        "unknown CA": stranger.issue_cert("app.test"),
        "expired": ca.issue_cert("app.test", not_before=NOW - 30 * day, not_after=NOW - day),
        "not yet valid": ca.issue_cert("app.test", not_before=NOW + day, not_after=NOW + 30 * day),
        "via intermediate": intermediate.issue_cert("app.test"),  # chain: leaf, intermediate
    }


def server_context(
    cert: trustme.LeafCert, tmp: Path, send_chain: bool = True, root: trustme.CA | None = None
) -> ssl.SSLContext:
    """A server context presenting `cert` with the chain trustme made (leaf first, no
    root), or, with send_chain=False, the leaf alone: a server misconfigured to omit its
    intermediate; `root` appends that CA's self-signed certificate to what it sends."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pems = cert.cert_chain_pems if send_chain else cert.cert_chain_pems[:1]
    pems = pems + ([root.cert_pem] if root else [])
    chain = tmp / f"chain-{id(cert)}-{send_chain}-{root is not None}.pem"
    chain.write_bytes(b"".join(p.bytes() for p in pems))
    key = tmp / f"key-{id(cert)}.pem"
    cert.private_key_pem.write_to_path(str(key))
    ctx.load_cert_chain(chain, key)
    return ctx


# --8<-- [end:certs]


# --8<-- [start:client]
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context as Python makes it: PROTOCOL_TLS_CLIENT turns on CERT_REQUIRED and
    check_hostname (TLS 1.2 or later), trusting only our CA, not the system's store."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    return ctx


def reason(error: Exception) -> str:
    """The error's text without CPython's source location ("(_ssl.c:1006)")."""
    return re.sub(r" \(_ssl\.c:\d+\)$", "", str(error))


@dataclass
class Outcome:
    ok: bool
    client: str  # what the client saw: the version, or the verification error
    server: str  # what the server's handshake raised, if anything
    code: int | None = None  # SSLCertVerificationError.verify_code
    message: str | None = None  # SSLCertVerificationError.verify_message


def connect(port: int, ctx: ssl.SSLContext, name: str) -> Outcome:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                tls.sendall(b"ping")
                reply = tls.recv(64)
                version = tls.version()
                with suppress(ssl.SSLError, OSError):
                    tls.unwrap()  # close_notify (RFC 8446 section 6.1): close() sends none
                return Outcome(True, f"{version}, {reply.decode()}", "")
        except ssl.SSLCertVerificationError as error:  # a subclass of ssl.SSLError
            return Outcome(False, reason(error), "", error.verify_code, error.verify_message)


# --8<-- [end:client]


# --8<-- [start:server]
@contextmanager
def tls_server(ctx: ssl.SSLContext, timeout: float = TIMEOUT) -> Iterator[tuple[int, list[str]]]:
    """A TLS server on 127.0.0.1 (ephemeral port), one connection at a time, that answers
    each connection's first message with "pong" and gives each connection `timeout`
    seconds per read; yields its port and the list of errors it saw."""
    errors: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:  # the listener was closed: stop
                return
            with raw:
                raw.settimeout(timeout)
                try:
                    with ctx.wrap_socket(raw, server_side=True) as tls:
                        if tls.recv(64):
                            tls.sendall(b"pong")
                        tls.unwrap()  # close_notify, then the client's (RFC 8446 section 6.1)
                except (ssl.SSLError, OSError) as error:
                    errors.append(reason(error))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], errors
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        listener.close()
        thread.join(TIMEOUT)


# --8<-- [end:server]


def attempt(ctx: ssl.SSLContext, client: ssl.SSLContext, name: str = "app.test") -> Outcome:
    with tls_server(ctx) as (port, errors):
        outcome = connect(port, client, name)
    outcome.server = errors[0] if errors else "handshake completed"
    return outcome


# --8<-- [start:cases]
def cases(tmp: Path) -> dict[str, Outcome]:
    c = certificates(tmp)
    trust = client_context(c["ca"])
    return {
        "control: right CA, right name": attempt(server_context(c["good"], tmp), trust),
        "unknown CA": attempt(server_context(c["unknown CA"], tmp), trust),
        "unknown CA, its root sent": attempt(
            server_context(c["unknown CA"], tmp, root=c["stranger"]), trust
        ),
        "host name mismatch": attempt(server_context(c["good"], tmp), trust, "api.test"),
        "expired": attempt(server_context(c["expired"], tmp), trust),
        "not yet valid": attempt(server_context(c["not yet valid"], tmp), trust),
        "missing intermediate": attempt(
            server_context(c["via intermediate"], tmp, send_chain=False), trust
        ),
        "control: intermediate sent": attempt(server_context(c["via intermediate"], tmp), trust),
    }


# --8<-- [end:cases]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = cases(Path(tmp))
    for name, out in results.items():
        print(f"{name}:")
        if out.ok:
            print(f"  client: verified, {out.client}")
        else:
            print(f"  client: verify_code {out.code}, verify_message {out.message!r}")
            print(f"  client error: {out.client}")
        print(f"  server: {out.server}")


if __name__ == "__main__":
    main()
