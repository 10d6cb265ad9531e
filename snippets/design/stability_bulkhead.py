"""Bulkheads: a hung dependency takes every worker of a pool it shares with a fast one, so
the fast one's calls wait too; with a bounded pool each, the fast calls still complete.

Run: python snippets/design/stability_bulkhead.py
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

WAIT = 0.5  # seconds we give the fast calls while the slow dependency hangs


# --8<-- [start:bulkhead]
class BulkheadFull(Exception):
    """Refused at once: this dependency already has all the calls it may have."""


class Bulkhead:
    """One dependency's own `threads`, and at most `queue` of its calls waiting for them;
    a call beyond that is refused at once instead of waiting behind the others."""

    def __init__(self, threads: int, queue: int) -> None:
        for name, value, least in (("threads", threads, 1), ("queue", queue, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        self.slots = threading.BoundedSemaphore(threads + queue)  # running + waiting
        self.pool = ThreadPoolExecutor(max_workers=threads)

    def submit(self, call: Callable[[], str]) -> Future[str]:
        if not self.slots.acquire(blocking=False):
            failed: Future[str] = Future()
            failed.set_exception(BulkheadFull("bulkhead full"))
            return failed
        future = self.pool.submit(call)
        future.add_done_callback(lambda _: self.slots.release())
        return future

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


# --8<-- [end:bulkhead]


# --8<-- [start:scenario]
@dataclass
class Result:
    fast_done_while_hung: int  # fast calls answered while the slow dependency hangs
    slow_refused: int  # slow calls refused at once (bulkheads only: its queue is full)
    slow_started: int  # slow calls that reached the dependency before it recovered


def run(bulkheads: bool, workers: int = 4, slow_calls: int = 8, fast_calls: int = 10) -> Result:
    """`slow_calls` to a dependency that hangs, then `fast_calls` to one that answers at
    once. Shared: one pool of `workers` threads, unbounded queue. Bulkheads: `workers // 2`
    threads each; the slow side may queue 2 calls, the fast side `fast_calls`."""
    recovered = threading.Event()
    started = threading.Semaphore(0)
    slow_started = [0]

    def slow() -> str:  # hangs until the test lets it recover (bounded: 10 s)
        slow_started[0] += 1
        started.release()
        recovered.wait(timeout=10)
        return "slow ok"

    def fast() -> str:
        return "fast ok"

    if bulkheads:
        slow_side = Bulkhead(workers // 2, queue=2)
        fast_side = Bulkhead(workers // 2, queue=fast_calls)
        submit_slow, submit_fast = slow_side.submit, fast_side.submit
        running = workers // 2
        shutdown = [slow_side.shutdown, fast_side.shutdown]
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        submit_slow = submit_fast = pool.submit
        running = workers
        shutdown = [pool.shutdown]
    try:
        slow_futures = [submit_slow(slow) for _ in range(slow_calls)]
        for _ in range(running):  # wait until the slow calls hold every thread they can get
            if not started.acquire(timeout=5):
                raise TimeoutError("the slow calls did not start")
        fast_futures = [submit_fast(fast) for _ in range(fast_calls)]
        done, _ = wait(fast_futures, timeout=WAIT)  # returns early once all are done
        answered = sum(1 for f in done if f.exception() is None)
        refused = sum(
            1 for f in slow_futures if f.done() and isinstance(f.exception(), BulkheadFull)
        )
        return Result(answered, refused, slow_started[0])
    finally:
        recovered.set()
        for stop in shutdown:
            stop()


# --8<-- [end:scenario]


def main() -> None:
    print("8 calls to a dependency that hangs, then 10 to one that answers at once;")
    print(f"4 worker threads in all. Fast calls answered within {WAIT:.1f} s while the")
    print("slow one hangs:\n")
    print(f"{'':<22}{'fast answered':>14}{'slow refused':>14}{'slow started':>14}")
    for bulkheads, name in ((False, "one shared pool"), (True, "a bulkhead each")):
        r = run(bulkheads)
        answered = f"{r.fast_done_while_hung} of 10"
        print(f"{name:<22}{answered:>14}{r.slow_refused:>14}{r.slow_started:>14}")


if __name__ == "__main__":
    main()
