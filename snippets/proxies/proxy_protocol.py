"""The PROXY protocol v2 parsed by hand: behind HAProxy in `mode tcp` a backend sees the
proxy's address as its peer; with `send-proxy-v2` it reads the real client from a binary
header, checked against the client's own socket; and it trusts that header only from the
proxy.

Run: python snippets/proxies/proxy_protocol.py
Needs: HAPROXY_BIN
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# --8<-- [start:parse]
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # the 12 bytes that open every v2 header (spec 2.2)
MAX_LENGTH = 512  # our own limit on addresses + TLVs; the spec allows up to 65535


class ProxyHeaderError(ValueError):
    """A header that does not follow the spec: the connection must be closed."""


@dataclass(frozen=True)
class ProxyHeader:
    command: str  # "PROXY" (relayed for a client) or "LOCAL" (the proxy's own, e.g. a check)
    source: tuple[str, int] | None  # the client, as the proxy saw it
    destination: tuple[str, int] | None  # the address the client connected to
    tlvs: dict[int, bytes]  # type -> value (e.g. 0x01 ALPN, 0x02 authority)


def parse_fixed(head: bytes) -> tuple[int, int, int, int]:
    """The 16 fixed bytes: (command, family, transport, length of the rest). Checked before
    reading further, so a sender cannot make us wait for bytes that will never make sense."""
    if len(head) < 16:
        raise ProxyHeaderError(f"need 16 bytes, got {len(head)}")
    if head[:12] != SIGNATURE:
        raise ProxyHeaderError("no PROXY v2 signature")
    version, command = head[12] >> 4, head[12] & 0x0F
    (length,) = struct.unpack("!H", head[14:16])  # network byte order
    if version != 2:
        raise ProxyHeaderError(f"version {version}, expected 2")
    if command not in (0, 1):
        raise ProxyHeaderError(f"unknown command {command}")
    if length > MAX_LENGTH:
        raise ProxyHeaderError(f"length {length} over our limit of {MAX_LENGTH}")
    return command, head[13] >> 4, head[13] & 0x0F, length


def parse_v2(head: bytes) -> tuple[ProxyHeader, int]:
    """Parse a PROXY v2 header at the start of `head`: (the header, bytes it used).
    Raises ProxyHeaderError on anything the spec does not allow; never guesses."""
    command, family, transport, length = parse_fixed(head)
    if len(head) < 16 + length:
        raise ProxyHeaderError(f"header says {length} more bytes, got {len(head) - 16}")
    body = head[16 : 16 + length]
    if command == 0:  # LOCAL: addresses are to be ignored (spec: "the receiver must ... use
        return ProxyHeader("LOCAL", None, None, {}), 16 + length  # the real endpoints")
    if (family, transport) == (0x1, 0x1):  # TCP over IPv4: 4 + 4 + 2 + 2 bytes
        size, width = 12, 4
    elif (family, transport) == (0x2, 0x1):  # TCP over IPv6: 16 + 16 + 2 + 2 bytes
        size, width = 36, 16
    else:
        raise ProxyHeaderError(f"family {family} / transport {transport} not supported here")
    if length < size:
        raise ProxyHeaderError(f"{length} bytes cannot hold the addresses ({size})")
    src = str(ipaddress.ip_address(body[:width]))
    dst = str(ipaddress.ip_address(body[width : 2 * width]))
    src_port, dst_port = struct.unpack("!HH", body[2 * width : size])
    return ProxyHeader("PROXY", (src, src_port), (dst, dst_port), parse_tlvs(body[size:])), (
        16 + length
    )


def parse_tlvs(data: bytes) -> dict[int, bytes]:
    """Type (1 byte), length (2 bytes, network order), value: until the header ends."""
    tlvs = {}
    while data:
        if len(data) < 3:
            raise ProxyHeaderError("truncated TLV")
        kind, size = data[0], struct.unpack("!H", data[1:3])[0]
        if len(data) < 3 + size:
            raise ProxyHeaderError("TLV longer than the header")
        tlvs[kind], data = data[3 : 3 + size], data[3 + size :]
    return tlvs


def build_v2(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A PROXY v2 header for TCP over IPv4 — what a proxy (or a liar) sends."""
    addresses = (
        ipaddress.IPv4Address(source[0]).packed
        + ipaddress.IPv4Address(destination[0]).packed
        + struct.pack("!HH", source[1], destination[1])
    )
    return SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


# --8<-- [end:parse]


# --8<-- [start:backend]
# proxy-protocol.txt §2: the receiver "may apply a short timeout and decide to abort the
# connection if the protocol header is not seen within a few seconds (at least 3 seconds
# to cover a TCP retransmit)".
HEADER_TIMEOUT = 3.0


