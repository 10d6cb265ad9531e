"""A lost update (read, yield, write) with asyncio tasks and threads, and the lock that fixes it.

Run: python snippets/design/races_lost_update.py
"""

from __future__ import annotations

import asyncio
import platform
import sys
import threading
from contextlib import nullcontext

# --8<-- [start:asyncio]
counter = 0


async def add_one(lock: asyncio.Lock | None, pause: bool) -> None:
    """Read the counter, maybe await, write it back plus one."""
    global counter
    async with lock if lock else nullcontext():
        value = counter  # read
        if pause:
            await asyncio.sleep(0)  # any await: the loop may run another task here
        counter = value + 1  # write what we read, plus one


async def run_tasks(n: int, *, lock: bool, pause: bool = True) -> int:
    """Start n tasks that each add one; return how many additions were lost."""
    global counter
    counter = 0
    the_lock = asyncio.Lock() if lock else None
    async with asyncio.TaskGroup() as group:
        for _ in range(n):
            group.create_task(add_one(the_lock, pause))
    return n - counter


# --8<-- [end:asyncio]


# --8<-- [start:threads]
class Counter:
    value = 0


def call_something() -> None:
    """Stands for any function call between read and write: logging, a property, a query."""


def add_many(
    box: Counter, times: int, lock: threading.Lock | None, start: threading.Barrier
) -> None:
    start.wait()  # all threads begin together, so they overlap
    for _ in range(times):
        with lock if lock else nullcontext():
            value = box.value  # read
            call_something()  # CPython 3.11 may switch threads on entering a function
            box.value = value + 1  # write


def add_many_inplace(box: Counter, times: int, start: threading.Barrier) -> None:
    start.wait()
    for _ in range(times):
        box.value += 1  # no call between read and write: see the page for CPython 3.11


def run_threads(
    threads: int,
    times: int,
    *,
    lock: bool,
    switch_interval: float | None = 1e-6,
    inplace: bool = False,
) -> int:
    """threads x times additions on a shared counter; return how many were lost."""
    box, the_lock = Counter(), threading.Lock() if lock else None
    start = threading.Barrier(threads)
    old = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)  # ask the running thread to yield the GIL sooner
    try:
        target, args = (
            (add_many_inplace, (box, times, start))
            if inplace
            else (add_many, (box, times, the_lock, start))
        )
        workers = [threading.Thread(target=target, args=args) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(old)
    return threads * times - box.value


# --8<-- [end:threads]


# --8<-- [start:forced]
DEADLINE = 5.0  # seconds any thread waits for another's step (a step takes microseconds)


def forced_lost_update(*, lock: bool) -> int:
    """Two threads add one each to a shared counter, in the worst order, forced by events
    instead of hoped for: A reads; B reads and writes; A writes what it read, plus one.
    Returns how many of the two additions were lost."""
    box, the_lock = Counter(), threading.Lock() if lock else None
    a_read, b_trying, b_done = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with the_lock if the_lock else nullcontext():
            value = box.value  # read
            a_read.set()  # B may start its update now
            b_trying.wait(DEADLINE)
            if the_lock is None:  # B's whole update runs inside A's read-write window
                b_done.wait(DEADLINE)
            # (With the lock, B is stuck at `with the_lock` until A is done: waiting for
            # B here would deadlock. That B cannot get in is the lock doing its job.)
            box.value = value + 1  # write

    def b() -> None:
        a_read.wait(DEADLINE)
        b_trying.set()
        with the_lock if the_lock else nullcontext():
            value = box.value  # read
            box.value = value + 1  # write
        b_done.set()

    workers = [threading.Thread(target=a), threading.Thread(target=b)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return 2 - box.value


# --8<-- [end:forced]


def thread_runs(runs: int, threads: int, times: int, lock: bool, inplace: bool) -> list[int]:
    return [run_threads(threads, times, lock=lock, inplace=inplace) for _ in range(runs)]


def main() -> None:
    print(f"{platform.python_implementation()} {platform.python_version()}")
    print("asyncio, 100 tasks each adding 1 (read, await asyncio.sleep(0), write):")
    for lock, pause in ((False, True), (True, True), (False, False)):
        lost = asyncio.run(run_tasks(100, lock=lock, pause=pause))
        what = "asyncio.Lock" if lock else "no lock"
        print(f"  {what:12} {'with the await' if pause else 'no await':15} lost {lost} of 100")

    forced = 100
    print(f"threads, the schedule forced (A reads, B reads and writes, A writes), {forced} runs:")
    for lock in (False, True):
        lost = [forced_lost_update(lock=lock) for _ in range(forced)]
        what = "threading.Lock" if lock else "no lock"
        counts = ", ".join(f"{n} of 2 in {lost.count(n)} runs" for n in sorted(set(lost)))
        print(f"  {what:38} lost {counts}")

    threads, times, runs = 4, 20_000, 5
    print(
        f"threads, {threads} x {times:,} additions (read, call a function, write),"
        f" switch interval 1 µs, {runs} runs, the schedule left to the OS:"
    )
    for label, lock, inplace in (
        ("no lock", False, False),
        ("threading.Lock", True, False),
        ("no lock, box.value += 1 (no call)", False, True),
    ):
        lost = thread_runs(runs, threads, times, lock, inplace)
        shown = ", ".join(f"{n}" if lock or inplace else f"~{n}" for n in lost)
        print(f"  {label:38} lost {shown}")


if __name__ == "__main__":
    main()
