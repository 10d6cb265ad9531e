"""Under overload a bounded queue that rejects when full keeps admitted requests' latency
bounded, while an unbounded one's grows with the length of the run: a real thread pool fed
by an open-loop load generator, with a closed-loop generator beside it that hides the growth.

Run: python snippets/design/queues_backpressure.py
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from dataclasses import dataclass, field

WORKERS = 4  # threads in the pool
SERVICE = 0.002  # seconds of work per request: a sleep, standing in for an IO call
CAPACITY = WORKERS / SERVICE  # at most 2,000 requests per second (less if sleeps overrun)
RATE = 2 * CAPACITY  # offered load: twice what the pool can serve
BOUND = 20  # the bounded queue's size
CLIENTS = 8  # the closed-loop generator's clients
DURATIONS = (0.05, 0.1, 0.2)  # seconds of arrivals: the same overload, longer and longer


@dataclass
class Request:
    due: float  # when the schedule says it arrives (perf_counter seconds)
    done: float = 0.0
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass
class Run:
    generator: str  # "open" or "closed"
    queue: str  # "bounded" or "unbounded"
    duration: float
    offered: int  # requests the generator sent
    latencies: list[float]  # seconds from due to done, admitted requests only
    rejected: int
    max_depth: int  # the most requests seen waiting in the queue

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1e3

    @property
    def max_ms(self) -> float:
        return max(self.latencies) * 1e3


# --8<-- [start:pool]
def worker(q: queue.Queue) -> None:
    while (request := q.get()) is not None:  # None: the pool is closing
        time.sleep(SERVICE)  # the work
        request.done = time.perf_counter()
        request.finished.set()


def start_pool(maxsize: int) -> tuple[queue.Queue, list[threading.Thread]]:
    q: queue.Queue = queue.Queue(maxsize=maxsize)  # maxsize 0: unbounded
    threads = [threading.Thread(target=worker, args=(q,)) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    return q, threads


def stop_pool(q: queue.Queue, threads: list[threading.Thread]) -> None:
    for _ in threads:
        q.put(None, timeout=30)  # behind every admitted request: the pool drains first
    for t in threads:
        t.join(timeout=30)


# --8<-- [end:pool]


# --8<-- [start:open]
def open_loop(rate: float, duration: float, maxsize: int, block: bool = False) -> Run:
    """Request i arrives at start + i / rate, whatever happened to the ones before it."""
    q, threads = start_pool(maxsize)
    admitted, rejected, max_depth = [], 0, 0
    start = time.perf_counter()
    try:
        for i in range(round(rate * duration)):
            due = start + i / rate  # the schedule: fixed before the run, never waits
            if (ahead := due - time.perf_counter()) > 0:
                time.sleep(ahead)
            request = Request(due)
            if block:  # Break it: wait for room instead of rejecting
                q.put(request)
                admitted.append(request)
            else:
                try:
                    q.put_nowait(request)  # a full bounded queue raises queue.Full
                    admitted.append(request)
                except queue.Full:
                    rejected += 1  # backpressure: tell the caller now (HTTP 503, 429)
            max_depth = max(max_depth, q.qsize())
    finally:
        stop_pool(q, threads)
    latencies = [r.done - r.due for r in admitted]  # from when it was due: see the page
    name = "bounded" if maxsize else "unbounded"
    return Run("open", name, duration, len(admitted) + rejected, latencies, rejected, max_depth)


# --8<-- [end:open]


# --8<-- [start:closed]
def closed_loop(clients: int, duration: float, maxsize: int) -> Run:
    """Each client sends a request, waits for its answer, and only then sends the next."""
    q, threads = start_pool(maxsize)
    latencies: list[float] = []  # list.append is atomic in CPython
    depth = [0]
    end = time.perf_counter() + duration

    def client() -> None:
        while time.perf_counter() < end:
            request = Request(time.perf_counter())  # due when the previous one came back
            q.put(request)
            depth[0] = max(depth[0], q.qsize())
            request.finished.wait(timeout=30)
            latencies.append(request.done - request.due)

    senders = [threading.Thread(target=client) for _ in range(clients)]
    try:
        for s in senders:
            s.start()
        for s in senders:
            s.join(timeout=30)
    finally:
        stop_pool(q, threads)
    name = "bounded" if maxsize else "unbounded"
    return Run("closed", name, duration, len(latencies), latencies, 0, depth[0])


# --8<-- [end:closed]


def row(r: Run) -> str:
    rejected = f"~{r.rejected}" if r.generator == "open" else "-"
    return (
        f"{r.generator:6} {r.queue:9} {r.duration:5.2f} s  ~{r.offered:<5} {rejected:>6}"
        f"  ~{r.max_depth:<4} {r.median_ms:8.1f} {r.max_ms:8.1f}"
    )


def main() -> None:
    print(
        f"Pool: {WORKERS} threads, {SERVICE * 1e3:.1f} ms of work each, at most"
        f" {CAPACITY:.0f} requests/s; the open loop offers {RATE:.0f} requests/s"
    )
    print(f"bounded queue: {BOUND} places; closed loop: {CLIENTS} clients, no think time")
    print("latency of admitted requests in ms, from when each was due")
    print("loop   queue     run for   sent rejected  depth   median      max")
    runs = []
    for duration in DURATIONS:
        runs.append(open_loop(RATE, duration, maxsize=0))
        runs.append(open_loop(RATE, duration, maxsize=BOUND))
        runs.append(closed_loop(CLIENTS, duration, maxsize=0))
    for kind in ("open unbounded", "open bounded", "closed unbounded"):
        for r in runs:
            if f"{r.generator} {r.queue}" == kind:
                print(row(r))
    by = {(r.generator, r.queue, r.duration): r for r in runs}
    first, last = DURATIONS[0], DURATIONS[-1]
    for kind in (("open", "unbounded"), ("open", "bounded"), ("closed", "unbounded")):
        growth = by[(*kind, last)].median_ms / by[(*kind, first)].median_ms
        print(
            f"{' '.join(kind)}: median grew {growth:.1f}x from {first:.2f} s to {last:.2f} s"
            f" ({last / first:.1f}x the duration)"
        )


if __name__ == "__main__":
    main()
