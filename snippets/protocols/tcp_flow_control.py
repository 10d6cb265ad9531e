"""TCP flow control: a reader that stops reading stops the writer, after a bounded amount.

Run: python snippets/protocols/tcp_flow_control.py
"""

from __future__ import annotations

import select
import socket
import struct
import time

CHUNK = 4096
SNDBUF = 16 << 10  # small and fixed, so the reader's buffer decides how much fits


def connected_pair(rcvbuf: int) -> tuple[socket.socket, socket.socket]:
    """A TCP connection on loopback with fixed buffer sizes (no autotuning).

    SO_RCVBUF is set on the listener so the accepted socket has it before the handshake
    advertises its window. Linux doubles both values for its bookkeeping (socket(7)).
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        writer = socket.socket()
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        writer.settimeout(5)
        writer.connect(listener.getsockname())
        reader, _ = listener.accept()
        reader.settimeout(5)
        return writer, reader


# --8<-- [start:fill]
def stream_bytes(offset: int, n: int) -> bytes:
    """Bytes offset .. offset+n of the stream the writer sends: byte i is i % 251, so the
    reader can check that nothing was lost, duplicated or reordered."""
    return bytes(i % 251 for i in range(offset, offset + n))


LOOK = 0.02  # seconds between looks at the kernel while it is still moving bytes
# Byte offsets in Linux's struct tcp_info (<linux/tcp.h>; tcpi_snd_wnd since Linux 5.4).
TCPI_UNACKED, TCPI_SND_WND = 24, 228


def window_shut(writer: socket.socket) -> bool:
    """Linux: everything sent is acknowledged and the reader's last advertised window is
    zero (TCP_INFO, tcp(7)). Then nothing leaves the send buffer until the reader reads.
    Elsewhere (no TCP_INFO, or Linux before 5.4) staying unwritable for 0.1 s has to do."""
    try:
        info = writer.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCPI_SND_WND + 4)
    except (AttributeError, OSError):
        info = b""
    if len(info) < TCPI_SND_WND + 4:
        return not select.select([], [writer], [], 0.1)[1]
    (unacked,) = struct.unpack_from("I", info, TCPI_UNACKED)
    (window,) = struct.unpack_from("I", info, TCPI_SND_WND)
    return unacked == 0 and window == 0


def fill_until_blocked(writer: socket.socket, sent: int = 0, limit: int = 64 << 20) -> int:
    """Write without blocking until the kernel refuses more; return the bytes it took.
    `sent` is how far into the stream earlier calls got, so the stream continues.

    The bytes taken sit in the writer's send buffer and the reader's receive buffer.
    Once the reader's window is zero and the send buffer is full, send() would block:
    that refusal is TCP flow control (RFC 9293 §3.8.6) reaching the application.
    """
    writer.setblocking(False)
    accepted, shut, deadline = 0, False, time.monotonic() + 10
    try:
        while accepted < limit and time.monotonic() < deadline:  # bounds, in case
            try:
                accepted += writer.send(stream_bytes(sent + accepted, CHUNK))
            except BlockingIOError:  # EAGAIN: the send buffer is full for now ...
                if shut:
                    break  # ... and full again after the window shut: held by the window
                # ... but acknowledgements on their way free room, and a window left open
                # by less than a segment is filled later, by the writer's persist timer.
                shut = window_shut(writer)
                if not shut:  # wait for room (select() reports it only once half is
                    select.select([], [writer], [], LOOK)  # free: then try anyway)
    finally:
        writer.settimeout(5)
    return accepted


# --8<-- [end:fill]


# --8<-- [start:drain]
def drain(reader: socket.socket, nbytes: int) -> bytes:
    """Read nbytes: the receive window opens again and the writer may go on."""
    got = bytearray()
    while len(got) < nbytes:
        chunk = reader.recv(min(65536, nbytes - len(got)))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def writable_within(writer: socket.socket, timeout: float) -> bool:
    """Wait for the kernel to say the writer may write again (the window update came)."""
    _, ready, _ = select.select([], [writer], [], timeout)
    return bool(ready)


def blocked_send_times_out(writer: socket.socket, timeout: float) -> bool:
    """A blocking send to a peer that does not read waits; a timeout bounds the wait."""
    writer.settimeout(timeout)
    try:
        writer.sendall(bytes(1 << 20))
    except TimeoutError:
        return True
    finally:
        writer.settimeout(5)
    return False


# --8<-- [end:drain]


# --8<-- [start:story]
def stalled_writer(rcvbuf: int) -> dict[str, int | bool | bytes]:
    """One connection: fill, stay stalled, time out, then the reader reads and it resumes."""
    writer, reader = connected_pair(rcvbuf)
    with writer, reader:
        accepted = fill_until_blocked(writer)
        stalled = fill_until_blocked(writer, sent=accepted)  # nothing read yet: still refused
        timed_out = blocked_send_times_out(writer, 0.2)
        drained = drain(reader, accepted)  # the reader catches up: the first bytes, intact ...
        writable = writable_within(writer, 5.0)  # ... its window update reaches the writer
        resumed = writer.send(stream_bytes(accepted + stalled, CHUNK)) if writable else 0
    return {
        "accepted": accepted,
        "stalled": stalled,
        "timed_out": timed_out,
        "drained": drained,
        "resumed": resumed,
    }


# --8<-- [end:story]


def main() -> None:
    runs = {rcvbuf: stalled_writer(rcvbuf) for rcvbuf in (16 << 10, 256 << 10)}
    for rcvbuf, run in runs.items():
        print(f"writer's SO_SNDBUF {SNDBUF >> 10} KiB, reader's SO_RCVBUF {rcvbuf >> 10} KiB:")
        # "~" marks a number that depends on the kernel's buffer accounting.
        kib, drained = run["accepted"] >> 10, len(run["drained"]) >> 10
        print(f"  reader not reading: writer refused (EAGAIN) after ~{kib} KiB")
        print(f"  a second try, still nothing read: {run['stalled']} bytes accepted")
        print(f"  a blocking sendall() with a 0.2 s timeout timed out: {run['timed_out']}")
        print(f"  reader read ~{drained} KiB; writer could write again: {run['resumed'] > 0}")
    small, large = (run["accepted"] for run in runs.values())
    print(f"a 16x larger receive buffer let the writer get ~{large / small:.1f}x further ahead")


if __name__ == "__main__":
    main()
