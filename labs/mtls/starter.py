"""Lab: mTLS between two services (docs/security/lab-mtls.md).

Fill in the TODOs stage by stage; after each, run the stages against this file:

Run:   make lab LAB=mtls FILE=labs/mtls/starter.py
Serve: python labs/mtls/starter.py serve --port 0 --cert server.pem --client-ca ca.pem \
           --allow /orders=orders.internal
Call:  python labs/mtls/starter.py call --connect 127.0.0.1:<port> --name orders-api.test \
           --ca ca.pem --cert client.pem /orders

Copy it first if you like (cp labs/mtls/starter.py my_service.py) and pass FILE=.
Keep the contract the stages rely on: `serve` binds 127.0.0.1 on the port given (0: a free
one) and prints `listening on 127.0.0.1:<port>` before serving; a PEM file given to
--cert holds a private key and its certificate chain (leaf first); the protocol is one
line each way, `GET <path>\\n` answered `<status> <text>\\n`. Only the standard library
is needed. Verification stays on everywhere: the lab is about making it pass.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading

HOST = "127.0.0.1"
TIMEOUT = 1.0  # seconds for the handshake and for the request line, each (stage 6)
MAX_REQUEST = 1024  # bytes of a request line, newline included; more gets 400 (stage 6)
OPEN_PATHS = {"/health"}  # any authenticated client may call these (stage 4)


def answer(request: bytes, names: set[str], allow: dict[str, set[str]]) -> bytes:
    """The answer line for one request from a client with these identities."""
    method, _, path = request.decode("ascii", "replace").strip().partition(" ")
    if method != "GET" or path not in allow and path not in OPEN_PATHS:
        return b"404 Not Found\n"
    # TODO stage 4: 200 only if the path is open or one of `names` is allowed for it;
    #   otherwise 403. The names come from the client certificate's subjectAltName
    #   (getpeercert()), never from its subject's commonName.
    return f"200 OK {path}\n".encode()


def handle(sock: socket.socket, allow: dict[str, set[str]]) -> None:
    # TODO stage 1: wrap the connection in TLS (an ssl.SSLContext for the server side,
    #   with the certificate chain and key from --cert) before reading anything.
    # TODO stage 3: require a client certificate from --client-ca (verify_mode).
    # TODO stage 6: TIMEOUT for the handshake and the request, the handshake in this
    #   connection's thread, 400 for a request line over MAX_REQUEST bytes; and when you
    #   refuse, close so that the client still reads your TLS alert.
    with sock:
        request = sock.recv(MAX_REQUEST)
        if request:
            sock.sendall(answer(request, set(), allow))


def serve(args: argparse.Namespace) -> None:
    allow: dict[str, set[str]] = {}
    for rule in args.allow:
        path, _, name = rule.partition("=")
        allow.setdefault(path, set()).add(name)
    # TODO stage 5: on SIGHUP, build a new context from --cert and --client-ca as the
    #   files are now, use it for new connections, and print "reloaded".
    listener = socket.create_server((HOST, args.port))
    print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=handle, args=(sock, allow), daemon=True).start()


def call(args: argparse.Namespace) -> int:
    """Send `GET <path>` to the server at --connect and print its answer line."""
    # TODO stage 2: TLS, trusting only --ca, verifying the server's certificate for
    #   --name (not for the address you connect to), presenting --cert. When the server's
    #   certificate is refused, print why (the error's verify_message) and return 1.
    host, _, port = args.connect.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET {args.path}\n".encode())
        print(sock.recv(4096).decode().strip())
    return 0


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