class Backend:
    """Reads a PROXY v2 header (if `expect_header`) from trusted peers only, then one line
    of application data; records (peer, parsed header or error, data) per connection."""

    def __init__(self, expect_header: bool, trusted: set[str]) -> None:
        self.expect_header, self.trusted = expect_header, trusted
        self.seen: list[tuple[tuple[str, int], ProxyHeader | str, bytes]] = []
        self.done = threading.Semaphore(0)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, peer = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self.serve, args=(conn, peer), daemon=True).start()

    def serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        # One deadline for the whole header, so a sender that drips it a byte at a time is
        # dropped as surely as a silent one (a timeout per recv() would restart each byte).
        deadline = time.monotonic() + HEADER_TIMEOUT
        conn.settimeout(HEADER_TIMEOUT)
        data, result = b"", "no header expected"
        try:
            with conn:
                if self.expect_header and peer[0] not in self.trusted:
                    result = f"refused: {peer[0]} is not a trusted proxy"
                    return
                if self.expect_header:
                    data = self.read_until(conn, data, 16, deadline)  # the fixed part,
                    length = parse_fixed(data)[3]  # checked,
                    data = self.read_until(conn, data, 16 + length, deadline)  # the rest
                    result, used = parse_v2(data)
                    data = data[used:]
                while b"\n" not in data and len(data) < 1024:  # one line of application data
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"ok\n")
        except ProxyHeaderError as error:
            result = f"rejected: {error}"
        except OSError as error:
            result = f"dropped: {error.__class__.__name__}"
        finally:
            self.seen.append((peer, result, data))
            self.done.release()

    @staticmethod
    def read_until(conn: socket.socket, data: bytes, size: int, deadline: float) -> bytes:
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the header did not arrive in time")
            conn.settimeout(left)
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ProxyHeaderError(f"connection closed after {len(data)} header bytes")
            data += chunk
        conn.settimeout(HEADER_TIMEOUT)  # for the application data
        return data

    def last(self) -> tuple[tuple[str, int], ProxyHeader | str, bytes]:
        if not self.done.acquire(timeout=5):
            raise TimeoutError("the backend never finished a connection")
        return self.seen[-1]

    def close(self) -> None:
        self.listener.close()


# --8<-- [end:backend]

# --8<-- [start:config]
CONFIG = """
global
    stats socket {dir}/admin.sock mode 600 level admin
    nbthread 1
defaults
    mode tcp
    timeout connect 2s
    timeout client 5s
    timeout server 5s
listen l4
    bind 127.0.0.1:{port}
    server b 127.0.0.1:{backend} source 127.0.0.2 {send}
"""
PROXY_ADDRESS = "127.0.0.2"  # HAProxy connects to the backend from here (`source`)
CLIENT_ADDRESS = "127.0.0.3"  # and our client from here: all of 127/8 is loopback on Linux
# --8<-- [end:config]


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


# --8<-- [start:run]
def send_from(address: str, port: int, payload: bytes) -> tuple[str, int]:
    """Connect from `address`, send payload, read the answer; returns our own address."""
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.bind((address, 0))
        sock.connect(("127.0.0.1", port))
        me = sock.getsockname()
        try:
            sock.sendall(payload)
            sock.recv(16)  # "ok\n", or b"" when the backend closed on us
        except ConnectionResetError:  # closed with our bytes unread: the kernel sends RST
            pass
        return me


def through_haproxy(send_proxy: bool) -> dict[str, object]:
    """One line through HAProxy; what the client was, and what the backend saw."""
    backend = Backend(expect_header=send_proxy, trusted={PROXY_ADDRESS})
    send = "send-proxy-v2" if send_proxy else ""
    try:
        with running_haproxy(CONFIG, backend=backend.port, send=send) as port:
            client = send_from(CLIENT_ADDRESS, port, b"hello\n")
            peer, header, data = backend.last()
        return {"client": client, "proxy": port, "peer": peer, "header": header, "data": data}
    finally:
        backend.close()


def forged(trusted: set[str]) -> ProxyHeader | str:
    """A client connects straight to a header-reading backend and claims 203.0.113.7."""
    backend = Backend(expect_header=True, trusted=trusted)
    try:
        lie = build_v2(("203.0.113.7", 4444), ("127.0.0.1", backend.port))
        send_from(CLIENT_ADDRESS, backend.port, lie + b"hello\n")
        return backend.last()[1]
    finally:
        backend.close()


def raw_header() -> bytes:
    """The exact bytes HAProxy sends before the client's data, as a backend receives them."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = b""
    try:
        backend = listener.getsockname()[1]
        with (
            running_haproxy(CONFIG, backend=backend, send="send-proxy-v2") as port,
            socket.socket() as client,
        ):
            client.settimeout(5)
            client.bind((CLIENT_ADDRESS, 0))  # the same client as the other runs
            client.connect(("127.0.0.1", port))
            client.sendall(b"hello\n")
            listener.settimeout(5)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                while not received.endswith(b"hello\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        raise ConnectionError(f"closed after {received!r}")
                    received += chunk
        return received[: -len(b"hello\n")]
    finally:
        listener.close()


# --8<-- [end:run]


def main() -> None:
    plain = through_haproxy(send_proxy=False)
    print(f"client {plain['client'][0]} -> HAProxy (mode tcp) -> backend")
    print(f"  without send-proxy-v2 the backend's peer is {plain['peer'][0]} (HAProxy)")
    header = raw_header()
    print(f"  with send-proxy-v2 HAProxy sends {len(header)} bytes before the data:")
    print("    signature   ", header[:12].hex(" "))
    print("    ver/cmd, family/transport, length", header[12:16].hex(" "))
    print("    source and destination address", header[16:24].hex(" "), "+ 4 bytes of ports")
    relayed = through_haproxy(send_proxy=True)
    parsed = relayed["header"]
    assert isinstance(parsed, ProxyHeader)
    print(f"  parsed by hand: {parsed.command} source {parsed.source[0]}", end="")
    print(f" destination {parsed.destination[0]}, TLVs {sorted(parsed.tlvs)}")
    print(
        "  source port = the client's own port:",
        parsed.source[1] == relayed["client"][1],
        "| destination port = HAProxy's:",
        parsed.destination[1] == relayed["proxy"],
        "| data after it:",
        relayed["data"],
    )
    print("a client sends a forged header straight to the backend (claims 203.0.113.7):")
    print(f"  backend trusting only {PROXY_ADDRESS}: {forged({PROXY_ADDRESS})}")
    lied = forged({PROXY_ADDRESS, CLIENT_ADDRESS})
    print(f"  backend trusting any loopback peer: believes {lied.source[0]}")  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
