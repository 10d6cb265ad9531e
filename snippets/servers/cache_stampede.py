"""A cache stampede: when a hot key expires, every concurrent request hits the origin;
request coalescing (single-flight) lets one of them load it for all.

Run: python snippets/servers/cache_stampede.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

ORIGIN_SECONDS = 0.05  # the origin (a slow query) takes 50 ms


# --8<-- [start:singleflight]
class SingleFlight:
    """Concurrent calls for the same key share one execution (Go's singleflight)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: dict[str, Future[Any]] = {}

    def do(self, key: str, load: Callable[[], Any]) -> Any:
        with self.lock:
            future = self.in_flight.get(key)
            leader = future is None
            if leader:
                future = self.in_flight[key] = Future()
        if not leader:
            return future.result(timeout=5)  # wait for the leader's answer
        try:
            future.set_result(load())
        except BaseException as error:
            future.set_exception(error)  # followers see the same error
        finally:
            with self.lock:
                del self.in_flight[key]
        return future.result()


# --8<-- [end:singleflight]


# --8<-- [start:stampede]
def stampede(coalesce: bool, clients: int = 50) -> int:
    """`clients` threads ask for one just-expired key at the same instant; origin calls."""
    cache: dict[str, str] = {}  # empty: the hot key has just expired
    calls = 0
    calls_lock = threading.Lock()
    flight = SingleFlight()
    start = threading.Barrier(clients, timeout=5)

    def origin() -> str:
        nonlocal calls
        with calls_lock:
            calls += 1
        time.sleep(ORIGIN_SECONDS)  # the expensive query
        return "homepage"

    def load() -> str:
        value = origin()
        cache["home"] = value
        return value

    def request() -> str:
        start.wait()  # everyone arrives together, as on a busy site
        if "home" in cache:
            return cache["home"]
        return flight.do("home", load) if coalesce else load()

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda _: request(), range(clients)))
    assert answers == ["homepage"] * clients
    return calls


# --8<-- [end:stampede]


def main() -> None:
    without = stampede(coalesce=False)
    with_coalescing = stampede(coalesce=True)
    print("50 concurrent requests for a hot key that has just expired:")
    print(f"  plain cache-aside:  ~{without} origin calls")
    print(f"  single-flight:      {with_coalescing} origin call")


if __name__ == "__main__":
    main()
