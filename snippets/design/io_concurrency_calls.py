"""The same slow calls to a real TCP server on loopback, one after another, on a thread pool
and with asyncio: the waits overlap, so the concurrent ways take a fraction of the sequential
time (not one call's time: the client's own CPU work does not overlap).

Run: python snippets/design/io_concurrency_calls.py
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

DELAY = 0.005  # seconds the server waits before each answer: a query, a disk, another service
CALLS = 40
ROUNDS = 5  # interleaved rounds; the page compares medians (as the test does)
START_TIMEOUT = 5.0  # seconds the server process has to say it is listening
CALL_TIMEOUT = 5.0  # s: a coroutine's deadline for a whole call; a socket's for each operation
MAX_LINE = 64  # bytes in a request line, newline included
READ_TIMEOUT = 1.0  # seconds a client has to send its request line
MAX_STEPS = 1000


# --8<-- [start:server]
# The same server is in io_concurrency_cancel.py (snippets may not import each other).
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


# --8<-- [start:calls]
def call(port: int, steps: int = 1) -> int:
    """One blocking call: connect, ask, read lines until the server closes; lines read."""
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT) as sock:
        sock.sendall(b"%d\n" % steps)
        data = b""
        while chunk := sock.recv(4096):  # the thread waits here, holding no GIL
            data += chunk
    return data.count(b"\n")


async def call_async(port: int, steps: int = 1) -> int:
    """The same call as a coroutine: the event loop runs others while this one waits."""
    # A deadline for the whole call (the socket timeout in call() bounds each operation only)
    async with asyncio.timeout(CALL_TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"%d\n" % steps)
            lines = 0
            while await reader.readline():  # suspends this task, not the thread
                lines += 1
            return lines
        finally:
            writer.close()


def sequential(port: int, n: int) -> list[int]:
    return [call(port) for _ in range(n)]


def thread_pool(port: int, n: int, workers: int | None = None) -> list[int]:
    with ThreadPoolExecutor(max_workers=workers) as pool:  # None: min(32, os.cpu_count() + 4)
        return list(pool.map(call, [port] * n))


def with_asyncio(port: int, n: int) -> list[int]:
    async def all_calls() -> list[int]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call_async(port)) for _ in range(n)]
        return [task.result() for task in tasks]

    return asyncio.run(all_calls())


# --8<-- [end:calls]


def default_workers() -> int:
    """ThreadPoolExecutor's default max_workers: min(32, CPUs + 4) (3.8+; 3.13 counts the CPUs
    this process may use, os.process_cpu_count(), instead of os.cpu_count())."""
    cpus = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(32, (cpus or 1) + 4)


def ways(n: int = CALLS) -> dict[str, Callable[[int], list[int]]]:
    return {
        "sequential": lambda port: sequential(port, n),
        f"thread pool, default (~{default_workers()} workers)": lambda port: thread_pool(port, n),
        f"thread pool, {n} workers": lambda port: thread_pool(port, n, workers=n),
        "asyncio, TaskGroup": lambda port: with_asyncio(port, n),
    }


@contextmanager
def server_process(delay: float = DELAY) -> Iterator[int]:
    """The same server in a child process, as a real service would be: its work does not
    compete with our calls for this interpreter's GIL. Yields its port."""
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(delay)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        # Readiness: it prints its port once listening (bounded: a broken child must not hang us).
        if not select.select([child.stdout], [], [], START_TIMEOUT)[0]:
            raise RuntimeError(f"the server did not start within {START_TIMEOUT} s")
        ready = child.stdout.readline()
        if not ready.startswith("port "):
            raise RuntimeError(f"the server did not start: {ready!r}")
        yield int(ready.split()[1])
    finally:
        child.terminate()  # while it is still our unreaped child: no PID reuse
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


@dataclass
class Run:
    wall: float  # seconds from the first call started to the last answer read
    cpu: float  # CPU seconds this process (the client, every thread) used meanwhile


def measure(n: int = CALLS, rounds: int = ROUNDS, delay: float = DELAY) -> dict[str, list[Run]]:
    """Wall and CPU time per way on one server in a child process (so the CPU time is the
    client's alone): the sequential way once (its floor, n waits, is what it is compared
    with; a second run would only make the snippet slower), then `rounds` interleaved
    rounds of the concurrent ways, n calls each, as the test does."""
    runs: dict[str, list[Run]] = {name: [] for name in ways(n)}
    with server_process(delay) as port:
        for round_ in range(rounds):
            for name, way in ways(n).items():
                if name == "sequential" and round_:
                    continue
                start, cpu = time.perf_counter(), time.process_time()
                answers = way(port)
                runs[name].append(Run(time.perf_counter() - start, time.process_time() - cpu))
                assert answers == [1] * n, answers  # every call got its one line
    return runs


def serve(delay: float) -> None:
    """`--serve DELAY`: run the server until terminated."""
    with slow_server(delay) as (port, _):
        print(f"port {port}", flush=True)
        threading.Event().wait()  # until SIGTERM ends the process


def main() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{CALLS} calls, the server waits {DELAY * 1000:.1f} ms before each answer; ~{cores} "
          f"cores; sequential once, the others: median of {ROUNDS} interleaved rounds")  # fmt: skip
    runs = measure()
    base = statistics.median(r.wall for r in runs["sequential"])
    print(f"{'how':<34}{'median':>10}{'vs sequential':>15}{'floor':>10}{'client CPU':>12}")
    for name, rs in runs.items():
        median = statistics.median(r.wall for r in rs)
        cpu = statistics.median(r.cpu for r in rs)
        workers = {"sequential": 1, "asyncio, TaskGroup": CALLS}.get(name)
        if workers is None:
            workers = CALLS if name.endswith(f"{CALLS} workers") else default_workers()
        floor = math.ceil(CALLS / workers) * DELAY  # waves of calls, each waits DELAY
        print(f"{name:<34}{median * 1000:>7.1f} ms{base / median:>14.1f}x"
              f"{floor * 1000:>7.1f} ms{cpu * 1000:>9.1f} ms")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(float(sys.argv[2]))
    else:
        main()
