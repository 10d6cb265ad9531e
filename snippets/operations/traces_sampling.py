"""Head sampling in two services with OpenTelemetry: TraceIdRatioBased(0.25) in both makes the
same decision for the same trace id (in this SDK it reads only the id's low 64 bits), so a
trace is kept whole or dropped whole; a coin flipped in each service instead leaves many
traces half-recorded; ParentBased makes B follow the sampled flag A sends in traceparent.

Run: python snippets/operations/traces_sampling.py
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()
RATE = 0.25
TRACES = 1_000  # requests per run, each one trace: A's span, then B's
IDS = 10_000  # trace ids for the bit-level check (sampler calls only: cheap)
LOW_64 = (1 << 64) - 1


class SeededIds(IdGenerator):
    """Random ids from a seeded generator: the same ids, so the same counts, every run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def generate_span_id(self) -> int:
        while not (span_id := self.rng.getrandbits(64)):
            pass
        return span_id

    def generate_trace_id(self) -> int:
        while not (trace_id := self.rng.getrandbits(128)):
            pass
        return trace_id


# --8<-- [start:coin]
class CoinFlip(Sampler):
    """The control: each service flips its own coin, ignoring the trace id and the parent."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate, self.rng = rate, random.Random(seed)

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None) -> SamplingResult:  # fmt: skip
        if self.rng.random() < self.rate:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return f"CoinFlip{{{self.rate}}}"


# --8<-- [end:coin]


@dataclass
class Counts:
    whole: int  # both services recorded their span
    only_a: int  # half-recorded: A's span without B's
    only_b: int  # half-recorded: B's span without its parent
    neither: int
    a: set[int]  # the trace ids each service recorded
    b: set[int]
    flags: dict[str, int]  # the trace-flags A sent B in traceparent: "01" or "00", how often


# --8<-- [start:run]
def run(sampler_a: Sampler, sampler_b: Sampler, traces: int = TRACES, seed: int = 1) -> Counts:
    """`traces` requests: A starts a trace (its sampler decides for the root span), puts
    traceparent on its call to B, and B starts its span from it (B's sampler decides)."""
    services = []
    for name, sampler in (("A", sampler_a), ("B", sampler_b)):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=sampler, resource=Resource({"service.name": name}),
                                  id_generator=SeededIds(seed))  # fmt: skip
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        services.append((provider.get_tracer("backend-fundamentals.sampling"), exporter))
    (tracer_a, exported_a), (tracer_b, exported_b) = services
    flags = {"00": 0, "01": 0}
    for _ in range(traces):
        with tracer_a.start_as_current_span("GET /orders/{item}", kind=SpanKind.SERVER):
            fields: dict[str, str] = {}
            PROPAGATOR.inject(fields)  # sent even when A did not sample: then flags are 00
        flags[fields["traceparent"][-2:]] += 1
        parent = PROPAGATOR.extract(fields)  # what B reads from the request
        with tracer_b.start_as_current_span("GET /stock/{item}", context=parent,
                                            kind=SpanKind.SERVER):  # fmt: skip
            pass
    a = {s.context.trace_id for s in exported_a.get_finished_spans()}
    b = {s.context.trace_id for s in exported_b.get_finished_spans()}
    return Counts(len(a & b), len(a - b), len(b - a), traces - len(a | b), a, b, flags)


# --8<-- [end:run]


# --8<-- [start:bits]
def decide(sampler: Sampler, trace_id: int) -> bool:
    """The sampler's decision for a root span of this trace id."""
    result = sampler.should_sample(None, trace_id, "GET /orders/{item}")
    return result.decision is Decision.RECORD_AND_SAMPLE


def bits(rate: float = RATE, ids: int = IDS, seed: int = 7) -> dict[str, int]:
    """How many of `ids` decisions stay the same when the id's high or low 64 bits change."""
    rng, sampler = random.Random(seed), TraceIdRatioBased(rate)
    same_high = same_low = rule = 0
    bound = round(rate * 2**64)  # this SDK's rule: sample if the low 64 bits are below it
    for _ in range(ids):
        trace_id = rng.getrandbits(128)
        decision = decide(sampler, trace_id)
        rule += decision == ((trace_id & LOW_64) < bound)
        new_high = (rng.getrandbits(64) << 64) | (trace_id & LOW_64)
        new_low = (trace_id & ~LOW_64) | rng.getrandbits(64)
        same_high += decide(sampler, new_high) == decision
        same_low += decide(sampler, new_low) == decision
    return {"ids": ids, "rule": rule, "same_high": same_high, "same_low": same_low}


# --8<-- [end:bits]


def margin(k: int, n: int) -> str:
    """k/n with its 95% margin (normal approximation to the binomial, 1.96 standard errors)."""
    p = k / n
    return f"{100 * p:.1f}% ± {100 * 1.96 * math.sqrt(p * (1 - p) / n):.1f}%"


ROWS = [  # (label, A's sampler, B's sampler)
    ("TraceIdRatioBased(0.25) in both", lambda: TraceIdRatioBased(RATE),
     lambda: TraceIdRatioBased(RATE)),
    ("a coin flip, p=0.25, in each (control)", lambda: CoinFlip(RATE, 1),
     lambda: CoinFlip(RATE, 2)),
    ("ParentBased(TraceIdRatioBased(0.25)) in both", lambda: ParentBased(TraceIdRatioBased(RATE)),
     lambda: ParentBased(TraceIdRatioBased(RATE))),
    ("A: ratio 0.25, B: TraceIdRatioBased(0.10)", lambda: TraceIdRatioBased(RATE),
     lambda: TraceIdRatioBased(0.10)),
    ("A: ratio 0.25, B: ParentBased(ratio 0.10)", lambda: TraceIdRatioBased(RATE),
     lambda: ParentBased(TraceIdRatioBased(0.10))),
]  # fmt: skip


def main() -> None:
    print(f"{TRACES:,} requests, each a trace: A's span, then B's (traceparent from A to B)\n")
    print(f"{'samplers':<46}{'whole':>7}{'A only':>8}{'B only':>8}{'neither':>9}")
    results = {}
    for label, make_a, make_b in ROWS:
        c = results[label] = run(make_a(), make_b())
        print(f"{label:<46}{c.whole:>7}{c.only_a:>8}{c.only_b:>8}{c.neither:>9}")
    first = results[ROWS[0][0]]
    coin = results[ROWS[1][0]]
    print(f"\nkept whole with TraceIdRatioBased(0.25): {margin(first.whole, TRACES)} "
          f"(95% binomial margin; the ratio is 25%)")  # fmt: skip
    half = coin.only_a + coin.only_b
    print(f"half-recorded with coin flips: {half} of {TRACES:,}, {margin(half, TRACES)} "
          f"(expected 2 x 0.25 x 0.75 = 37.5%)")  # fmt: skip
    print(f"trace-flags A sent B: 01 (sampled) {first.flags['01']}, 00 {first.flags['00']}")
    b = bits()
    print(f"\n{b['ids']:,} random trace ids, TraceIdRatioBased(0.25) of opentelemetry-sdk:")
    print(f"  decisions equal to 'low 64 bits < 0.25 x 2^64': {b['rule']:,}")
    print(f"  same decision after the high 64 bits are replaced: {b['same_high']:,}")
    print(f"  same decision after the low 64 bits are replaced (control): {b['same_low']:,}"
          f" (chance agreement: 0.25^2 + 0.75^2 = 62.5%)")  # fmt: skip


if __name__ == "__main__":
    main()
