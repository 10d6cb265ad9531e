"""HTTP/2 by hand: h2's state machine over a plain TCP socket, and every frame it sends.

Run: python snippets/protocols/http2_frames.py
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
)
from h2.exceptions import ProtocolError
from hyperframe.frame import Frame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4: the client's first bytes


# --8<-- [start:frames]
def frame_names(data: bytes) -> list[str]:
    """Name each frame in a buffer: a 9-byte header (length, type, flags, stream id), a body."""
    names = []
    if data.startswith(PREFACE):
        names.append("connection preface")
        data = data[len(PREFACE) :]
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        kind = type(frame).__name__.removesuffix("Frame").upper()
        flags = " ".join(sorted(frame.flags))
        names.append(f"{kind:<9} stream {frame.stream_id}  {length:3} bytes  {flags}".rstrip())
        data = data[9 + length :]
    return names


class FrameLog:
    """The bytes one side wrote, kept so we can list the frames afterwards."""

    def __init__(self) -> None:
        self.data = b""

    def send(self, sock: socket.socket, conn: H2Connection) -> None:
        data = conn.data_to_send()  # h2 never touches the network: we move the bytes
        self.data += data
        sock.sendall(data)


# --8<-- [end:frames]


# --8<-- [start:guard]
class FrameSizeGuard:
    """h2 checks a frame's length only once the whole frame has arrived, so a peer that
    announces a 16 MiB frame would make us buffer 16 MiB first. Check each 9-byte frame
    header as it arrives instead (RFC 9113 §4.2: larger than SETTINGS_MAX_FRAME_SIZE is
    a FRAME_SIZE_ERROR)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.skip, self.header = limit, len(PREFACE), b""

    def ok(self, data: bytes) -> bool:
        while data:
            if self.skip:  # inside the preface or a frame body we already allowed
                taken = min(self.skip, len(data))
                self.skip, data = self.skip - taken, data[taken:]
                continue
            need = 9 - len(self.header)
            self.header, data = self.header + data[:need], data[need:]
            if len(self.header) == 9:
                self.skip, self.header = int.from_bytes(self.header[:3]), b""
                if self.skip > self.limit:
                    return False
        return True


# --8<-- [end:guard]


# --8<-- [start:server]
def serve_connection(sock: socket.socket, log: FrameLog, idle_timeout: float = 5.0) -> None:
    """One HTTP/2 connection: answer every request on its own stream, until GOAWAY."""
    conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()  # the server's SETTINGS frame
    log.send(sock, conn)
    sock.settimeout(idle_timeout)
    guard = FrameSizeGuard(conn.max_inbound_frame_size)  # 16 384 unless we raise it
    while True:
        try:
            data = sock.recv(65535)
        except TimeoutError:  # a silent client: say goodbye instead of waiting forever
            conn.close_connection()
            log.send(sock, conn)
            return
        if not data:
            return
        try:
            events = conn.receive_data(data)
        except ProtocolError:  # not HTTP/2: h2 queues GOAWAY(PROTOCOL_ERROR), except
            log.send(sock, conn)  # for a bad preface, where RFC 9113 §3.4 lets us just close
            return
        if not guard.ok(data):  # h2 holds at most this one read of the oversized frame
            conn.close_connection(error_code=ErrorCodes.FRAME_SIZE_ERROR)
            log.send(sock, conn)
            return
        for event in events:
            if isinstance(event, RequestReceived):
                path = dict(event.headers)[":path"]
                body = f"you asked for {path} on stream {event.stream_id}".encode()
                conn.send_headers(
                    event.stream_id,
                    [(":status", "200"), ("content-length", str(len(body)))],
                )
                conn.send_data(event.stream_id, body, end_stream=True)
            elif isinstance(event, ConnectionTerminated):
                log.send(sock, conn)
                return
        log.send(sock, conn)


# --8<-- [end:server]


# --8<-- [start:listener]
@contextmanager
def h2_server(log: FrameLog, idle_timeout: float = 5.0) -> Iterator[tuple[str, int]]:
    """Listen on 127.0.0.1, port 0; serve one connection at a time in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            with sock:
                serve_connection(sock, log, idle_timeout)

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


# --8<-- [end:listener]


# --8<-- [start:client]
def get_many(address: tuple[str, int], paths: list[str], log: FrameLog) -> dict[int, bytes]:
    """Send every request at once, one stream each, on one connection; collect the bodies."""
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(address, timeout=5) as sock:
        conn.initiate_connection()  # preface + SETTINGS
        bodies: dict[int, bytes] = {}
        for path in paths:
            stream_id = conn.get_next_available_stream_id()  # 1, 3, 5, …: odd = client's
            headers = [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", path),
            ]
            conn.send_headers(stream_id, headers, end_stream=True)
            bodies[stream_id] = b""
        log.send(sock, conn)  # preface, SETTINGS and every HEADERS frame in one write
        done: set[int] = set()
        while len(done) < len(paths):
            data = sock.recv(65535)
            if not data:
                raise ConnectionError("server closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, ResponseReceived):
                    assert dict(event.headers)[":status"] == "200"
                elif isinstance(event, DataReceived):
                    bodies[event.stream_id] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, StreamEnded):
                    done.add(event.stream_id)
            log.send(sock, conn)  # SETTINGS ACK, WINDOW_UPDATE …
        conn.close_connection()  # GOAWAY: no more streams on this connection
        log.send(sock, conn)
        return bodies


# --8<-- [end:client]


def main() -> None:
    client_log, server_log = FrameLog(), FrameLog()
    with h2_server(server_log) as address:
        bodies = get_many(address, ["/a", "/b", "/c"], client_log)
    for stream_id, body in bodies.items():
        print(f"stream {stream_id}: {body.decode()}")
    print(f"\nclient -> server, {len(client_log.data)} bytes:")
    for name in frame_names(client_log.data):
        print("  " + name)
    print(f"server -> client, {len(server_log.data)} bytes:")
    for name in frame_names(server_log.data):
        print("  " + name)


if __name__ == "__main__":
    main()
