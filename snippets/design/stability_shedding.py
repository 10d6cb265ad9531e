"""Load shedding, modelled: under overload a server that rejects at admission what it cannot
finish before the client's deadline keeps its goodput; one that accepts everything serves
almost nothing in time.

Run: python snippets/design/stability_shedding.py
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

SERVICE_MS = 10.0  # each request takes 10 ms of the one worker: capacity 100 requests/s
DEADLINE_MS = 100.0  # each client gives up 100 ms after sending
SECONDS = 20  # simulated time per run
DURATIONS = (5, 20, 60)  # run lengths compared: accept-all's goodput depends on this
LOADS = (0.5, 0.9, 1.2, 2.0, 4.0)  # offered load, as a multiple of capacity
POLICIES = ("accept all", "skip expired", "shed at admission")


# --8<-- [start:model]
@dataclass
class Tally:
    offered: int = 0
    in_time: int = 0  # answered before the client's deadline: the goodput
    too_late: int = 0  # the client had given up: the work was wasted
    skipped: int = 0  # dequeued after its deadline and dropped without work
    shed: int = 0  # refused at admission (503 with Retry-After), costing no work
    wasted_ms: float = 0.0  # worker time spent on answers nobody read
    max_queue: int = 0  # most requests accepted and not yet answered, at any arrival
    seconds: float = SECONDS  # length of the run


def simulate(load: float, policy: str, seed: int = 21, seconds: float = SECONDS) -> Tally:
    """One worker, FIFO queue, open-loop Poisson arrivals at `load` x capacity."""
    rng = random.Random(seed)
    rate = load / SERVICE_MS  # arrivals per ms
    t, end, free_at = 0.0, seconds * 1000.0, 0.0  # free_at: when the worker is next idle
    tally = Tally(seconds=seconds)
    pending: deque[float] = deque()  # when each accepted request will leave the queue
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return tally
        tally.offered += 1
        while pending and pending[0] <= t:
            pending.popleft()
        tally.max_queue = max(tally.max_queue, len(pending))
        deadline = t + DEADLINE_MS
        start = max(t, free_at)  # FIFO: this request starts when all before it are done
        if policy == "shed at admission" and start + SERVICE_MS > deadline:
            tally.shed += 1  # it cannot finish in time: say so now
            continue
        if policy == "cap in flight" and len(pending) >= DEADLINE_MS / SERVICE_MS:
            tally.shed += 1  # the SRE book's rule: too many requests in flight, 503
            continue
        if policy == "skip expired" and start >= deadline:
            tally.skipped += 1  # the client is gone by the time the worker gets to it:
            pending.append(start)  # dropped then, unanswered; the client waited 100 ms
            continue
        free_at = start + SERVICE_MS
        pending.append(free_at)
        if free_at <= deadline:
            tally.in_time += 1
        else:
            tally.too_late += 1
            tally.wasted_ms += SERVICE_MS


# --8<-- [end:model]


def goodput_share(tally: Tally) -> float:
    """Answers in time, as a share of what the server could answer in the run."""
    return tally.in_time / (tally.seconds * 1000 / SERVICE_MS)


def detail(load: float) -> None:
    print(f"\nAt {load:.1f}x, {simulate(load, POLICIES[0]).offered:,} requests offered:")
    rows = (
        ("answered in time", lambda r: f"{r.in_time:,}"),
        ("timed out at the client", lambda r: f"{r.too_late + r.skipped:,}"),
        ("refused at once (503)", lambda r: f"{r.shed:,}"),
        ("worker time wasted", lambda r: f"{r.wasted_ms / 1000:.1f} s"),
        ("longest queue", lambda r: f"{r.max_queue:,}"),
    )
    print(f"  {'':<25}" + "".join(f"{p:>18}" for p in POLICIES))
    runs = [simulate(load, p) for p in POLICIES]
    for name, cell in rows:
        print(f"  {name:<25}" + "".join(f"{cell(r):>18}" for r in runs))


def main() -> None:
    print(f"Model: 1 worker, {SERVICE_MS:.0f} ms per request (capacity 100/s), clients give up")
    print(
        f"after {DEADLINE_MS:.0f} ms, Poisson arrivals (open loop), {SECONDS} s per run, seed 21."
    )
    print("Goodput: answers the client got in time, as a share of capacity.\n")
    print(f"{'offered load':<14}" + "".join(f"{p:>18}" for p in POLICIES))
    for load in LOADS:
        cells = [f"{goodput_share(simulate(load, p)):.0%}" for p in POLICIES]
        print(f"{f'{load:.1f}x capacity':<14}" + "".join(f"{c:>18}" for c in cells))
    detail(2.0)
    print("\nAccept all, by run length: the answers in time all come before the queue grows,")
    print("so its goodput falls toward 0 as the run gets longer (0 in a steady state):")
    print(f"  {'':<22}" + "".join(f"{f'{s} s':>14}" for s in DURATIONS))
    for load in (1.2, 2.0):
        runs = [simulate(load, "accept all", seconds=s) for s in DURATIONS]
        cells = [f"{r.in_time} = {goodput_share(r):.1%}" for r in runs]
        print(f"  {f'{load:.1f}x, in time':<22}" + "".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
