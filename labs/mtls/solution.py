"""Lab: mTLS between two services — the reference solution (docs/security/lab-mtls.md).

Serve: python labs/mtls/solution.py serve --port 0 --cert server.pem --client-ca ca.pem \
           --allow /orders=orders.internal
Call:  python labs/mtls/solution.py call --connect 127.0.0.1:<port> --name orders-api.test \
           --ca ca.pem --cert client.pem /orders

A PEM file given to --cert holds the private key and the certificate chain (leaf first).
The protocol is one line each way: `GET <path>\\n`, answered `<status> <text>\\n`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import ssl
import sys
import threading

HOST = "127.0.0.1"
TIMEOUT = 1.0  # seconds for the handshake and for the request line, each (stage 6)
MAX_REQUEST = 1024  # bytes of a request line, newline included; more gets 400 (stage 6)
OPEN_PATHS = {"/health"}  # any authenticated client may call these (stage 4)


# --- the server ---------------------------------------------------------------------------


def server_context(cert: str, client_ca: str) -> ssl.SSLContext:
    """Stage 1: our certificate; stage 3: client certificates required, from client_ca."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(client_ca)
    return ctx


def client_names(tls: ssl.SSLSocket) -> set[str]:
    """Stage 4: the client's identity is the DNS names in its verified certificate's SAN
    (never the subject's Common Name)."""
    cert = tls.getpeercert() or {}
    return {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}


def answer(request: bytes, names: set[str], allow: dict[str, set[str]]) -> bytes:
    method, _, path = request.decode("ascii", "replace").strip().partition(" ")
    if method != "GET" or path not in allow and path not in OPEN_PATHS:
        return b"404 Not Found\n"
    who = ",".join(sorted(names)) or "(no identity)"
    if path in OPEN_PATHS or names & allow[path]:
        return f"200 OK {path} for {who}\n".encode()
    return f"403 Forbidden: {who} may not GET {path}\n".encode()


def linger(sock: socket.socket) -> None:
    """Send FIN, then read until the client closes (or TIMEOUT): closing with its data
    unread would send a RST that can reach the client before our TLS alert does."""
    with sock:
        try:
            sock.settimeout(TIMEOUT)  # a new socket object starts with no timeout
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
        except OSError:
            pass


def read_request(tls: ssl.SSLSocket) -> bytes | None:
    """One request line, or None when it is longer than MAX_REQUEST (stage 6)."""
    request = b""
    while b"\n" not in request:
        if len(request) >= MAX_REQUEST:
            return None
        data = tls.recv(MAX_REQUEST)
        if not data:
            break
        request += data
    return request if len(request) <= MAX_REQUEST else None


def handle(raw: socket.socket, ctx: ssl.SSLContext, allow: dict[str, set[str]]) -> None:
    raw.settimeout(TIMEOUT)  # stage 6: a stalled handshake or request ends here
    tls = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()  # in this connection's thread, never in the accept loop
        request = read_request(tls)
        if request is None:
            tls.sendall(b"400 Bad Request: request line too long\n")
        elif request:
            tls.sendall(answer(request, client_names(tls), allow))
    except (ssl.SSLError, OSError) as error:
        print(f"refused: {error}", file=sys.stderr, flush=True)
    else:
        # RFC 8446 section 6.1: each party MUST send close_notify before closing its write
        # side. close() and detach() do not send it; unwrap() does, then waits (up to
        # TIMEOUT) for the client's close_notify, or its EOF or reset: not our error.
        with contextlib.suppress(ssl.SSLError, OSError):
            tls.unwrap()
    linger(socket.socket(fileno=tls.detach()))  # our answer or alert is sent: now close


def serve(args: argparse.Namespace) -> None:
    allow: dict[str, set[str]] = {}
    for rule in args.allow:
        path, _, name = rule.partition("=")
        allow.setdefault(path, set()).add(name)
    current = {"ctx": server_context(args.cert, args.client_ca)}

    def reload(*_: object) -> None:
        """Stage 5: new connections get a context built from the files as they are now;
        connections in progress keep theirs. A broken file keeps the old context."""
        try:
            current["ctx"] = server_context(args.cert, args.client_ca)
            print("reloaded", flush=True)
        except (ssl.SSLError, OSError) as error:
            print(f"reload failed, keeping the old context: {error}", flush=True)

    signal.signal(signal.SIGHUP, reload)
    listener = socket.create_server((HOST, args.port))
    print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    while True:
        raw, _ = listener.accept()
        ctx = current["ctx"]
        threading.Thread(target=handle, args=(raw, ctx, allow), daemon=True).start()


# --- the client ---------------------------------------------------------------------------


def call(args: argparse.Namespace) -> int:
    """Stage 2: verify the server's chain against --ca and its name against --name (not
    the address we connect to), and present our own certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    ctx.load_verify_locations(args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert)
    host, _, port = args.connect.rpartition(":")
    try:
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=args.name) as tls,
        ):
            tls.sendall(f"GET {args.path}\n".encode())
            print(tls.recv(4096).decode().strip())
            with contextlib.suppress(ssl.SSLError, OSError):
                tls.unwrap()  # our close_notify (RFC 8446 section 6.1), as the server's
            return 0
    except ssl.SSLCertVerificationError as error:
        print(f"refused: {error.verify_message}")
    except (ssl.SSLError, OSError) as error:
        print(f"failed: {error}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True, help="PEM: our key and certificate chain")
    s.add_argument("--client-ca", required=True, help="PEM: the CA(s) clients come from")
    s.add_argument("--allow", action="append", default=[], help="/path=dns.name")
    c = sub.add_parser("call")
    c.add_argument("--connect", required=True, help="127.0.0.1:<port>")
    c.add_argument("--name", required=True, help="the server name to verify")
    c.add_argument("--ca", required=True, help="PEM: the CA(s) we trust for servers")
    c.add_argument("--cert", help="PEM: our key and certificate chain")
    c.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args)
        return 0
    return call(args)


if __name__ == "__main__":
    sys.exit(main())
