"""A seeded model of N clients retrying against a server of limited capacity: immediate
retries, exponential backoff without jitter and with full jitter (calls and completion time).

Run: python snippets/design/retries_backoff.py
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

CAPACITY = 10  # calls the server can serve per tick (1 tick = 1 ms in the model)
BASE, CAP = 2, 256  # backoff: BASE * 2**attempt ticks, never more than CAP
SEED = 2015
SIZES = (50, 100, 200, 400, 800)

# --8<-- [start:policies]
Policy = Callable[[int, random.Random], int]  # (failed attempts so far, rng) -> ticks to wait


def immediate(attempt: int, rng: random.Random) -> int:
    return 0  # retry on the next tick


def backoff(attempt: int, rng: random.Random) -> int:
    return min(CAP, BASE * 2**attempt)  # capped exponential, no jitter


def full_jitter(attempt: int, rng: random.Random) -> int:
    return rng.randint(0, min(CAP, BASE * 2**attempt))  # Brooker's "Full Jitter"


# --8<-- [end:policies]


# --8<-- [start:model]
def simulate(
    n: int, policy: Policy, seed: int = SEED, shared_seed: bool = False
) -> tuple[int, int]:
    """N clients each need one call to succeed; all start at tick 0. Each tick the server
    serves up to CAPACITY of the calls that arrive (in a seeded random order) and rejects
    the rest at once. A rejected client waits policy(attempt) ticks and calls again.
    Returns (total calls, tick at which the last client succeeded)."""
    order = random.Random(seed)  # which of a tick's calls the server happens to take first
    # Each client draws its jitter from its own generator, seeded differently ...
    rngs = [random.Random(seed if shared_seed else seed * 1_000_003 + i) for i in range(n)]
    # ... unless shared_seed: every client seeded alike (the "Break it").
    pending = [(0, i, 0) for i in range(n)]  # (tick of the call, client, failed attempts)
    calls = last_success = 0
    while pending:
        tick = pending[0][0]
        arriving = []
        while pending and pending[0][0] == tick:
            arriving.append(heapq.heappop(pending))
        calls += len(arriving)
        order.shuffle(arriving)
        for _, client, attempt in arriving[CAPACITY:]:  # rejected: back off, call again
            wait = policy(attempt, rngs[client])
            heapq.heappush(pending, (tick + 1 + wait, client, attempt + 1))
        if arriving[:CAPACITY]:
            last_success = tick
    return calls, last_success + 1


# --8<-- [end:model]

POLICIES = {"immediate": immediate, "backoff, no jitter": backoff, "full jitter": full_jitter}


def table(sizes=SIZES) -> dict[tuple[str, int], tuple[int, int]]:
    return {(name, n): simulate(n, policy) for n in sizes for name, policy in POLICIES.items()}


def main() -> None:
    print(f"Model: N clients at tick 0, server capacity {CAPACITY} calls per tick,")
    print(f"backoff {BASE} * 2^attempt ticks capped at {CAP}, seed {SEED}")
    results = table()
    print(f"{'':>5}" + "".join(f"{name:>22}" for name in POLICIES))
    print(f"{'N':>5}" + f"{'calls':>13}{'ticks':>9}" * len(POLICIES))
    for n in SIZES:
        row = "".join(f"{results[name, n][0]:>13,}{results[name, n][1]:>9,}" for name in POLICIES)
        print(f"{n:>5}{row}")
    n = SIZES[2]
    calls, ticks = simulate(n, full_jitter, shared_seed=True)
    print(f"Break it: full jitter, every client seeded {SEED}, N={n}:", end=" ")
    print(f"{calls:,} calls, {ticks:,} ticks")


if __name__ == "__main__":
    main()
