"""A model, not a measurement: round robin, least connections and power of two choices
across simulated backends of uneven speed, compared on p99 latency in a seeded simulation:
one slow backend ruins round robin.

Run: python snippets/servers/lb_algorithms.py
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Three healthy backends and one 4x slower (a noisy neighbour, a GC storm, a bad disk).
MEAN_SERVICE_MS = [10.0, 10.0, 10.0, 40.0]


# --8<-- [start:backend]
@dataclass
class Backend:
    """A backend that serves one request at a time, first come first served."""

    mean_ms: float
    finish_times: deque[float] = field(default_factory=deque)  # of requests not yet done
    served: int = 0

    def outstanding(self, now: float) -> int:
        """Requests sent here and not finished at time `now`: what the balancer tracks."""
        while self.finish_times and self.finish_times[0] <= now:
            self.finish_times.popleft()
        return len(self.finish_times)

    def accept(self, now: float, work: float) -> float:
        """Queue a request of `work` units; return its latency (queueing + service)."""
        start = max(now, self.finish_times[-1]) if self.finish_times else now
        finish = start + work * self.mean_ms
        self.finish_times.append(finish)
        self.served += 1
        return finish - now


# --8<-- [end:backend]


# --8<-- [start:model]
Picker = Callable[[list[Backend], float], Backend]


def round_robin() -> Picker:
    turn = 0

    def pick(backends: list[Backend], now: float) -> Backend:
        nonlocal turn
        turn += 1
        return backends[turn % len(backends)]

    return pick


def least_connections() -> Picker:
    """The fewest outstanding requests; ties are tried in turn, as NGINX's least_conn does.
    (Breaking ties by "served least" instead would favour the slow backend, which has
    always served least, every time all four are idle.)"""
    turn = 0

    def pick(backends: list[Backend], now: float) -> Backend:
        nonlocal turn
        n = len(backends)  # scan from the one after the last pick; min keeps the first tie
        i = min(((turn + k) % n for k in range(n)), key=lambda i: backends[i].outstanding(now))
        turn = (i + 1) % n
        return backends[i]

    return pick


def power_of_two_choices(seed: int) -> Picker:
    """Ask two random backends, take the less loaded: almost least-connections, but
    needing the load of only 2 backends, not all of them."""
    rng = random.Random(seed)

    def pick(backends: list[Backend], now: float) -> Backend:
        a, b = rng.sample(backends, 2)
        return a if a.outstanding(now) <= b.outstanding(now) else b

    return pick


# --8<-- [end:model]


# --8<-- [start:simulate]
def simulate(
    pick: Picker, n: int = 20_000, rate_per_ms: float = 0.09, seed: int = 1
) -> tuple[list[float], list[int]]:
    """n requests arriving at random (Poisson, 90/s) with random sizes (exponential), the
    same sequence for every algorithm. Returns (latencies in ms, requests per backend)."""
    rng = random.Random(seed)
    backends = [Backend(mean) for mean in MEAN_SERVICE_MS]  # capacity 3 x 100 + 25 = 325/s
    now, latencies = 0.0, []
    for _ in range(n):
        now += rng.expovariate(rate_per_ms)
        work = rng.expovariate(1.0)
        latencies.append(pick(backends, now).accept(now, work))
    return latencies, [b.served for b in backends]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --8<-- [end:simulate]


def compare(seed: int = 1) -> dict[str, tuple[float, float, list[int]]]:
    """(p50, p99, requests per backend) for each algorithm, on one seeded arrival sequence."""
    results = {}
    for name, picker in [
        ("round robin", round_robin()),
        ("least connections", least_connections()),
        ("power of two choices", power_of_two_choices(seed=seed + 1)),
    ]:
        latencies, served = simulate(picker, seed=seed)
        results[name] = (percentile(latencies, 50), percentile(latencies, 99), served)
    return results


def main() -> None:
    results = compare()
    print("A simulation (a model): 20000 requests, Poisson arrivals at 90/s, exponential sizes;")
    print("one FIFO queue per backend; the backends take 10, 10, 10 and 40 ms on average")
    for name, (p50, p99, served) in results.items():
        print(f"{name:21} p50 {p50:.1f} ms  p99 {p99:.1f} ms  requests per backend {served}")
    rr, lc = results["round robin"][1], results["least connections"][1]
    p2c = results["power of two choices"][1]
    print(
        f"p99: round robin {rr / lc:.1f}x worse than least connections;"
        f" power of two choices {p2c / lc:.2f}x, asking only 2 of the 4 backends per request"
    )


if __name__ == "__main__":
    main()
