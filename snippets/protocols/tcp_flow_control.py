"""TCP flow control: a reader that stops reading stops the writer, after a bounded amount.

Run: python snippets/protocols/tcp_flow_control.py
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time

CHUNK = 4096
SNDBUF = 16 << 10  # small and fixed, so the reader's buffer decides how much fits


def connected_pair(rcvbuf: int, sndbuf: int | None = SNDBUF) -> tuple[socket.socket, socket.socket]:
    """A TCP connection on loopback with fixed buffer sizes (no autotuning).

    SO_RCVBUF is set on the listener so the accepted socket has it before the handshake
    advertises its window. Linux doubles both values for its bookkeeping (socket(7)).
    sndbuf=None leaves the writer's send buffer to the kernel (the page's Break it).
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        writer = socket.socket()
        if sndbuf is not None:
            writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
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
# Where fields sit in Linux's struct tcp_info (include/uapi/linux/tcp.h): Linux only, since
# FreeBSD's struct of the same name puts them elsewhere. tcpi_snd_wnd came in Linux 5.4.
# (format, byte offset); the tests also read the persist timer's backoff and the segment size.
TCPI_FIELDS = {
    "backoff": ("B", 4),
    "snd_mss": ("I", 16),
    "unacked": ("I", 24),
    "snd_wnd": ("I", 228),
}
TCPI_SIZE = 232  # up to and including tcpi_snd_wnd


def linux_tcp_info(sock: socket.socket) -> dict[str, int] | None:
    """A few TCP_INFO fields (tcp(7)) on Linux 5.4 or later; None anywhere else."""
    if not sys.platform.startswith("linux"):
        return None
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCPI_SIZE)
    if len(info) < TCPI_SIZE:  # an older kernel's shorter struct: no tcpi_snd_wnd
        return None
    return {name: struct.unpack_from(f, info, at)[0] for name, (f, at) in TCPI_FIELDS.items()}


def window_shut(writer: socket.socket) -> bool:
    """Linux: everything sent is acknowledged and the reader's last advertised window is
    zero. Then nothing leaves the send buffer until the reader reads. Elsewhere (another
    system, or Linux before 5.4) staying unwritable for 0.1 s has to do."""
    info = linux_tcp_info(writer)
    if info is None:
        return not select.select([], [writer], [], 0.1)[1]
    return info["unacked"] == 0 and info["snd_wnd"] == 0


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
                if not shut:  # wait for room (select() reports it only once the free
                    select.select([], [writer], [], LOOK)  # room is half of what is queued)
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
def stalled_writer(rcvbuf: int, sndbuf: int | None = SNDBUF) -> dict[str, int | bool | bytes]:
    """One connection: fill, stay stalled, time out, then the reader reads and it resumes."""
    writer, reader = connected_pair(rcvbuf, sndbuf)
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
