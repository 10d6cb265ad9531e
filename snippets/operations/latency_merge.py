"""Averaged percentiles lie: the mean of four instances' p99s is not the p99 of their
requests, while HDR histograms merged with add() give it (to 3 significant digits). A seeded
model of request latencies, not a measurement.

Run: python snippets/operations/latency_merge.py
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

SEED = 7


@dataclass
class Instance:
    requests: int
    median_ms: float  # latencies are log-normal around this median
    sigma: float = 0.5  # spread: p99 is median * e^(2.33 * sigma), 3.2x the median here


SCENARIOS = {
    "four alike": [Instance(5000, 20.0)] * 4,
    "one slow of four": [Instance(5000, 20.0)] * 3 + [Instance(5000, 150.0)],
}


def latencies_ms(instance: Instance, rng: random.Random) -> list[float]:
    mu = math.log(instance.median_ms)
    return [rng.lognormvariate(mu, instance.sigma) for _ in range(instance.requests)]


# --8<-- [start:merge]
def histogram(values_ms: list[float]) -> HdrHistogram:
    h = HdrHistogram(1, 60_000_000, 3)  # microseconds, 1 us to 60 s, 3 significant digits
    for ms in values_ms:
        h.record_value(max(1, round(ms * 1e3)))
    return h


def p99_ms(h: HdrHistogram) -> float:
    return h.get_value_at_percentile(99.0) / 1e3


@dataclass
class Fleet:
    p99s: list[float]  # each instance's own p99, ms (what a per-instance summary exports)
    average_of_p99s: float  # what a dashboard shows with avg(...{quantile="0.99"})
    merged_p99: float  # every instance's histogram added into one, then its p99
    exact_p99: float  # the 99th percentile of all the requests, sorted
    mean: float  # the mean of all the requests


def fleet(instances: list[Instance], seed: int = SEED) -> Fleet:
    rng = random.Random(seed)
    per_instance = [latencies_ms(i, rng) for i in instances]
    histograms = [histogram(values) for values in per_instance]
    merged = HdrHistogram(1, 60_000_000, 3)
    for h in histograms:
        merged.add(h)  # counts add bucket by bucket: nothing is lost
    everything = sorted(v for values in per_instance for v in values)
    rank = math.ceil(0.99 * len(everything))  # the smallest value >= 99% of requests
    p99s = [p99_ms(h) for h in histograms]
    return Fleet(
        p99s=p99s,
        average_of_p99s=sum(p99s) / len(p99s),
        merged_p99=p99_ms(merged),
        exact_p99=everything[rank - 1],
        mean=sum(everything) / len(everything),
    )


# --8<-- [end:merge]


def main() -> None:
    print("A model: log-normal request latencies, seeded; in ms")
    for name, instances in SCENARIOS.items():
        f = fleet(instances)
        requests = " / ".join(f"{i.requests:,}" for i in instances)
        print(f"{name}: {requests} requests")
        print("  each instance's p99:  " + "  ".join(f"{p:.1f}" for p in f.p99s))
        print(f"  average of the p99s:  {f.average_of_p99s:.1f}")
        print(
            f"  merged histogram p99: {f.merged_p99:.1f}  (all requests sorted: {f.exact_p99:.1f})"
        )
        print(f"  mean of all requests: {f.mean:.1f}")
        print(f"  average of p99s / true p99: {f.average_of_p99s / f.exact_p99:.2f}")


if __name__ == "__main__":
    main()
