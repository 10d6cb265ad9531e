"""TTL-based caching in a tiny DNS resolver: answers are reused until their TTL runs out,
and "does not exist" is cached too. The clock is injected, so time passes without sleeping.

Run: python snippets/protocols/dns_cache.py
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# An upstream lookup: name -> (addresses, TTL in seconds); no addresses means NXDOMAIN.
Upstream = Callable[[str], tuple[list[str], int]]


# --8<-- [start:cache]
@dataclass
class CachingResolver:
    upstream: Upstream
    clock: Callable[[], float]  # time.monotonic in real life; a fake one in tests
    max_ttl: int = 86_400  # cap what the upstream asks for (a day)
    negative_ttl: int = 30  # how long "no such name" is remembered (RFC 2308 §5)
    cache: dict[str, tuple[float, list[str]]] = field(default_factory=dict)
    upstream_queries: int = 0

    def resolve(self, name: str) -> tuple[list[str], int]:
        """(addresses, seconds the answer stays valid); [] means the name does not exist."""
        name = name.lower().rstrip(".") + "."  # names are case-insensitive (RFC 4343)
        now = self.clock()
        if name in self.cache:
            expires, addresses = self.cache[name]
            if now < expires:
                return addresses, int(expires - now)  # a hit: the TTL counts down
            del self.cache[name]  # expired: ask again
        self.upstream_queries += 1
        addresses, ttl = self.upstream(name)
        ttl = min(ttl, self.max_ttl) if addresses else self.negative_ttl
        self.cache[name] = (now + ttl, addresses)
        return addresses, ttl


# --8<-- [end:cache]


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def zone_upstream(zone: dict[str, tuple[list[str], int]]) -> Upstream:
    return lambda name: zone.get(name, ([], 0))


def main() -> None:
    clock = FakeClock()
    zone = {"www.example.test.": (["192.0.2.10"], 300)}
    resolver = CachingResolver(zone_upstream(zone), clock)
    for t, name in [(0, "www.example.test"), (10, "WWW.example.test."), (299, "www.example.test"),
                    (300, "www.example.test"), (301, "nope.example.test"),
                    (320, "nope.example.test"), (331, "nope.example.test")]:  # fmt: skip
        clock.now = t
        before = resolver.upstream_queries
        addresses, ttl = resolver.resolve(name)
        source = "upstream" if resolver.upstream_queries > before else "cache   "
        shown = addresses or "NXDOMAIN"
        print(f"t={t:3}s  {name:<18} from {source} {shown}  valid for {ttl}s")
    print(f"7 lookups, {resolver.upstream_queries} sent upstream")


if __name__ == "__main__":
    main()
