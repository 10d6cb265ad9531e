"""Coordinated omission: a real TCP server on loopback that freezes 10% of the time, measured
by a closed-loop generator and by a fixed schedule timed from each request's intended send
time (as wrk2 does); their p99s, from HDR histograms, differ by orders of magnitude.

Run: python snippets/operations/latency_omission.py
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

PERIOD = 1.0  # the server freezes at the start of every PERIOD seconds ...
STALL = 0.1  # ... for STALL seconds: 10% of the time, "1 s in every 10" scaled down 10x
DURATION = 1.0  # seconds each generator runs: one whole period, so 10% of it frozen
RATE = 2000  # the fixed schedule's requests per second: 2,000 requests in DURATION
MAX_LINE = 64  # the longest request line the server reads
PERCENTILES = (50.0, 90.0, 99.0)  # no p99.9: the schedule's 2,000 samples are too few


# --8<-- [start:server]
class StallingServer(socketserver.ThreadingTCPServer):
    """A line server: "PING\\n" gets "PONG\\n" at once, except while the server is frozen.

    The stall is a property of the server under test (a stand-in for a stop-the-world GC
    pause or a flush): during [k * period, k * period + stall) after start it answers
    nothing, and every request that arrives then is answered when the freeze ends."""

    allow_reuse_address = True
    daemon_threads = False  # server_close() joins the connection threads
    block_on_close = True

    def __init__(self, period: float, stall: float, idle_timeout: float = 2.0) -> None:
        super().__init__(("127.0.0.1", 0), LineHandler)
        self.period, self.stall, self.idle_timeout = period, stall, idle_timeout
        self.started = time.perf_counter()

    def frozen_for(self, now: float) -> float:
        """Seconds until the current freeze ends (0 when not frozen)."""
        phase = (now - self.started) % self.period
        return self.stall - phase if phase < self.stall else 0.0


class LineHandler(socketserver.BaseRequestHandler):
    server: StallingServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf, deadline = b"", 0.0
        with contextlib.suppress(OSError):  # the client went away: nothing to answer
            while True:
                if b"\n" not in buf:
                    if len(buf) > MAX_LINE:
                        return refuse(sock, b"ERR line too long\n")
                    if not buf:  # a new line: it must arrive whole within idle_timeout
                        deadline = time.monotonic() + self.server.idle_timeout
                    if (left := deadline - time.monotonic()) <= 0:
                        return refuse(sock, b"ERR idle timeout\n")
                    sock.settimeout(left)  # a silent or a trickling client is dropped
                    try:
                        chunk = sock.recv(4096)
                    except TimeoutError:
                        return refuse(sock, b"ERR idle timeout\n")
                    if not chunk:
                        return
                    buf += chunk
                    continue
                line, buf = buf.split(b"\n", 1)
                deadline = time.monotonic() + self.server.idle_timeout  # for the next line
                if len(line) > MAX_LINE:
                    return refuse(sock, b"ERR line too long\n")
                if (wait := self.server.frozen_for(time.perf_counter())) > 0:
                    time.sleep(wait)  # the freeze: this request waits for its end
                ok = line.rstrip(b"\r") == b"PING"
                sock.sendall(b"PONG\n" if ok else b"ERR unknown request\n")


def refuse(sock: socket.socket, message: bytes) -> None:
    """Say why, then close gently: stop sending and read what the client still sends (at
    most 64 KiB, for at most a second) until it closes, so that closing with its bytes
    unread does not make the kernel reset the connection and lose the message."""
    sock.sendall(message)
    sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 1.0
    with contextlib.suppress(OSError):
        for _ in range(16):
            if (left := deadline - time.monotonic()) <= 0:
                break
            sock.settimeout(left)
            if not sock.recv(4096):
                break


@contextlib.contextmanager
def running(period: float = PERIOD, stall: float = STALL, idle_timeout: float = 2.0):
    """Start a StallingServer on 127.0.0.1:<ephemeral>; yield it; stop it and its threads."""
    server = StallingServer(period, stall, idle_timeout)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --8<-- [end:server]


# --8<-- [start:generators]
@contextlib.contextmanager
def connection(address: tuple[str, int]) -> Iterator[tuple[socket.socket, object]]:
    sock = socket.create_connection(address, timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")  # holds the socket open until it is closed too
    try:
        yield sock, reader
    finally:
        reader.close()
        sock.close()


def ping(sock: socket.socket, reader) -> None:
    sock.sendall(b"PING\n")
    if (reply := reader.readline()) != b"PONG\n":
        raise RuntimeError(f"unexpected reply {reply!r}")


@dataclass
class Sample:
    due: float  # when the schedule meant to send it (closed loop: when it was sent)
    sent: float
    done: float


def sleep_until(when: float) -> None:
    if (ahead := when - time.perf_counter()) > 0:
        time.sleep(ahead)


def closed_loop(address: tuple[str, int], start: float, duration: float) -> list[Sample]:
    """One request at a time from `start`: the next is sent when the previous answer
    arrives, until `duration` has passed."""
    samples = []
    with connection(address) as (sock, reader):
        sleep_until(start)
        end = start + duration
        while (sent := time.perf_counter()) < end:
            ping(sock, reader)
            samples.append(Sample(sent, sent, time.perf_counter()))
    return samples


def fixed_schedule(
    address: tuple[str, int], start: float, rate: float, duration: float
) -> list[Sample]:
    """Request i is due at start + i / rate, planned before the run (wrk2's model): sent
    when due, or, if the answer before it is late, as soon as that answer arrives. On one
    connection that makes it a rate-limited closed loop, timed from due."""
    samples = []
    with connection(address) as (sock, reader):
        for i in range(round(rate * duration)):
            due = start + i / rate
            sleep_until(due)
            sent = time.perf_counter()
            ping(sock, reader)
            samples.append(Sample(due, sent, time.perf_counter()))
    return samples


# --8<-- [end:generators]


# --8<-- [start:hdr]
def histogram(latencies: list[float], expected_interval: float = 0.0) -> HdrHistogram:
    """Latencies (seconds) into an HDR histogram of microseconds, 1 us to 60 s, 3 digits.
    With an expected interval, each value also records value - interval, value - 2 x
    interval, ... while that is at least the interval: HdrHistogram's correction for
    coordinated omission, as its Java and C implementations do it. (The Python port's own
    record_corrected_value also records the remainder below the interval.)"""
    h = HdrHistogram(1, 60_000_000, 3)
    interval_us = round(expected_interval * 1e6)
    for seconds in latencies:
        us = max(1, round(seconds * 1e6))
        if not h.record_value(us):
            raise ValueError(f"{seconds} s is outside the histogram's range")
        missing = us - interval_us
        while interval_us and missing >= interval_us:  # the requests the wait held back
            h.record_value(missing)
            missing -= interval_us
    return h


def percentiles_ms(h: HdrHistogram) -> dict[float, float]:
    """p50, p90, p99 and the max (key 100), in milliseconds."""
    values = h.get_percentile_to_value_dict(list(PERCENTILES))
    return {p: v / 1e3 for p, v in values.items()} | {100.0: h.get_max_value() / 1e3}


# --8<-- [end:hdr]


# --8<-- [start:measure]
@dataclass
class Measured:
    closed: HdrHistogram  # closed loop, from send
    closed_latencies: list[float]  # its samples, seconds
    from_sent: HdrHistogram  # the fixed schedule, timed from the actual send
    from_due: HdrHistogram  # the fixed schedule, timed from the intended send (wrk2)
    corrected: HdrHistogram  # the closed loop's samples, corrected with an expected interval
    expected_interval: float  # the closed loop's median time between sends, seconds


def measure(
    period: float = PERIOD, stall: float = STALL, duration: float = DURATION,
    closed_first: bool = True,
) -> Measured:  # fmt: skip
    """Both generators, one after the other, against one stalling server. Each starts
    outside a freeze and runs one whole period, so each meets exactly one whole freeze:
    the same 10% of its time."""
    with running(period, stall) as server:
        address = server.server_address

        def next_start() -> float:  # 10 ms from now, or the end of a freeze it falls in
            at = time.perf_counter() + 0.01
            return at + server.frozen_for(at)

        for generator in ("closed", "schedule") if closed_first else ("schedule", "closed"):
            if generator == "closed":
                closed = closed_loop(address, next_start(), duration)
            else:
                scheduled = fixed_schedule(address, next_start(), RATE, duration)
    gaps = [b.sent - a.sent for a, b in zip(closed, closed[1:], strict=False)]
    interval = statistics.median(gaps)
    return Measured(
        closed=histogram([s.done - s.sent for s in closed]),
        closed_latencies=[s.done - s.sent for s in closed],
        from_sent=histogram([s.done - s.sent for s in scheduled]),
        from_due=histogram([s.done - s.due for s in scheduled]),
        corrected=histogram([s.done - s.sent for s in closed], expected_interval=interval),
        expected_interval=interval,
    )


# --8<-- [end:measure]


def row(name: str, h: HdrHistogram, approximate: bool) -> str:
    p = percentiles_ms(h)
    count = f"~{h.get_total_count()}" if approximate else str(h.get_total_count())
    cells = "".join(f"{p[q]:8.2f}" for q in (*PERCENTILES, 100.0))
    return f"{name:33}{count:>8}{cells}"


def main() -> None:
    print(
        f"Server on 127.0.0.1: answers at once, but freezes for {STALL:.2f} s at the start of"
        f" every {PERIOD:.1f} s ({STALL / PERIOD:.0%} of the time)"
    )
    print(f"Each generator: one connection, {DURATION:.1f} s; latency in ms, from HDR histograms")
    m = measure()
    print(f"{'':33}{'values':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    print(row("closed loop (like wrk, ab)", m.closed, approximate=True))
    print(row(f"schedule {RATE}/s, timed from send", m.from_sent, approximate=False))
    print(row(f"schedule {RATE}/s, timed from due", m.from_due, approximate=False))
    print(row("closed loop, HDR-corrected", m.corrected, approximate=True))
    closed_p99 = percentiles_ms(m.closed)[99.0]
    due_p99 = percentiles_ms(m.from_due)[99.0]
    print(f"p99 timed from due / closed-loop p99: {due_p99 / closed_p99:.1f}x")
    print(
        f"correction's expected interval: {m.expected_interval * 1e3:.3f} ms,"
        " the closed loop's median time between sends"
    )


if __name__ == "__main__":
    main()
