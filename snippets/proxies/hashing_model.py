"""Consistent hashing as a model of key placement: growing 10 -> 11 nodes moves ~1/11 of
the keys with a hash ring or jump hash and ~10/11 with `hash % N`; virtual nodes even out
the ring's load.

Run: python snippets/proxies/hashing_model.py
"""

from __future__ import annotations

import bisect
import hashlib
import statistics
from collections import Counter
from collections.abc import Callable

KEYS = [f"/users/{i}" for i in range(20_000)]


def h64(text: str) -> int:
    """A stable 64-bit hash (Python's hash() of a str changes with every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


# --8<-- [start:placements]
def modulo(nodes: int) -> Callable[[str], int]:
    return lambda key: h64(key) % nodes


def ring(nodes: int, vnodes: int = 100) -> Callable[[str], int]:
    """Each node owns `vnodes` points on a 2**64 circle; a key goes to the first point at
    or after its own hash, wrapping around."""
    points = sorted((h64(f"node-{n}#{v}"), n) for n in range(nodes) for v in range(vnodes))
    hashes = [p for p, _ in points]

    def place(key: str) -> int:
        i = bisect.bisect_left(hashes, h64(key))
        return points[i % len(points)][1]

    return place


def jump(nodes: int) -> Callable[[str], int]:
    """Jump consistent hash (Lamping and Veach, 2014): no table at all, O(log n) steps; only
    numbered nodes 0..n-1 and only growth or shrinkage at the end."""

    def place(key: str) -> int:
        k, b, j = h64(key), -1, 0
        while j < nodes:
            b = j
            k = (k * 2862933555777941757 + 1) % 2**64
            j = int((b + 1) * (2**31 / ((k >> 33) + 1)))
        return b

    return place


# --8<-- [end:placements]


# --8<-- [start:measure]
def moved(scheme: Callable[..., Callable[[str], int]], before: int, after: int) -> float:
    """Fraction of KEYS placed on a different node after growing from `before` nodes."""
    old, new = scheme(before), scheme(after)
    return sum(old(k) != new(k) for k in KEYS) / len(KEYS)


def moved_only_to_the_new_node(scheme: Callable[..., Callable[[str], int]], n: int) -> bool:
    """Consistency: every key that moved went to the node that was added."""
    old, new = scheme(n), scheme(n + 1)
    return all(new(k) == n for k in KEYS if old(k) != new(k))


def max_over_mean(place: Callable[[str], int], nodes: int) -> float:
    """The busiest node's load over the average: 1.0 is a perfect spread."""
    counts = Counter(place(k) for k in KEYS)
    return max(counts.values()) / statistics.mean(counts[n] for n in range(nodes))


# --8<-- [end:measure]


def main() -> None:
    print(f"{len(KEYS)} keys, 10 -> 11 nodes: fraction of keys that move (ideal 1/11 = 0.091)")
    schemes = {"hash % N": modulo, "ring, 100 vnodes": ring, "jump hash": jump}
    for name, scheme in schemes.items():
        only_new = moved_only_to_the_new_node(scheme, 10)
        print(f"  {name:17} {moved(scheme, 10, 11):.3f}  all to the new node: {only_new}")
    print("load on 10 nodes, busiest / mean (1.00 = even):")
    for vnodes in (1, 10, 100, 1000):
        print(f"  ring, {vnodes:4} vnodes per node  {max_over_mean(ring(10, vnodes), 10):.2f}")
    print(f"  jump hash                 {max_over_mean(jump(10), 10):.2f}")


if __name__ == "__main__":
    main()
