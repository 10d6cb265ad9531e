"""Lab: a circuit breaker that caps a retry storm — the reference solution
(docs/design/lab-circuit-breaker.md).

Run: make lab LAB=circuit-breaker FILE=labs/circuit-breaker/solution.py

Only the standard library. Time comes from the clock you are given (a function returning
seconds, time.monotonic by default) and waits from the sleep you are given, so the stages
run hours of simulated outage in milliseconds, with no real sleep.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpen(Exception):
    """Raised instead of calling the backend while the circuit is open."""


def _check_number(name: str, value: object, *, low: float, low_ok: bool, high: float) -> None:
    """A real number (not a bool, not NaN, not infinite) in its range, or a ValueError that
    names the parameter: the place where a wrong setting is cheapest to find."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= low if low_ok else value > low)
    if not (ok and value <= high):
        bound = f"{'>=' if low_ok else '>'} {low:g}" + (f" and <= {high:g}" if high < 1e300 else "")
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_count(name: str, value: object, *, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# Stages 1-3 and 5: the breaker
class CircuitBreaker:
    """closed: calls pass through and consecutive failures are counted; failure_threshold
    of them in a row open it. open: every call raises CircuitOpen without calling the
    backend. reset_timeout seconds after opening it is half-open: the next call is the one
    trial (others still raise CircuitOpen); its success closes the circuit, its failure
    opens it for another reset_timeout."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_count("failure_threshold", failure_threshold, low=1)
        _check_number("reset_timeout", reset_timeout, low=0, low_ok=False, high=math.inf)
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.clock = clock
        self._lock = threading.Lock()  # threads and asyncio tasks alike: never held across a call
        self._state = CLOSED  # HALF_OPEN only while the trial call is in flight
        self._failures = 0
        self._opened_at = 0.0

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed (0 after a success)."""
        return self._failures

    @property
    def state(self) -> str:
        now = self.clock()
        with self._lock:
            if self._state == OPEN and now - self._opened_at >= self.reset_timeout:
                return HALF_OPEN  # the next call will be the trial
            return self._state

    def _admit(self) -> bool:
        """Let a call through (True if it is the half-open trial) or raise CircuitOpen.
        The clock is read before the lock: checking and claiming the trial happen together,
        under the lock, so of many callers exactly one gets it."""
        now = self.clock()
        with self._lock:
            if self._state == CLOSED:
                return False
            if self._state == OPEN and now - self._opened_at >= self.reset_timeout:
                self._state = HALF_OPEN
                return True
            if self._state == HALF_OPEN:
                raise CircuitOpen("circuit half-open: its one trial call is in flight")
            left = self.reset_timeout - (now - self._opened_at)
            raise CircuitOpen(f"circuit open: no call to the backend for another {left:.3g} s")

    def _record(self, ok: bool, trial: bool) -> None:
        now = self.clock()
        with self._lock:
            if trial:
                self._state, self._failures = (CLOSED, 0) if ok else (OPEN, self._failures)
                self._opened_at = self._opened_at if ok else now
            elif self._state == CLOSED:  # a call begun before it opened changes nothing
                self._failures = 0 if ok else self._failures + 1
                if self._failures >= self.failure_threshold:
                    self._state, self._opened_at = OPEN, now

    def _abandon(self, trial: bool) -> None:
        """The call neither succeeded nor failed: cancelled (by asyncio.wait_for's timeout,
        say) or interrupted. A trial that gave no answer is no sign that the backend is
        back, so it reopens the circuit for a fresh cool-down, as a failed trial does,
        instead of leaving it half-open for ever. (Giving the place back, so that the next
        call is the trial, passes the stages too; but then a caller whose timeout cancels
        every trial sends one to a hung backend after another.)"""
        if trial:
            self._record(False, trial)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        trial = self._admit()
        try:
            result = fn(*args, **kwargs)
        except Exception:
            self._record(False, trial)
            raise
        except BaseException:
            self._abandon(trial)
            raise
        self._record(True, trial)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        # The same steps as call() around an await: _admit() and _record() never await, so
        # no other task runs between checking the state and claiming the trial.
        trial = self._admit()
        try:
            result = await fn(*args, **kwargs)
        except Exception:
            self._record(False, trial)
            raise
        except BaseException:  # asyncio.CancelledError is a BaseException
            self._abandon(trial)
            raise
        self._record(True, trial)
        return result


# Stage 4: a retry budget, and retries with capped exponential backoff and full jitter
class RetryBudget:
    """Retries may be at most `ratio` of the requests recorded in the last `window` seconds
    (the per-client retry budget of the Google SRE book, ch. 21: 10%)."""

    def __init__(
        self, ratio: float = 0.1, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        _check_number("ratio", ratio, low=0, low_ok=True, high=1)
        _check_number("window", window, low=0, low_ok=False, high=math.inf)
        self.ratio, self.window, self.clock = ratio, window, clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self._lock = threading.Lock()

    def _forget(self, now: float) -> None:
        for times in (self._requests, self._retries):
            while times and now - times[0] >= self.window:
                times.popleft()

    def record_request(self) -> None:
        now = self.clock()
        with self._lock:
            self._forget(now)
            self._requests.append(now)

    def try_retry(self) -> bool:
        """True (and the retry is counted) if one more retry stays within the budget."""
        now = self.clock()
        with self._lock:
            self._forget(now)
            if len(self._retries) + 1 > self.ratio * len(self._requests) + 1e-9:
                return False
            self._retries.append(now)
            return True


class Retrier:
    """Calls through a breaker, retrying failures up to max_attempts calls in all, each
    retry paid for from the budget and preceded by a full-jitter wait."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        budget: RetryBudget,
        *,
        max_attempts: int = 3,
        base: float = 0.1,
        cap: float = 10.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_count("max_attempts", max_attempts, low=1)
        _check_number("base", base, low=0, low_ok=False, high=math.inf)
        _check_number("cap", cap, low=base, low_ok=True, high=math.inf)
        self.breaker, self.budget = breaker, budget
        self.max_attempts, self.base, self.cap = max_attempts, base, cap
        self.rng = rng if rng is not None else random.Random()  # seeded from os.urandom
        self.sleep = sleep

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] after attempt n failed."""
        return self.rng.uniform(0, min(self.cap, self.base * 2 ** min(attempt, 64)))

    def next_delay(self, attempt: int, error: Exception) -> float | None:
        """After call number `attempt` (0 first) failed with `error`: how long to wait before
        the next one, or None to give up (the circuit is open, no attempts or budget left)."""
        if isinstance(error, CircuitOpen) or attempt + 1 >= self.max_attempts:
            return None
        if not self.budget.try_retry():
            return None
        return self.delay(attempt)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.budget.record_request()
        attempt = 0
        while True:
            try:
                return self.breaker.call(fn, *args, **kwargs)
            except Exception as error:
                wait = self.next_delay(attempt, error)
                if wait is None:
                    raise
                self.sleep(wait)
                attempt += 1
