"""TCP head-of-line blocking, with real loss: the client's kernel drops the TCP segments
of one HTTP/2 response for 200 ms, and every stream on that connection waits for TCP to
repair the hole; on separate connections, only the stream that lost data waits.

Linux only: the loss comes from a socket filter (SO_ATTACH_FILTER), no root needed.

Run: python snippets/protocols/http2_hol.py
"""

from __future__ import annotations

import asyncio
import ctypes
import socket
import statistics
import struct
import sys
import time

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RemoteSettingsChanged, RequestReceived, StreamEnded

BIG, SMALL = 3000, 20  # body sizes: /big's response is one segment over LIMIT, /small's not
LIMIT = 1000  # the filter drops segments longer than this (TCP header included)
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27  # <asm-generic/socket.h>; Linux only


async def h2_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each request at once, in the order the requests arrived, each response in
    its own write. TCP_NODELAY turns off Nagle's algorithm, so no write waits for an ACK;
    it does not promise one segment per write: under the loss below, Linux sent the nine
    small responses in about two segments."""
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = H2Connection(H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    try:
        while data := await asyncio.wait_for(reader.read(65535), 5):
            for event in conn.receive_data(data):
                if isinstance(event, RequestReceived):
                    size = BIG if dict(event.headers)[b":path"].startswith(b"/big") else SMALL
                    conn.send_headers(event.stream_id, [(":status", "200")])
                    conn.send_data(event.stream_id, b"x" * size, end_stream=True)
                    writer.write(conn.data_to_send())
            writer.write(conn.data_to_send())
    finally:
        writer.close()


# --8<-- [start:loss]
def drop_long_segments(sock: socket.socket) -> ctypes.Array[ctypes.c_char]:
    """Attach a classic BPF filter to a TCP socket: every arriving segment longer than
    LIMIT bytes is discarded by the kernel before TCP sees it — a real loss, which the
    sender must detect and repair. Keep the returned buffer alive while attached."""
    program = [
        (0x80, 0, 0, 0),  # A = length of the segment (BPF_LD | BPF_W | BPF_LEN)
        (0x25, 0, 1, LIMIT),  # if A > LIMIT: go on, else skip one (BPF_JMP | BPF_JGT)
        (0x06, 0, 0, 0),  # return 0: drop it (BPF_RET)
        (0x06, 0, 0, 0xFFFFFFFF),  # return everything: keep it
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return code


def stop_dropping(sock: socket.socket) -> None:
    if sock.fileno() >= 0:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)


def held_out_of_order(sock: socket.socket) -> int:
    """Segments this socket received out of order and held back from the application
    (tcpi_rcv_ooopack, at offset 224 of Linux's struct tcp_info, since Linux 5.4)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return struct.unpack_from("I", info, 224)[0] if len(info) >= 228 else -1


# --8<-- [end:loss]


async def get_all(port: int, paths: list[str], window: float) -> tuple[dict[str, float], int]:
    """GET every path at once on one connection whose large segments are dropped for
    `window` seconds after the requests leave; return each path's completion time, and
    how many segments the client's TCP held back out of order."""
    sock = socket.socket()
    code = drop_long_segments(sock)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    done: dict[int, float] = {}
    streams: dict[int, str] = {}
    async with asyncio.timeout(5):
        while True:  # wait for the server's SETTINGS
            events = conn.receive_data(await reader.read(65535))
            writer.write(conn.data_to_send())
            if any(isinstance(event, RemoteSettingsChanged) for event in events):
                break
        start = time.perf_counter()
        asyncio.get_running_loop().call_later(window, stop_dropping, sock)
        for path in paths:
            streams[stream_id := conn.get_next_available_stream_id()] = path
            request = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost")]
            conn.send_headers(stream_id, [*request, (":path", path)], end_stream=True)
        writer.write(conn.data_to_send())
        while len(done) < len(paths):
            data = await reader.read(65535)
            if not data:
                raise ConnectionError("closed early")
            for event in conn.receive_data(data):
                if isinstance(event, DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, StreamEnded):
                    done[event.stream_id] = time.perf_counter() - start
            writer.write(conn.data_to_send())
    held = held_out_of_order(sock)
    writer.close()
    await writer.wait_closed()
    del code  # the filter program may go now
    return {f"{streams[s]} on stream {s}": t for s, t in done.items()}, held


# --8<-- [start:run]
async def under_loss(
    n: int = 10, window: float = 0.2, separate: bool = False, big: int = 0
) -> tuple[float, list[float], int]:
    """n requests; request number `big` gets the one large response, whose segments the
    client's kernel drops for `window` seconds; the others get small ones that pass.
    All on one HTTP/2 connection, or (separate=True) each on its own connection, every
    one with the same filter. Returns (the large response's time, the others' times, the
    segments held out of order)."""
    paths = [f"/big?{i}" if i == big else f"/small?{i}" for i in range(n)]
    server = await asyncio.start_server(h2_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        if separate:
            runs = await asyncio.gather(*(get_all(port, [path], window) for path in paths))
        else:
            runs = [await get_all(port, paths, window)]
    times = {path.split(" ")[0]: t for run, _ in runs for path, t in run.items()}
    large = times.pop(f"/big?{big}")
    return large, list(times.values()), sum(held for _, held in runs)


# --8<-- [end:run]


def main() -> None:
    if not sys.platform.startswith("linux"):
        raise SystemExit("this snippet needs Linux: its loss comes from a Linux socket filter")
    window, n = 0.2, 10
    print(f"the client's kernel drops every segment over {LIMIT} bytes for"
          f" {window * 1000:.1f} ms: only the {BIG}-byte response's")  # fmt: skip
    for separate in (False, True):
        large, others, held = asyncio.run(under_loss(n, window, separate))
        how = f"{n} connections, 1 stream each" if separate else f"1 connection, {n} streams"
        print(f"{how}: the large response done after {large * 1000:.1f} ms")
        print(
            f"  the other {len(others)}: first {min(others) * 1000:.1f} ms,"
            f" median {statistics.median(others) * 1000:.1f} ms,"
            f" last {max(others) * 1000:.1f} ms"
        )
        print(f"  segments that arrived but were held back out of order: ~{held}")  # fmt: skip


if __name__ == "__main__":
    main()
