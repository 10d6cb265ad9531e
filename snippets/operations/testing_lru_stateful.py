"""A Hypothesis stateful test drives an LRU cache and a simple model with the same random
sequence of puts and gets, finds two planted bugs and shrinks each to its shortest sequence;
the correct cache passes.

Run: python snippets/operations/testing_lru_stateful.py
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)


# --8<-- [start:cache]
class LRUCache:
    """At most `capacity` entries; a put into a full cache evicts the least recently used."""

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.capacity = capacity
        self.data: OrderedDict[Any, Any] = OrderedDict()  # least recently used first

    def get(self, key: Any) -> Any | None:
        if key not in self.data:
            return None
        self.data.move_to_end(key)  # a hit makes the key the most recently used
        return self.data[key]

    def put(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.capacity:
            self.data.popitem(last=False)  # evict the least recently used

    def keys(self) -> list[Any]:
        """The cached keys, least recently used first (the next to be evicted)."""
        return list(self.data)


class NoRefreshOnGet(LRUCache):
    """Planted bug 1: a hit does not refresh recency (it behaves as FIFO)."""

    def get(self, key: Any) -> Any | None:
        return self.data.get(key)


class EvictsOneLate(LRUCache):
    """Planted bug 2: evicts only when more than one entry over capacity (off by one)."""

    def put(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.capacity + 1:
            self.data.popitem(last=False)


# --8<-- [end:cache]


# --8<-- [start:machine]
KEYS = st.integers(0, 4)  # few keys, so gets hit and puts overwrite
STEPS = 10  # at most this many steps per sequence
EXAMPLES = 50  # sequences per run


def machine_for(
    cache_class: type[LRUCache], log: list[list[str]], check_order: bool = True
) -> type[RuleBasedStateMachine]:
    class LRUAgainstModel(RuleBasedStateMachine):
        """The model is a dict and a list of keys, least recently used first: obviously
        right, too slow to ship. Every step does the same thing to both and compares."""

        @initialize(capacity=st.integers(1, 4))
        def make(self, capacity: int) -> None:
            self.cache = cache_class(capacity)
            self.model: dict[int, int] = {}
            self.order: list[int] = []
            self.capacity = capacity
            self.steps = [f"cache = {cache_class.__name__}(capacity={capacity})"]
            log.append(self.steps)

        def touch(self, key: int) -> None:
            if key in self.order:
                self.order.remove(key)
            self.order.append(key)

        @rule(key=KEYS, value=st.integers(0, 99))
        def put(self, key: int, value: int) -> None:
            self.steps.append(f"cache.put({key}, {value})")
            self.cache.put(key, value)
            self.model[key] = value
            self.touch(key)
            if len(self.order) > self.capacity:
                del self.model[self.order.pop(0)]

        @rule(key=KEYS)
        def get(self, key: int) -> None:
            self.steps.append(f"cache.get({key})")
            expected = self.model.get(key)
            if key in self.model:
                self.touch(key)
            got = self.cache.get(key)
            assert got == expected, f"get({key}) returned {got}, the model says {expected}"

        @invariant()
        def same_keys_in_same_order(self) -> None:  # after every step
            if check_order and hasattr(self, "cache"):
                got = self.cache.keys()
                assert got == self.order, f"cache.keys() is {got}, the model's is {self.order}"

    return LRUAgainstModel


def find_bug(
    cache_class: type[LRUCache], max_examples: int = EXAMPLES, check_order: bool = True
) -> tuple[str, list[str]]:
    """('', last run's steps) if the property held; else (the failure, the shrunk steps)."""
    log: list[list[str]] = []
    machine = machine_for(cache_class, log, check_order)
    config = settings(
        max_examples=max_examples,
        stateful_step_count=STEPS,
        derandomize=True,  # the same sequences every run, so the output can be recorded
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],  # no explain phase: it only annotates
        suppress_health_check=[HealthCheck.too_slow],
    )
    try:
        run_state_machine_as_test(machine, settings=config)
    except AssertionError as error:
        return str(error), log[-1]  # Hypothesis replays the shrunk sequence last
    return "", log[-1] if log else []


# --8<-- [end:machine]


def main() -> None:
    for cache_class in (NoRefreshOnGet, EvictsOneLate, LRUCache):
        error, steps = find_bug(cache_class)
        print(f"{cache_class.__name__}: ", end="")
        if not error:
            print(f"passes ({EXAMPLES} random sequences of up to {STEPS} steps)")
            continue
        print(f"fails; shrunk to {len(steps) - 1} steps:")
        for step in steps:
            print(f"    {step}")
        print(f"  -> {error}")


if __name__ == "__main__":
    main()
