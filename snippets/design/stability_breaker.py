"""A circuit breaker with an injected clock: after 5 consecutive failures it stops calling a
failing backend, lets one trial through after a cool-down, and closes when the backend is back.

Run: python snippets/design/stability_breaker.py
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


# --8<-- [start:breaker]
class CircuitOpen(Exception):
    """Raised instead of calling the backend: the breaker is open (or a trial is running)."""


class CircuitBreaker:
    """closed -> open after `failure_threshold` consecutive failures -> half-open once
    `reset_timeout` seconds have passed (one trial call) -> closed if the trial succeeds,
    open again if it fails. A trial that has not reported back after another
    `reset_timeout` is given up on: the next caller is a new trial. Any exception counts
    as a failure. `clock` returns seconds; a test passes a fake one."""

    def __init__(
        self, failure_threshold: int, reset_timeout: float, clock: Callable[[], float]
    ) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int):
            raise TypeError(f"failure_threshold must be an int, got {failure_threshold!r}")
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if isinstance(reset_timeout, bool) or not isinstance(reset_timeout, (int, float)):
            raise TypeError(f"reset_timeout must be a number of seconds, got {reset_timeout!r}")
        if not (reset_timeout > 0 and math.isfinite(reset_timeout)):
            raise ValueError(f"reset_timeout must be > 0 and finite, got {reset_timeout}")
        self.failure_threshold, self.reset_timeout, self.clock = (
            failure_threshold, reset_timeout, clock)  # fmt: skip
        self.state = "closed"
        self.failures = 0  # consecutive failures while closed
        self.since = clock()  # when the state last changed
        self.generation = 0  # +1 at every change of state
        self.lock = threading.Lock()  # state changes are atomic for threaded callers

    def _set(self, state: str) -> None:  # called with the lock held
        self.state, self.generation, self.failures = state, self.generation + 1, 0
        self.since = self.clock()

    def _admit(self) -> int:
        with self.lock:
            if self.state != "closed":
                if self.clock() - self.since < self.reset_timeout:
                    raise CircuitOpen(
                        "open: failing fast" if self.state == "open"
                        else "half-open: a trial call is running")  # fmt: skip
                # cool-down over, or the last trial never reported back (it hangs):
                self._set("half-open")  # this caller is the one trial
            return self.generation

    def _record(self, ok: bool, generation: int) -> None:
        with self.lock:
            if generation != self.generation:
                return  # admitted before the last change of state: its outcome is stale
            if ok:
                if self.state != "closed":
                    self._set("closed")
                self.failures = 0
            elif self.state == "half-open" or self.failures + 1 >= self.failure_threshold:
                self._set("open")
            else:
                self.failures += 1

    def call(self, backend: Callable[[], T]) -> T:
        generation = self._admit()
        ok = False
        try:
            result = backend()
            ok = True
        finally:  # every outcome is recorded, even KeyboardInterrupt or a cancellation
            self._record(ok, generation)
        return result


# --8<-- [end:breaker]


# --8<-- [start:scenario]
class FakeClock:
    """Time that moves only when the test says so: no sleeps, the same every run."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Down (every call raises) from `down_from` to `down_until` seconds; counts every call."""

    def __init__(self, clock: FakeClock, down_from: float, down_until: float) -> None:
        self.clock, self.down_from, self.down_until = clock, down_from, down_until
        self.calls_at: list[float] = []

    def __call__(self) -> str:
        self.calls_at.append(self.clock())
        if self.down_from <= self.clock() < self.down_until:
            raise ConnectionError("backend down")
        return "ok"


