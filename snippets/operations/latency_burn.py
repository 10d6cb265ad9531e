"""SLO burn-rate alerts on a seeded model of three days of requests: a single-window alert
pages on a blip, fires late or keeps firing long after the incident ends; the multiwindow,
multi-burn-rate alerts of the Google SRE Workbook fire on the incidents and clear quickly.

Run: python snippets/operations/latency_burn.py
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

SEED = 11
SLO = 0.999  # 99.9% of requests succeed ...
PERIOD_DAYS = 30  # ... over a rolling 30 days
PER_MINUTE = 1000  # requests a minute, every minute
MINUTES = 3 * 24 * 60  # the series: three days, one point a minute
BASELINE = 0.0003  # the usual error ratio: burn rate 0.3


@dataclass(frozen=True)
class Event:
    name: str
    start: int  # minute of the series
    minutes: int
    error_ratio: float


EVENTS = (
    Event("blip", 600, 5, 0.03),  # 5 minutes at burn rate 30
    Event("outage", 2000, 20, 0.20),  # a bad deploy, rolled back: 20 minutes at 200
    Event("slow burn", 3000, 360, 0.01),  # a leak of errors for 6 hours at 10
)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Failures among n requests that each fail with probability p (inverting the CDF;
    Python 3.12+ has random.binomialvariate)."""
    if p <= 0.0 or p >= 1.0:  # none fail, or all do (a complete outage)
        return n if p >= 1.0 else 0
    u, k = rng.random(), 0
    term = cdf = (1 - p) ** n
    while u > cdf and k < n:
        term *= (n - k) / (k + 1) * p / (1 - p)
        k += 1
        cdf += term
    return k


def series(seed: int = SEED, events: tuple[Event, ...] = EVENTS) -> list[int]:
    """Failed requests in each minute: a model, seeded."""
    rng = random.Random(seed)
    ratio = [BASELINE] * MINUTES
    for e in events:
        ratio[e.start : e.start + e.minutes] = [e.error_ratio] * e.minutes
    return [binomial(rng, PER_MINUTE, p) for p in ratio]


# --8<-- [start:rules]
@dataclass(frozen=True)
class Rule:
    name: str
    burn: float  # fires when the error ratio is above burn * (1 - SLO) ...
    long: int  # ... over the last `long` minutes
    short: int = 0  # ... and, if set, over the last `short` minutes too
    hold: int = 0  # ... and has been for `hold` minutes (Prometheus's `for:`)


RULES = (
    Rule("5m > 14.4", 14.4, 5),
    Rule("5m > 14.4 for 15m", 14.4, 5, hold=15),
    Rule("1h > 14.4", 14.4, 60),
    Rule("1h and 5m > 14.4", 14.4, 60, short=5),  # the Workbook's page, 2% in an hour
    Rule("6h > 6", 6.0, 360),
    Rule("6h and 30m > 6", 6.0, 360, short=30),  # the Workbook's page, 5% in 6 hours
)


def firing(rule: Rule, failed: list[int]) -> list[bool]:
    """Evaluated once a minute, on windows that end with that minute."""
    total = [0, *itertools.accumulate(failed)]

    def ratio(t: int, window: int) -> float:
        start = max(0, t + 1 - window)
        return (total[t + 1] - total[start]) / ((t + 1 - start) * PER_MINUTE)

    limit = rule.burn * (1 - SLO)
    above = [
        ratio(t, rule.long) > limit and (not rule.short or ratio(t, rule.short) > limit)
        for t in range(len(failed))
    ]
    if not rule.hold:
        return above
    return [t >= rule.hold and all(above[t - rule.hold : t + 1]) for t in range(len(failed))]


# --8<-- [end:rules]


@dataclass
class Response:
    fired_after: int | None  # minutes from the event's start until the rule first fired
    cleared_after: int | None  # minutes from the event's end until it stopped firing


def response(on: list[bool], event: Event, events: tuple[Event, ...] = EVENTS) -> Response:
    """How a rule answered one event. Minute t is evaluated at its end, time t + 1; the
    event runs from time start to time end. Only minutes before the next event count."""
    later = [e.start for e in events if e.start > event.start]
    horizon = min(later, default=len(on))
    end = event.start + event.minutes
    fired = next((t for t in range(event.start, horizon) if on[t]), None)
    if fired is None:
        return Response(None, None)
    quiet = next((t for t in range(max(fired, end), horizon) if not on[t]), horizon)
    return Response(fired + 1 - event.start, quiet + 1 - end)


def alerts(on: list[bool]) -> int:
    """Separate alerts: times the rule went from quiet to firing."""
    return sum(1 for t in range(len(on)) if on[t] and (t == 0 or not on[t - 1]))


def main() -> None:
    failed = series()
    budget = (1 - SLO) * PERIOD_DAYS * 24 * 60 * PER_MINUTE
    print(
        f"SLO: {SLO:.1%} of requests succeed over {PERIOD_DAYS} days; at {PER_MINUTE:,} requests"
        f" a minute the error budget is {budget:,.0f} failed requests"
    )
    print(f"(= {(1 - SLO) * PERIOD_DAYS * 24 * 60:.1f} minutes of full outage)")
    print(f"A model: {MINUTES // 60} hours, seeded; usual error ratio {BASELINE:.2%}")
    for e in EVENTS:
        spent = sum(failed[e.start : e.start + e.minutes])
        print(
            f"  {e.name:9} at minute {e.start:>4}: {e.minutes:>3} min at {e.error_ratio:.0%}"
            f" errors (burn rate {e.error_ratio / (1 - SLO):.0f}): {spent:,} failed,"
            f" {spent / budget:.1%} of the budget"
        )
    print(
        "each event: minutes from its start until the rule fired, +minutes it fired after its end"
    )
    print(
        f"{'rule: window > burn rate':24} {'blip':>7} {'outage':>9} {'slow burn':>10} {'alerts':>7}"
    )
    for rule in RULES:
        on = firing(rule, failed)
        cells = []
        for e in EVENTS:
            r = response(on, e)
            cells.append("-" if r.fired_after is None else f"{r.fired_after} +{r.cleared_after}")
        print(f"{rule.name:24} {cells[0]:>7} {cells[1]:>9} {cells[2]:>10} {alerts(on):>7}")


if __name__ == "__main__":
    main()
