"""A deadline propagated A -> B -> C over real HTTP stops C's work when A gives up; without it,
C keeps working for a caller that has gone.

Run: python snippets/design/retries_deadline.py
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEADER = "Timeout-Ms"  # our name (no "X-": RFC 6648); gRPC sends the idea as `grpc-timeout`
A_TIMEOUT = 0.1  # seconds A (the user-facing caller) is willing to wait
STEP, STEPS = 0.02, 10  # C's work: 10 steps of 20 ms, twice what A will wait
HOP_TIMEOUT = 2.0  # the static timeout B uses when it does not propagate
HOP_MARGIN = 0.01  # tell the callee 10 ms less than we have, so its answer reaches us in time
MAX_TIMEOUT_MS = 60_000  # a header asking for more (or less than 1 ms, or not a number): 400
READ_LIMIT = 1.0  # seconds a client has to send its whole request line and headers


@dataclass
class CLog:
    """What C did, in the process's monotonic clock (A, B and C all run in this process)."""

    step_ends: list[float] = field(default_factory=list)
    stopped_early: bool = False
    done: threading.Event = field(default_factory=threading.Event)


# --8<-- [start:deadline]
def read_deadline(headers) -> float | None:
    """The caller's remaining time, as a local deadline; None if no header; ValueError if bad."""
    values = headers.get_all(HEADER) or []
    if len(values) > 1:  # two deadlines: which did the caller mean? Ask it to say once.
        raise ValueError(f"{HEADER} must be sent once, not {len(values)} times")
    if not values:
        return None
    raw = values[0].strip(" \t")  # RFC 9110 5.5: leading and trailing SP/HTAB are not the value
    # ASCII digits only (isdecimal() alone accepts "١٢"), and few of them before int():
    # CPython's int() refuses strings of over 4,300 digits with its own ValueError.
    ok = raw.isascii() and raw.isdecimal() and len(raw) <= len(str(MAX_TIMEOUT_MS))
    if not (ok and 1 <= int(raw) <= MAX_TIMEOUT_MS):
        raise ValueError(f"{HEADER} must be 1..{MAX_TIMEOUT_MS} ms, not {raw[:20]!r}")
    return time.monotonic() + int(raw) / 1000  # relative on the wire, absolute here


def call(port: int, deadline: float | None, propagate: bool) -> tuple[int, bytes]:
    """GET / on 127.0.0.1:port. With propagate, send what is left of *our* deadline (less a
    margin for the answer's trip back) and wait no longer than what is left; without, wait a
    fixed HOP_TIMEOUT and tell the callee nothing."""
    headers, timeout = {}, HOP_TIMEOUT
    if propagate and deadline is not None:
        left = deadline - time.monotonic()
        if left - HOP_MARGIN < 0.001:
            raise TimeoutError("deadline (nearly) passed: not calling")  # fail fast
        headers[HEADER] = str(int((left - HOP_MARGIN) * 1000))
        timeout = left
    return get(port, headers, timeout)


def get(port: int, headers: dict, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)  # per socket op
    try:
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def do_work(deadline: float | None, log: CLog) -> bool:
    """C's work, in steps. Before each step: would it end after the caller gave up? Stop."""
    for _ in range(STEPS):
        if deadline is not None and time.monotonic() + STEP > deadline:
            log.stopped_early = True
            return False
        time.sleep(STEP)  # stands for a query, a computation, a call of its own
        log.step_ends.append(time.monotonic())
    return True


# --8<-- [end:deadline]


# --8<-- [start:servers]
# The same reader is in stability_idempotency.py (snippets may not import each other).
class DeadlineReader(io.RawIOBase):
    """The socket, read with one deadline for the whole request: each read waits only for
    what is left of it, so a client sending a byte now and then is dropped all the same."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")  # http.server closes
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class Handler(BaseHTTPRequestHandler):
    timeout = READ_LIMIT  # for writes; reads use what is left of READ_LIMIT (below)

    def setup(self) -> None:
        super().setup()  # a per-read timeout alone lets a byte every 0.9 s keep us for ever
        deadline = time.monotonic() + READ_LIMIT
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, deadline))

    def log_message(self, *args) -> None:  # quiet
        pass

    def answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the caller has gone (A timed out): nobody to answer
            pass

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        server = self.server
        self.connection.settimeout(self.timeout)  # the request is in: back to 1 s per write
        try:
            deadline = read_deadline(self.headers)
        except ValueError as bad:
            return self.answer(400, str(bad).encode())
        if server.role == "B":
            try:
                status, body = call(server.next_port, deadline, server.propagate)
            except TimeoutError:
                return self.answer(504, b"C did not answer in time")
            except ConnectionRefusedError:  # RFC 9110 15.6.3: no valid answer from upstream
                return self.answer(502, b"C refused the connection")
            except (OSError, http.client.HTTPException) as bad:  # reset, garbage, cut short
                return self.answer(502, f"C sent no valid answer: {type(bad).__name__}".encode())
            return self.answer(status, b"B+" + body)  # C's 504 passes on as 504
        try:
            finished = do_work(deadline, server.log)
        finally:
            server.log.done.set()
        # Not 503 (RFC 9110: overload or maintenance, "alleviated after some delay", so an
        # invitation to retry): google.rpc's DEADLINE_EXCEEDED maps to 504 Gateway Timeout.
        self.answer(200 if finished else 504, b"C done" if finished else b"C: deadline exceeded")


@contextmanager
def serve(role: str, **attrs) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the OS picks one
    server.role = role
    for name, value in attrs.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)  # poll
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --8<-- [end:servers]


@dataclass
class Run:
    a_result: str
    a_gave_up_after: float
    c_steps: int
    c_steps_after_a_gave_up: int
    c_busy_after_a_gave_up: float
    c_stopped_early: bool


def run_chain(propagate: bool) -> Run:
    """A calls B with a deadline of A_TIMEOUT; B calls C, propagating the deadline or not."""
    log = CLog()
    with serve("C", log=log) as c, serve("B", next_port=c.server_port, propagate=propagate) as b:
        start = time.monotonic()
        try:
            status, body = call(b.server_port, start + A_TIMEOUT, propagate=True)
            a_result = f"answer {status} {body.decode()}"
        except TimeoutError:
            a_result = "timed out"
        gave_up = time.monotonic()
        assert log.done.wait(5), "C never finished"  # wait for C to stop, to count its work
    after = [end for end in log.step_ends if end > gave_up]
    last = log.step_ends[-1] if log.step_ends else gave_up
    return Run(a_result, gave_up - start, len(log.step_ends), len(after),
               max(0.0, last - gave_up), log.stopped_early)  # fmt: skip


def main() -> None:
    print(f"A waits {A_TIMEOUT * 1000:.1f} ms; C's work is {STEPS} steps of {STEP * 1000:.1f} ms")
    print(f"{'B -> C':<16}{'C steps':>8}{'after A was done':>18}{'C busy after':>14}")
    for propagate in (True, False):
        r = run_chain(propagate)
        name = "propagated" if propagate else "not propagated"
        # Not printed: whether A got B's 504 or timed out first (usually the first when
        # propagated, always the second without; the test checks both cases).
        print(f"{name:<16}{f'~{r.c_steps}':>8}{f'~{r.c_steps_after_a_gave_up}':>18}"
              f"{r.c_busy_after_a_gave_up * 1000:>11.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