def run(
    breaker: bool, seconds: int = 60, down: tuple[float, float] = (10, 40),
    threshold: int = 5, reset_timeout: float = 10, kind: type | None = None,
) -> dict[str, int | list[float] | list[str]]:  # fmt: skip
    """One caller makes one request per second for `seconds` s; the backend is down during
    `down`. Returns counts: backend calls (during the outage), answers, the breaker's states."""
    clock = FakeClock()
    backend = Backend(clock, *down)
    cb = (kind or CircuitBreaker)(threshold, reset_timeout, clock) if breaker else None
    ok = failed = fast = 0
    states = []
    for second in range(seconds):
        clock.now = float(second)
        try:
            cb.call(backend) if cb else backend()
            ok += 1
        except CircuitOpen:
            fast += 1
        except ConnectionError:
            failed += 1
        states.append(cb.state if cb else "-")
    during = [t for t in backend.calls_at if down[0] <= t < down[1]]
    return {
        "backend calls": len(backend.calls_at), "during outage": len(during),
        "ok": ok, "failed by backend": failed, "failed fast": fast,
        "calls_at": backend.calls_at, "states": states,
    }  # fmt: skip


# --8<-- [end:scenario]


# --8<-- [start:storm]
class NoTrialLimit(CircuitBreaker):
    """Break it: half-open lets every caller through, not one trial."""

    def _admit(self) -> int:
        with self.lock:
            if self.state == "open":
                if self.clock() - self.since < self.reset_timeout:
                    raise CircuitOpen("open: failing fast")
                self._set("half-open")
            return self.generation


def trial_storm(breaker_class: type[CircuitBreaker], callers: int = 10) -> int:
    """`callers` threads call a breaker that has just become due for a trial, while the
    first call is still running (the backend holds it until every other caller has either
    been refused or is inside the backend too). Returns how many calls reached the backend."""
    clock = FakeClock()
    cb = breaker_class(1, 10, clock)
    with contextlib.suppress(ConnectionError):
        cb.call(Backend(clock, 0, 1))  # one failure: open at t=0
    clock.now = 10.0  # the cool-down is over: the next caller is the trial
    settled = threading.Semaphore(0)  # one release per caller refused or inside the backend
    trial_running = threading.Event()
    entered: list[int] = []

    def backend() -> str:
        entered.append(1)
        if len(entered) > 1:  # another caller got in while the trial runs
            settled.release()
            return "ok"
        trial_running.set()  # the first caller: hold until the others have settled
        for _ in range(callers - 1):
            if not settled.acquire(timeout=5):
                raise TimeoutError("a caller never settled")
        return "ok"

    def caller() -> None:
        try:
            cb.call(backend)
        except CircuitOpen:
            settled.release()

    first = threading.Thread(target=caller)
    first.start()
    if not trial_running.wait(timeout=5):  # the trial is in flight before the others start
        raise TimeoutError("the trial call never started")
    others = [threading.Thread(target=caller) for _ in range(callers - 1)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(timeout=10)
    return len(entered)


# --8<-- [end:storm]


def timeline(states: list[str]) -> str:
    """One letter per second: C closed, O open, H half-open (after that second's call)."""
    return "".join({"closed": "C", "open": "O", "half-open": "H", "-": "."}[s] for s in states)


def main() -> None:
    print("One request per second for 60 s; the backend is down from t=10 to t=40 s.")
    print("Breaker: opens after 5 consecutive failures, one trial after 10 s open.\n")
    print(f"{'':<14}{'backend calls':>16}{'answers':>18}")
    print(f"{'':<14}{'all':>5}{'in outage':>11}{'ok':>6}{'failed':>8}{'failed fast':>13}")
    for breaker in (False, True):
        r = run(breaker)
        name = "with breaker" if breaker else "no breaker"
        print(
            f"{name:<14}{r['backend calls']:>5}{r['during outage']:>11}{r['ok']:>6}"
            f"{r['failed by backend']:>8}{r['failed fast']:>13}"
        )
    r = run(True)
    print("\nBackend calls during the outage, with the breaker (t in s):")
    print("  " + ", ".join(f"{t:.0f}" for t in r["calls_at"] if 10 <= t < 40))
    print("Breaker state after each second (C closed, O open):")
    line = timeline(r["states"])
    for start in range(0, 60, 20):
        print(f"  t={start:>2}-{start + 19:<2} {line[start : start + 20]}")
    print("\n10 threads call just as the cool-down ends, while the first call is running:")
    for cls in (CircuitBreaker, NoTrialLimit):
        print(f"  {cls.__name__:<16}{trial_storm(cls)} backend call(s)")


if __name__ == "__main__":
    main()
