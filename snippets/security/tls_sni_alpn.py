"""SNI and ALPN with Python's ssl: one server on one port picks its certificate by the
server_name the client sent (sni_callback), and client and server agree on an application
protocol (ALPN); the verifying client proves which certificate it got.

Run: python snippets/security/tls_sni_alpn.py
"""

from __future__ import annotations

import re
import socket
import ssl
import threading

import trustme

TIMEOUT = 5.0


# --8<-- [start:server]
def sni_server_context(
    ca: trustme.CA, names: list[str], alpn: list[str], seen: list[str | None]
) -> ssl.SSLContext:
    """A context per name, each holding that name's certificate; the first is the default.
    The callback runs during the handshake, after the ClientHello, before the certificate
    is sent, and swaps the connection's context for the one of the requested name. ALPN
    is chosen from the context in place after the swap: every context needs the list."""
    by_name = {}
    for name in names:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(ctx)
        ctx.set_alpn_protocols(alpn)  # the server's order of preference
        by_name[name] = ctx
    default = by_name[names[0]]

    def pick(tls: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        seen.append(server_name)
        if server_name in by_name:
            tls.context = by_name[server_name]
        # an unknown name keeps the default certificate (returning an alert number refuses)

    default.sni_callback = pick
    return default


# --8<-- [end:server]


# --8<-- [start:client]
def connect(server: ssl.SSLContext, ca: trustme.CA, name: str, alpn: list[str]) -> str:
    """Connect asking for `name` and offering `alpn`; say what was agreed (or refused)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    client.set_alpn_protocols(alpn)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        raw, _ = listener.accept()
        try:
            with server.wrap_socket(raw, server_side=True) as tls:
                tls.recv(1)  # until the client closes
        except (ssl.SSLError, OSError):
            pass  # the client refused our certificate: its side says why

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        raw = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        with client.wrap_socket(raw, server_hostname=name) as tls:
            cert = tls.getpeercert()
            sans = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
            return f"certificate for {sans}, ALPN {tls.selected_alpn_protocol()!r}"
    except ssl.SSLCertVerificationError as error:
        return "refused: " + re.sub(r" \(_ssl\.c:\d+\)$", "", error.verify_message)
    finally:
        thread.join(TIMEOUT)
        listener.close()


# --8<-- [end:client]


# --8<-- [start:main]
def demo() -> list[tuple[str, str, str]]:
    ca, seen = trustme.CA(), []
    server = sni_server_context(ca, ["app.test", "api.test"], ["h2", "http/1.1"], seen)
    rows = []
    for name, alpn in [
        ("app.test", ["http/1.1"]),
        ("api.test", ["http/1.1", "h2"]),
        ("other.test", ["h2"]),
        ("api.test", ["spdy/3"]),
    ]:
        got = connect(server, ca, name, alpn)
        rows.append((f"SNI {name}, offers {alpn}", f"server saw {seen[-1]!r}", got))
    return rows


# --8<-- [end:main]


def main() -> None:
    for asked, seen, got in demo():
        print(f"{asked}\n  {seen}; client got {got}")


if __name__ == "__main__":
    main()
