"""Three layers that each try 3 times turn one request into 27 calls to a failing backend;
retrying only above the failure, or a 10% retry budget per client, caps it.

Run: python snippets/design/retries_amplify.py
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

ATTEMPTS = 3  # per layer, per request: the first try and two retries


# --8<-- [start:layers]
class Failed(Exception):
    """A call failed. retryable=False is the "overloaded; don't retry" answer."""

    def __init__(self, why: str, retryable: bool = True) -> None:
        super().__init__(why)
        self.retryable = retryable


class Backend:
    """The bottom of the stack. It fails every call while down, or every `fail_every`th."""

    def __init__(self, down: bool = False, fail_every: int = 0) -> None:
        self.down, self.fail_every, self.calls = down, fail_every, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.down or (self.fail_every and self.calls % self.fail_every == 0):
            raise Failed("overloaded")
        return "ok"


class RetryBudget:
    """Google SRE book ch. 21: a client retries only while its retries stay under `ratio`
    of its requests -- here, of its last `window` requests. Without the window, credit
    earned while healthy piles up and is all spent at once when the outage comes."""

    def __init__(self, ratio: float = 0.1, window: int = 100) -> None:
        self.ratio = ratio
        self.recent: deque[int] = deque(maxlen=window)  # retries of each recent request

    def new_request(self) -> None:
        self.recent.append(0)  # the oldest request (and its retries) leaves the window

    def allows_retry(self) -> bool:
        return sum(self.recent) + 1 <= self.ratio * len(self.recent)

    def spend(self) -> None:
        self.recent[-1] += 1


class Layer:
    """One service: calls the layer below up to `attempts` times per request."""

    def __init__(
        self,
        below: Callable[[], str],
        attempts: int = ATTEMPTS,
        budget: RetryBudget | None = None,
        only_above_failure: bool = False,
    ) -> None:
        self.below, self.attempts, self.budget = below, attempts, budget
        self.only_above_failure = only_above_failure

    def __call__(self) -> str:
        if self.budget:
            self.budget.new_request()
        for attempt in range(1, self.attempts + 1):
            try:
                return self.below()
            except Failed as failure:
                last = attempt == self.attempts
                if last or not failure.retryable:
                    if self.only_above_failure:  # we retried; tell the layers above not to
                        raise Failed(str(failure), retryable=False) from None
                    raise
                if self.budget:
                    if not self.budget.allows_retry():
                        raise  # budget spent: fail now, as if this were the last attempt
                    self.budget.spend()
        raise AssertionError("unreachable")


def stack(backend: Backend, policy: str) -> Callable[[], str]:
    """frontend -> middle -> storage client -> backend, every layer with the same policy."""
    layer: Callable[[], str] = backend
    for _ in range(3):
        if policy == "no retries":
            layer = Layer(layer, attempts=1)
        else:
            layer = Layer(layer, budget=RetryBudget(0.1) if "budget" in policy else None,
                          only_above_failure="above" in policy)  # fmt: skip
    return layer


# --8<-- [end:layers]

POLICIES = (
    "no retries",
    "3 attempts at every layer",
    "retry only above the failure",
    "10% retry budget per layer",
)


def serve(requests: int, policy: str, warm: int = 0, **backend_state) -> tuple[int, int]:
    """`requests` user requests through a fresh stack, after `warm` requests while the backend
    was healthy: (backend calls, requests answered ok), both counted after the warm-up."""
    backend = Backend()
    top, ok = stack(backend, policy), 0
    for _ in range(warm):
        top()
    backend.__init__(**backend_state)  # now the outage (or the flaky backend) starts
    for _ in range(requests):
        try:
            top()
            ok += 1
        except Failed:
            pass
    return backend.calls, ok


def main() -> None:
    print("Backend calls made for user requests through 3 layers (3 attempts each at most)")
    print(f"{'':<30}{'backend down':>28}{'1 call in 10 fails':>24}")
    print(f"{'policy':<30}{'1 request':>12}{'100 requests':>16}{'100 requests: ok, calls':>24}")
    for policy in POLICIES:
        one, _ = serve(1, policy, down=True)
        hundred, _ = serve(100, policy, down=True)
        calls, ok = serve(100, policy, fail_every=10)
        print(f"{policy:<30}{one:>12,}{hundred:>16,}{f'{ok}, {calls}':>24}")
    warmed, _ = serve(100, POLICIES[-1], warm=1000, down=True)
    print(f"10% budget, backend down after 1,000 healthy requests: {warmed} calls for 100")


if __name__ == "__main__":
    main()
