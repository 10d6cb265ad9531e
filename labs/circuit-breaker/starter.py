"""Lab: a circuit breaker that caps a retry storm (docs/design/lab-circuit-breaker.md).

Fill in the TODOs stage by stage; after each, run the stages against this file:

Run: make lab LAB=circuit-breaker FILE=labs/circuit-breaker/starter.py

Copy it first if you like (cp labs/circuit-breaker/starter.py my_breaker.py) and pass
FILE=. The stages import this file as a module and use the classes below by name, so keep
their names and signatures. Only the standard library is needed.

Time comes only from `clock` (a function returning seconds; the stages pass a fake one
they move by hand) and waits only from `sleep`: never call time.time() or time.sleep()
yourself, or the stages cannot run an hour of outage in a millisecond.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpen(Exception):
    """Raised instead of calling the backend while the circuit is open."""


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
        # TODO stage 6: a failure_threshold that is not an integer >= 1, or a reset_timeout
        # that is not a finite number > 0, raises ValueError naming the parameter.
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.clock = clock
        # TODO stage 1: whatever state you need (stage 5: and a threading.Lock)

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed (0 after a success)."""
        # TODO stage 1
        raise NotImplementedError("stage 1: failures")

    @property
    def state(self) -> str:
        """CLOSED, OPEN or HALF_OPEN (open, and reset_timeout has passed since it opened)."""
        # TODO stage 1 (closed), stage 2 (open), stage 3 (half-open)
        raise NotImplementedError("stage 1: state")

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) through the breaker: its result, or its exception re-raised
        unchanged (and counted); CircuitOpen, without calling fn, while open."""
        # TODO stage 1: call fn, count failures, re-raise them unchanged
        # TODO stage 2: open after failure_threshold consecutive failures; while open raise
        #               CircuitOpen (a message that says so) without calling fn
        # TODO stage 3: after reset_timeout, one trial: success closes, failure reopens
        # TODO stage 5: 50 threads at once must get exactly one trial
        raise NotImplementedError("stage 1: call")

    async def call_async(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """The same for asyncio: await fn(*args, **kwargs) through the breaker."""
        # TODO stage 5 (a cancelled trial must not leave the breaker half-open for ever)
        raise NotImplementedError("stage 5: call_async")


class RetryBudget:
    """Retries may be at most `ratio` of the requests recorded in the last `window`
    seconds (the per-client retry budget of the Google SRE book, ch. 21: 10%)."""

    def __init__(
        self, ratio: float = 0.1, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # TODO stage 6: ratio outside [0, 1] or a window that is not a finite number > 0
        # raises ValueError naming the parameter.
        self.ratio, self.window, self.clock = ratio, window, clock

    def record_request(self) -> None:
        """One request (not a retry) was made now."""
        # TODO stage 4
        raise NotImplementedError("stage 4: record_request")

    def try_retry(self) -> bool:
        """True (and the retry is counted) if one more retry stays within the budget."""
        # TODO stage 4
        raise NotImplementedError("stage 4: try_retry")


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
        # TODO stage 6: max_attempts an integer >= 1, base a finite number > 0, cap a
        # finite number >= base; otherwise ValueError naming the parameter.
        self.breaker, self.budget = breaker, budget
        self.max_attempts, self.base, self.cap = max_attempts, base, cap
        self.rng = rng if rng is not None else random.Random()
        self.sleep = sleep

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)], from self.rng."""
        # TODO stage 4
        raise NotImplementedError("stage 4: delay")

    def next_delay(self, attempt: int, error: Exception) -> float | None:
        """After call number `attempt` (0 first) failed with `error`: how long to wait
        before the next one, or None to give up (the circuit is open, no attempts left,
        or the budget will not pay for a retry)."""
        # TODO stage 4
        raise NotImplementedError("stage 4: next_delay")

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Record the request in the budget (once per call, not once per attempt), then
        call fn through the breaker, retrying (after self.sleep(next_delay(...))) while
        next_delay allows it."""
        # TODO stage 4
        raise NotImplementedError("stage 4: call")
