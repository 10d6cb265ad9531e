"""TLS 1.3 vs 1.2 round trips, counted on the wire: a TCP relay between a Python ssl client
and server records every chunk with its direction, and the flights (runs of one direction)
before the client's first application byte are counted — full and resumed handshakes.

Run: python snippets/security/tls_round_trips.py
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

import trustme

TIMEOUT = 5.0


# --8<-- [start:relay]
class Relay:
    """A TCP relay on 127.0.0.1 in front of `target`: it records each chunk it reads,
    with its direction, before forwarding it. The handshake is lock-step (no side sends
    until it has the other's flight), so the order of the records is the order on the wire."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.chunks: list[tuple[str, bytes]] = []  # ("C>S" or "S>C", bytes)
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.target), timeout=TIMEOUT)
        for src, dst, way in ((client, server, "C>S"), (server, client, "S>C")):
            threading.Thread(target=self._pump, args=(src, dst, way), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    self.chunks.append((way, data))  # recorded before it is forwarded
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def flights(self) -> list[tuple[str, bytes]]:
        """Consecutive chunks in one direction joined: one flight each."""
        out: list[tuple[str, bytes]] = []
        with self.lock:
            for way, data in self.chunks:
                if out and out[-1][0] == way:
                    out[-1] = (way, out[-1][1] + data)
                else:
                    out.append((way, data))
        return out

    def close(self) -> None:
        self.listener.close()


# --8<-- [end:relay]


# --8<-- [start:records]
HANDSHAKE = {1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket", 11: "Certificate",
             12: "ServerKeyExchange", 14: "ServerHelloDone", 16: "ClientKeyExchange"}  # fmt: skip


def records(flight: bytes, encrypted: bool) -> list[str]:
    """Name the TLS records of one flight (RFC 8446 §5.1, RFC 5246 §6.2.1): plaintext
    handshake messages by their type; anything after ChangeCipherSpec, and every
    application_data record (how TLS 1.3 sends its encrypted handshake), as encrypted."""
    names, pos = [], 0
    while pos + 5 <= len(flight):
        kind, length = flight[pos], int.from_bytes(flight[pos + 3 : pos + 5], "big")
        body = flight[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if kind == 20:
            names.append("ChangeCipherSpec")
            encrypted = True
        elif kind == 22 and not encrypted:
            at = 0
            while at + 4 <= len(body):  # one record may hold several handshake messages
                names.append(HANDSHAKE.get(body[at], f"handshake {body[at]}"))
                at += 4 + int.from_bytes(body[at + 1 : at + 4], "big")
        else:
            names.append({21: "alert", 22: "handshake", 23: "app_data"}.get(kind, "?") + "*")
    return names


# --8<-- [end:records]


@dataclass
class Handshake:
    version: str
    resumed: bool
    flights: list[tuple[str, list[str]]]  # (direction, record names), in wire order
    round_trips: int  # server flights the client waited for before its first app byte


# --8<-- [start:count]
def run_once(
    server: ssl.SSLContext, client: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[Handshake, ssl.SSLSession | None]:
    """One connection through a relay: handshake, send b"ping", read b"pong"; then count.
    The transcript ends client(ping) -> server(pong), so every earlier server flight is a
    round trip the client waited for before it could send application data."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    relay = Relay(listener.getsockname()[1])

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with server.wrap_socket(raw, server_side=True) as tls:
                tls.sendall(b"pong" if tls.recv(4) == b"ping" else b"????")
                tls.recv(1)  # until the client closes
        except (ssl.SSLError, OSError):
            pass  # the client gave up: its side raised why

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        raw = socket.create_connection(("127.0.0.1", relay.port), timeout=TIMEOUT)
        with client.wrap_socket(raw, server_hostname="app.test", session=session) as tls:
            tls.sendall(b"ping")
            assert tls.recv(4) == b"pong"
            flights = relay.flights()  # all of it: the client has read the server's reply
            version, resumed, ticket = tls.version(), tls.session_reused, tls.session
    finally:
        thread.join(TIMEOUT)
        relay.close()
        listener.close()
    wire, encrypted = [], {"C>S": False, "S>C": False}
    for way, data in flights:
        names = records(data, encrypted[way])
        encrypted[way] = encrypted[way] or "ChangeCipherSpec" in names
        wire.append((way, names))
    assert [w for w, _ in wire[-2:]] == ["C>S", "S>C"], wire  # ...ping, then pong
    waited = sum(1 for way, _ in wire[:-2] if way == "S>C")
    return Handshake(version or "?", resumed, wire, waited), ticket


# --8<-- [end:count]


# --8<-- [start:contexts]
def contexts(ca: trustme.CA, version: ssl.TLSVersion) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("app.test").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    client.minimum_version = client.maximum_version = version  # only this version
    return server, client


def compare() -> dict[str, Handshake]:
    """Full and resumed handshakes in TLS 1.2 and 1.3, and the control for resumption:
    a session offered to a server context that did not issue it (a new ticket key)."""
    ca, out = trustme.CA(), {}
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        server, client = contexts(ca, version)
        name = "TLS 1.2" if version == ssl.TLSVersion.TLSv1_2 else "TLS 1.3"
        # A TLS 1.3 server sends its tickets after the handshake (RFC 8446 §4.6.1), in a
        # flight of their own that the client does not wait for. Counted connections get
        # none (num_tickets = 0, TLS 1.3 only), so their transcripts stay lock-step.
        server.num_tickets = 0
        out[f"{name} full"], _ = run_once(server, client)
        server.num_tickets = 2  # Python's default: this connection brings a ticket home
        _, ticket = run_once(server, client)
        server.num_tickets = 0
        out[f"{name} resumed"], _ = run_once(server, client, ticket)
        stranger, _ = contexts(ca, version)  # same CA, another context: another ticket key
        stranger.num_tickets = 0
        out[f"{name}, session offered to a new server context"], _ = run_once(
            stranger, client, ticket
        )
    return out


# --8<-- [end:contexts]


def main() -> None:
    for name, hs in compare().items():
        print(f"{name}: {hs.version}, session_reused={hs.resumed}, ", end="")
        print(f"{hs.round_trips} round trip(s) before the first application byte")
        for way, names in hs.flights:
            print(f"  {way.replace('>', ' -> ')}  {', '.join(names)}")
    print("(* encrypted: its content type is all that shows on the wire)")


if __name__ == "__main__":
    main()
