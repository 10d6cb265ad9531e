"""Two locks taken in opposite orders deadlock; acquire(timeout=...) detects it, one order fixes it.

Run: python snippets/design/races_deadlock.py
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

LOCK_TIMEOUT = 0.2  # seconds a thread waits for its second lock before it gives up


@dataclass
class Account:
    name: str
    balance: int
    lock: threading.Lock = field(default_factory=threading.Lock)


# --8<-- [start:schedule]
class Schedule:
    """Forces the worst interleaving when it is possible: each thread takes its first lock
    and waits until the other thread holds *its* first lock too, unless both want the same
    first lock (then the other is queued behind us and the bad interleaving cannot happen).
    A thread that timed out keeps its lock until the other has tried too, so both report."""

    def __init__(self) -> None:
        self.wants: list[str | None] = [None, None]
        self.arrived = [threading.Event(), threading.Event()]
        self.holds = [threading.Event(), threading.Event()]
        self.tried = [threading.Event(), threading.Event()]

    def arrive(self, me: int, first: str) -> None:
        self.wants[me] = first
        self.arrived[me].set()

    def line_up(self, me: int) -> None:
        self.holds[me].set()
        self.arrived[1 - me].wait()
        if self.wants[1 - me] != self.wants[me]:
            self.holds[1 - me].wait()

    def tried_second(self, me: int, got_it: bool) -> None:
        self.tried[me].set()
        if not got_it:
            self.tried[1 - me].wait()


# --8<-- [end:schedule]


# --8<-- [start:deadlock]
def transfer(src: Account, dst: Account, amount: int, ordered: bool, me: int, plan: Schedule,
             timed_out: list[str]) -> None:  # fmt: skip
    # The bug: lock the source first. The fix: every thread locks in one global order.
    first, second = sorted((src, dst), key=lambda a: a.name) if ordered else (src, dst)
    plan.arrive(me, first.name)
    with first.lock:
        plan.line_up(me)
        got_it = second.lock.acquire(timeout=LOCK_TIMEOUT)  # a timeout, never a hang
        plan.tried_second(me, got_it)
        if not got_it:
            timed_out.append(f"{src.name}->{dst.name} held {first.name}, waited for {second.name}")
            return  # give up (a real service would release, back off and retry)
        try:
            src.balance -= amount
            dst.balance += amount
        finally:
            second.lock.release()


def two_transfers(
    ordered: bool, ordered_b: bool | None = None
) -> tuple[int, list[str], int, float]:
    """a->b and b->a at once; return transfers done, timeouts, total money, seconds.
    ordered_b (default: the same as ordered) says whether the b->a thread keeps the order."""
    ordered_b = ordered if ordered_b is None else ordered_b
    a, b = Account("a", 100), Account("b", 100)
    plan, timed_out = Schedule(), []
    threads = [
        threading.Thread(target=transfer, args=(a, b, 10, ordered, 0, plan, timed_out)),
        threading.Thread(target=transfer, args=(b, a, 20, ordered_b, 1, plan, timed_out)),
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = 2 - len(timed_out)
    return done, sorted(timed_out), a.balance + b.balance, time.perf_counter() - start


# --8<-- [end:deadlock]


def main() -> None:
    for ordered in (False, True):
        done, timed_out, total, seconds = two_transfers(ordered)
        print("one global order (by name):" if ordered else "each thread locks its source first:")
        print(f"  transfers done {done}, timed out {len(timed_out)}, total money {total}")
        for line in timed_out:
            print(f"  timed out: {line}")
        print(f"  took {seconds:.2f} s (lock timeout {LOCK_TIMEOUT:.1f} s)")


if __name__ == "__main__":
    main()
