"""Three join algorithms, small: nested loop, hash join and merge join, with their work counted.

Run: python snippets/databases/plan_joins.py
"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

Row = tuple[int, str]  # (join key, payload)
Joined = list[tuple[int, str, str]]


# --8<-- [start:joins]
def nested_loop_join(left: list[Row], right: list[Row]) -> tuple[Joined, int]:
    """For every left row, scan all of right: len(left) * len(right) comparisons."""
    out, work = [], 0
    for lkey, lval in left:
        for rkey, rval in right:
            work += 1
            if lkey == rkey:
                out.append((lkey, lval, rval))
    return out, work


def hash_join(left: list[Row], right: list[Row]) -> tuple[Joined, int]:
    """Build a hash table on one side, probe it with the other: about len(left) + len(right)."""
    table: dict[int, list[str]] = defaultdict(list)
    work = 0
    for rkey, rval in right:  # build (PostgreSQL builds on the smaller input)
        table[rkey].append(rval)
        work += 1
    out = []
    for lkey, lval in left:  # probe
        work += 1
        out.extend((lkey, lval, rval) for rval in table.get(lkey, ()))
    return out, work


def merge_join(left: list[Row], right: list[Row]) -> tuple[Joined, int]:
    """Sort both sides, then walk them together once (plus the sorts: n log n)."""
    left, right = sorted(left), sorted(right)
    out, work, i, j = [], 0, 0, 0
    while i < len(left) and j < len(right):
        work += 1
        if left[i][0] < right[j][0]:
            i += 1
        elif left[i][0] > right[j][0]:
            j += 1
        else:  # equal keys: pair this left row with the whole run of equal right keys
            key, k = left[i][0], j
            while k < len(right) and right[k][0] == key:
                out.append((key, left[i][1], right[k][1]))
                k += 1
            i += 1  # the next left row may have the same key: j stays at the run's start
    return out, work


# --8<-- [end:joins]


JOINS: dict[str, Callable[[list[Row], list[Row]], tuple[Joined, int]]] = {
    "nested loop": nested_loop_join,
    "hash join": hash_join,
    "merge join": merge_join,
}


def tables(n: int, seed: int = 1) -> tuple[list[Row], list[Row]]:
    """n customers with unique ids, 3n orders pointing at random customers."""
    rng = random.Random(seed)
    customers = [(i, f"customer {i}") for i in range(n)]
    rng.shuffle(customers)
    orders = [(rng.randrange(n), f"order {k}") for k in range(3 * n)]
    return customers, orders


def measure(n: int, rounds: int = 3) -> dict[str, tuple[int, int, float]]:
    """For each join: (rows out, work counted, median seconds)."""
    customers, orders = tables(n)
    results = {}
    for name, join in JOINS.items():
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            out, work = join(customers, orders)
            times.append(time.perf_counter() - start)
        results[name] = (len(out), work, statistics.median(times))
    return results


def main() -> None:
    for n in (100, 1000):
        print(f"{n} customers joined to {3 * n} orders:")
        results = measure(n)
        for name, (rows, work, seconds) in results.items():
            print(f"  {name:12} {rows} rows, {work:>8} steps, {seconds * 1000:.2f} ms")
        slow, fast = results["nested loop"][2], results["hash join"][2]
        print(f"  the hash join was {slow / fast:.1f}x faster than the nested loop")


if __name__ == "__main__":
    main()
