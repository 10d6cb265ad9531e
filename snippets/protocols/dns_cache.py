"""Caching in a tiny DNS resolver: answers are reused until their TTL runs out, and
negative answers are cached for the time the zone's SOA sets (RFC 2308). The clock is
injected, so time passes without sleeping.

Run: python snippets/protocols/dns_cache.py
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

A, AAAA, IN = 1, 28, 1  # record types and the Internet class (RFC 1035 §3.2)


@dataclass(frozen=True)
class Response:
    """What an authoritative server answered, reduced to what a cache needs."""

    rcode: str  # "NOERROR" or "NXDOMAIN"
    addresses: list[str]  # empty: a negative answer (NXDOMAIN, or NOERROR = NODATA)
    ttl: int = 0  # the answer records' TTL
    soa: tuple[int, int] | None = None  # authority section: (SOA record's TTL, its MINIMUM)


Upstream = Callable[[str, int], Response]  # (name, type) -> response


# --8<-- [start:cache]
@dataclass
class CachingResolver:
    upstream: Upstream
    clock: Callable[[], float]  # time.monotonic in real life; a fake one in tests
    max_ttl: int = 86_400  # cap what the upstream asks for (a day)
    max_negative_ttl: int = 10_800  # 3 h, BIND's max-ncache-ttl default
    cache: dict[tuple, tuple[float, str, list[str]]] = field(default_factory=dict)
    upstream_queries: int = 0

    def resolve(self, name: str, qtype: int = A, qclass: int = IN) -> tuple[str, list[str], int]:
        """(rcode, addresses, seconds the answer stays valid); no addresses: a negative one."""
        name = name.lower().rstrip(".") + "."  # names are case-insensitive (RFC 4343)
        now = self.clock()
        # RFC 2308 §5: NXDOMAIN is cached per <name, class> (the name has no type at all);
        # answers and NODATA per <name, type, class>.
        for key in ((name, qclass), (name, qtype, qclass)):
            if key in self.cache:
                expires, rcode, addresses = self.cache[key]
                if now < expires:
                    return rcode, addresses, int(expires - now)  # a hit: the TTL counts down
                del self.cache[key]  # expired: ask again
        self.upstream_queries += 1
        response = self.upstream(name, qtype)
        if response.addresses:
            ttl = min(response.ttl, self.max_ttl)
        elif response.soa:  # RFC 2308 §5: min(SOA MINIMUM, the SOA record's TTL)
            ttl = min(*response.soa, self.max_negative_ttl)
        else:  # §5: negative answers without an SOA SHOULD NOT be cached
            return response.rcode, [], 0
        key = (name, qclass) if response.rcode == "NXDOMAIN" else (name, qtype, qclass)
        self.cache[key] = (now + ttl, response.rcode, response.addresses)
        return response.rcode, response.addresses, ttl


# --8<-- [end:cache]


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def zone_upstream(
    zone: dict[tuple[str, int], tuple[list[str], int]],
    origin: str = "example.test.",
    soa: tuple[int, int] | None = (60, 60),
) -> Upstream:
    """An authoritative server for `origin`: negative answers carry `soa`, as (the SOA's
    TTL in the answer, its MINIMUM); dns_query.py's server sends min(3600, 60) = 60 as that
    TTL (RFC 2308 §3). None: a broken server that leaves the SOA out."""

    def ask(name: str, qtype: int) -> Response:
        if (name, qtype) in zone:
            addresses, ttl = zone[name, qtype]
            return Response("NOERROR", addresses, ttl)
        exists = name == origin or any(zone_name == name for zone_name, _ in zone)
        return Response("NOERROR" if exists else "NXDOMAIN", [], soa=soa)

    return ask


def main() -> None:
    clock = FakeClock()
    zone = {
        ("www.example.test.", A): (["192.0.2.10"], 300),
        ("api.example.test.", A): (["192.0.2.20"], 60),
    }
    resolver = CachingResolver(zone_upstream(zone), clock)
    no_soa = CachingResolver(zone_upstream(zone, soa=None), clock)
    steps = [(0, resolver, "www.example.test", A), (10, resolver, "WWW.example.test.", A),
             (11, resolver, "www.example.test", AAAA), (299, resolver, "www.example.test", A),
             (300, resolver, "www.example.test", A), (301, resolver, "nope.example.test", A),
             (320, resolver, "nope.example.test", AAAA), (361, resolver, "nope.example.test", A),
             (362, resolver, "api.example.test", AAAA), (363, resolver, "api.example.test", A),
             (364, no_soa, "nope.example.test", A),
             (365, no_soa, "nope.example.test", A)]  # fmt: skip
    for t, which, name, qtype in steps:
        clock.now = t
        before = which.upstream_queries
        rcode, addresses, ttl = which.resolve(name, qtype)
        source = "upstream" if which.upstream_queries > before else "cache   "
        shown = addresses or (rcode if rcode == "NXDOMAIN" else "NODATA")
        note = "  (this upstream sends no SOA)" if which is no_soa else ""
        print(f"t={t:3}s  {name:<18} {'A' if qtype == A else 'AAAA':<4} from {source}"
              f" {shown}  valid for {ttl}s{note}")  # fmt: skip
    sent = resolver.upstream_queries + no_soa.upstream_queries
    print(f"{len(steps)} lookups, {sent} sent upstream")


if __name__ == "__main__":
    main()
