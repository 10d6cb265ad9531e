"""Structured concurrency and cancellation that reaches the server: asyncio.TaskGroup stops a
failed call's siblings and asyncio.timeout stops a call, where asyncio.gather and a thread
keep working for a caller that has gone.

Run: python snippets/design/io_concurrency_cancel.py
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

STEP = 0.01  # seconds the server waits before each line it sends
STEPS = 30  # lines per call: 0.3 s of work
SIBLINGS = 10  # calls that would succeed, beside the one that fails
FAIL_AFTER = 5  # lines the failing call reads before it raises
GIVE_UP = 0.05  # seconds the caller waits for one call of STEPS lines
CALL_TIMEOUT = 5.0  # s: a coroutine's deadline for a whole call; a socket's for each operation
MAX_LINE = 64  # bytes in a request line, newline included
READ_TIMEOUT = 1.0  # seconds a client has to send its request line
MAX_STEPS = 1000


# --8<-- [start:server]
# The same server is in io_concurrency_calls.py (snippets may not import each other).
@dataclass
class Stats:
    """What the server saw, updated by its thread, read by ours."""

    sent: int = 0  # answer lines written
    completed: int = 0  # requests answered in full
    abandoned: int = 0  # requests whose client left before the last line
    rejected: int = 0  # malformed, oversized or slow requests
    open: int = 0  # connections open now
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, **deltas: int) -> None:
        with self.changed:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
            self.changed.notify_all()

    def wait_finished(self, requests: int, timeout: float = 5.0) -> None:
        """Block until `requests` requests have ended (answered, abandoned or rejected)."""

        def ended() -> bool:
            return self.completed + self.abandoned + self.rejected >= requests and not self.open

        with self.changed:
            if not self.changed.wait_for(ended, timeout):
                raise TimeoutError(f"the server is still busy: {self}")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: Stats,
                 delay: float) -> None:  # fmt: skip
    """Protocol: the client sends `n\\n` (1..MAX_STEPS); the server sends n lines, each
    after `delay` seconds, then closes. Before each line it checks the client is still there."""
    stats.add(open=1)
    try:
        try:
            async with asyncio.timeout(READ_TIMEOUT):  # a slow client gets an error, not a hang
                line = await reader.readline()
        except TimeoutError:
            line = b"timeout"
        except ValueError:  # StreamReader: the line went over the limit given to start_server
            line = b"oversized"
        steps = line.strip()
        if not (steps.isdigit() and len(steps) <= 4 and 1 <= int(steps) <= MAX_STEPS):
            stats.add(rejected=1)
            writer.write(b"ERR want a number of steps 1..%d, got %.20r\n" % (MAX_STEPS, line))
            return
        for step in range(int(steps)):
            await asyncio.sleep(delay)  # the slow part of the work
            if reader.at_eof() or writer.is_closing():  # the client closed: stop working
                stats.add(abandoned=1)
                return
            writer.write(b"%d\n" % step)
            await writer.drain()
            stats.add(sent=1)
        stats.add(completed=1)
    except ConnectionError:
        stats.add(abandoned=1)
    finally:
        writer.close()
        stats.add(open=-1)


@contextmanager
def slow_server(delay: float) -> Iterator[tuple[int, Stats]]:
    """A TCP server on 127.0.0.1 (port 0: the OS picks) with its own event loop in a thread."""
    stats, ready = Stats(), threading.Event()
    loop = asyncio.new_event_loop()
    box: dict = {}

    async def start() -> None:
        box["server"] = await asyncio.start_server(
            lambda r, w: handle(r, w, stats, delay), "127.0.0.1", 0,
            limit=MAX_LINE, backlog=1024)  # fmt: skip
        box["port"] = box["server"].sockets[0].getsockname()[1]
        ready.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if not ready.wait(5):
            raise RuntimeError("the server did not start")
        yield box["port"], stats
    finally:
        if "server" in box:
            loop.call_soon_threadsafe(box["server"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# --8<-- [end:server]


# --8<-- [start:clients]
async def fetch(port: int, steps: int = STEPS, fail_after: int | None = None) -> int:
    """Ask for `steps` lines and read them; raise after `fail_after` lines if given."""
    async with asyncio.timeout(CALL_TIMEOUT):  # its own bound, whoever else cancels it
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"%d\n" % steps)
            lines = 0
            while await reader.readline():  # a cancellation arrives here, as CancelledError
                lines += 1
                if lines == fail_after:
                    raise ValueError(f"line {lines} looked wrong")
            return lines
        finally:
            writer.close()  # on success, failure or cancellation: the server sees the close


def call(port: int, steps: int = STEPS) -> int:
    """The same call, blocking, for a thread: nothing can interrupt it from outside."""
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT) as sock:
        sock.sendall(b"%d\n" % steps)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.count(b"\n")


# --8<-- [end:clients]


@dataclass
class Outcome:
    caller_saw: str  # the exception the caller got
    served: int  # lines the server sent in all
    after: int  # of them, sent after the caller had its exception
    completed: int  # calls the server finished
    abandoned: int  # calls the server stopped because the client left
    waited: float  # seconds from the start of the calls to the caller's exception
    cancel_returned: bool | None = None  # Future.cancel(), for the thread pool


Job = Callable[..., Coroutine[None, None, int]]


# --8<-- [start:group]
async def one_fails(port: int, structured: bool, job: Job = fetch) -> None:
    """SIBLINGS good calls and one that fails, as children of one task group, or gathered."""
    calls = [job(port) for _ in range(SIBLINGS)] + [job(port, fail_after=FAIL_AFTER)]
    if structured:
        async with asyncio.TaskGroup() as group:  # leaves only when every child has ended
            for c in calls:
                group.create_task(c)
    else:
        await asyncio.gather(*calls)  # raises the first error; the others keep running


# --8<-- [end:group]


# --8<-- [start:timeout]
async def give_up(port: int, how: str) -> None:
    """Wait at most GIVE_UP seconds for one call of STEPS lines, on this task or a thread."""
    async with asyncio.timeout(GIVE_UP):  # cancels the awaiting task when time is up
        if how == "coroutine":
            await fetch(port)
        else:
            await asyncio.to_thread(call, port)  # the task stops waiting; the thread cannot


def give_up_on_a_future(port: int, pool: ThreadPoolExecutor) -> tuple[str, bool]:
    """concurrent.futures' own timeout, without asyncio: what the caller saw, and what
    cancel() said."""
    future = pool.submit(call, port)
    try:
        future.result(timeout=GIVE_UP)
        saw = "nothing"
    except TimeoutError as error:  # concurrent.futures.TimeoutError is TimeoutError since 3.11
        saw = type(error).__name__
    return saw, future.cancel()  # False: "currently being executed ... cannot be cancelled"


# --8<-- [end:timeout]


def observe(make: Callable[[int], Coroutine], requests: int) -> Outcome:
    """Run make(port) on a fresh server; then keep the loop running, as a service would,
    until the server has ended every request, and count what it did after the error.
    (A script that returned at once would not see the orphans work: asyncio.run cancels
    the tasks still running when its coroutine returns.)"""
    with slow_server(STEP) as (port, stats):

        async def caller() -> tuple[str, int, float]:
            start = time.perf_counter()
            try:
                await make(port)
                saw = "nothing"
            except Exception as error:  # noqa: BLE001 (we report which one)
                saw = type(error).__name__
            waited = time.perf_counter() - start
            await asyncio.sleep(0)  # one turn of the loop: closes that fetch() scheduled happen
            sent_then = stats.sent
            await asyncio.to_thread(stats.wait_finished, requests)  # orphans may still run
            return saw, sent_then, waited

        saw, sent_then, waited = asyncio.run(caller())
    return Outcome(saw, stats.sent, stats.sent - sent_then, stats.completed, stats.abandoned,
                   waited)  # fmt: skip


def group_outcome(structured: bool, job: Job = fetch) -> Outcome:
    return observe(lambda port: one_fails(port, structured, job), SIBLINGS + 1)


def timeout_outcome(how: str) -> Outcome:
    if how != "future":
        return observe(lambda port: give_up(port, how), 1)
    with slow_server(STEP) as (port, stats), ThreadPoolExecutor(1) as pool:
        start = time.perf_counter()
        saw, cancelled = give_up_on_a_future(port, pool)
        waited = time.perf_counter() - start
        sent_then = stats.sent
        stats.wait_finished(1)
    return Outcome(saw, stats.sent, stats.sent - sent_then, stats.completed, stats.abandoned,
                   waited, cancelled)  # fmt: skip


def main() -> None:
    print(f"{SIBLINGS + 1} calls of {STEPS} lines, one line per {STEP * 1000:.1f} ms; "
          f"one call fails after {FAIL_AFTER} lines")  # fmt: skip
    print(f"{'':18}{'caller saw':>16}{'lines sent':>12}{'after error':>13}"
          f"{'finished':>10}{'stopped':>9}")  # fmt: skip
    for structured, name in ((True, "asyncio.TaskGroup"), (False, "asyncio.gather")):
        o = group_outcome(structured)
        print(f"{name:18}{o.caller_saw:>16}{f'~{o.served}':>12}{f'~{o.after}':>13}"
              f"{o.completed:>10}{o.abandoned:>9}")  # fmt: skip
    print()
    print(f"give up after {GIVE_UP * 1000:.1f} ms on one call of {STEPS} lines "
          f"({STEPS * STEP * 1000:.1f} ms of work)")  # fmt: skip
    print(f"{'':36}{'caller saw':>14}{'waited':>9}{'lines sent':>12}{'after giving up':>17}"
          f"{'finished':>10}")  # fmt: skip
    for how, name in (("coroutine", "asyncio.timeout, coroutine"),
                      ("to_thread", "asyncio.timeout, asyncio.to_thread"),
                      ("future", "Future.result(timeout=...), thread")):  # fmt: skip
        o = timeout_outcome(how)
        print(f"{name:36}{o.caller_saw:>14}{f'~{o.waited * 1000:.0f} ms':>9}"
              f"{f'~{o.served}' if how == 'coroutine' else o.served:>12}"
              f"{f'~{o.after}':>17}{o.completed:>10}")  # fmt: skip
        if o.cancel_returned is not None:
            print(f"  and Future.cancel() returned {o.cancel_returned}")


if __name__ == "__main__":
    main()
