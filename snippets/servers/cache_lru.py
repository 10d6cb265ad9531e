"""A server-side cache: least-recently-used eviction plus a time-to-live, hit ratio counted.

Run: python snippets/servers/cache_lru.py
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


# --8<-- [start:lru]
class LRUCache:
    """At most `capacity` entries; each expires `ttl` seconds after it was stored."""

    def __init__(self, capacity: int, ttl: float, clock: Callable[[], float]) -> None:
        self.capacity, self.ttl, self.clock = capacity, ttl, clock
        self.entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = self.misses = self.evictions = self.expirations = 0

    def get(self, key: Hashable) -> Any | None:
        if key not in self.entries:
            self.misses += 1
            return None
        expires, value = self.entries[key]
        if self.clock() >= expires:  # too old: drop it, count a miss
            del self.entries[key]
            self.expirations += 1
            self.misses += 1
            return None
        self.entries.move_to_end(key)  # now the most recently used
        self.hits += 1
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self.entries[key] = (self.clock() + self.ttl, value)
        self.entries.move_to_end(key)
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)  # the least recently used
            self.evictions += 1


def cached_call(cache: LRUCache, key: Hashable, load: Callable[[], Any]) -> Any:
    """Cache-aside: look in the cache, else load from the origin and remember it."""
    value = cache.get(key)
    if value is None:
        value = load()
        cache.put(key, value)
    return value


# --8<-- [end:lru]


# --8<-- [start:workload]
def run(capacity: int, ttl: float, requests: int = 10_000, seed: int = 7) -> dict[str, int]:
    """Seeded Zipf-like traffic over 1,000 products, one request per simulated 10 ms."""
    now = 0.0
    cache = LRUCache(capacity, ttl, clock=lambda: now)
    rng = random.Random(seed)
    weights = [1 / rank for rank in range(1, 1001)]  # a few hot keys, a long tail
    keys = rng.choices(range(1000), weights=weights, k=requests)
    origin_calls = 0

    def load_from_origin() -> str:
        nonlocal origin_calls
        origin_calls += 1
        return "product data"

    for key in keys:
        cached_call(cache, key, load_from_origin)
        now += 0.010
    return {
        "hits": cache.hits,
        "origin calls": origin_calls,
        "evictions": cache.evictions,
        "expirations": cache.expirations,
    }


# --8<-- [end:workload]


def main() -> None:
    print("10,000 requests over 100 simulated seconds, 1,000 keys, Zipf-like popularity")
    print(
        f"{'capacity':>8} {'ttl s':>6} {'hit ratio':>10} {'origin calls':>13} {'evictions':>10}"
        f" {'expirations':>12}"
    )
    for capacity, ttl in [(10, 3600), (100, 3600), (1000, 3600), (100, 5), (100, 1)]:
        stats = run(capacity, ttl)
        print(
            f"{capacity:>8} {ttl:>6} {stats['hits'] / 10_000:>10.1%} {stats['origin calls']:>13}"
            f" {stats['evictions']:>10} {stats['expirations']:>12}"
        )


if __name__ == "__main__":
    main()
