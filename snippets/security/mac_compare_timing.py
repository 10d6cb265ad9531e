"""Why tags are compared with hmac.compare_digest: `==` on bytes stops at the first
difference, so its time depends on how much of a guess was right; compare_digest's does
not. Measured in-process as the median of paired last/first ratios, at three sizes.

Run: python snippets/security/mac_compare_timing.py
"""

from __future__ import annotations

import hmac
import operator
import os
import statistics
import time
from collections.abc import Callable

SIZES = (32, 1024, 65536)  # a real tag, then larger inputs to make the early exit visible
COMPARES: dict[str, Callable[[bytes, bytes], bool]] = {
    "==": operator.eq,
    "hmac.compare_digest": hmac.compare_digest,
}


# --8<-- [start:measure]
def guesses(size: int) -> tuple[bytes, bytes, bytes]:
    """The expected tag, a guess wrong in its FIRST byte, a guess wrong only in its LAST."""
    if size < 2:
        raise ValueError(f"need at least 2 bytes to differ first or last, got {size}")
    tag = os.urandom(size)
    first = bytes([tag[0] ^ 1]) + tag[1:]
    last = tag[:-1] + bytes([tag[-1] ^ 1])
    return tag, first, last


def per_call_ns(compare: Callable[[bytes, bytes], bool], a: bytes, b: bytes, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        compare(a, b)
    return (time.perf_counter_ns() - start) / calls


def late_over_early(size: int, samples: int = 41) -> dict[str, tuple[float, float, float]]:
    """For each comparison: median ns per call for the first-byte and the last-byte guess,
    and the median of the paired ratios last/first. The two guesses alternate sample by
    sample (interleaved), so a burst of load on the machine hits both of a pair."""
    tag, first, last = guesses(size)
    calls = max(20, 20_000 // size)  # enough calls per sample to rise above the timer's step
    result = {}
    for name, compare in COMPARES.items():
        per_call_ns(compare, tag, first, calls)  # warm up: caches, branch predictors
        early, late = [], []
        for _ in range(samples):
            early.append(per_call_ns(compare, tag, first, calls))
            late.append(per_call_ns(compare, tag, last, calls))
        ratio = statistics.median(la / e for e, la in zip(early, late, strict=True))
        result[name] = (statistics.median(early), statistics.median(late), ratio)
    return result


# --8<-- [end:measure]


def main() -> None:
    for size in SIZES:
        print(f"{size}-byte tags, median ns per comparison, 41 interleaved pairs of samples:")
        for name, (early, late, ratio) in late_over_early(size).items():
            print(
                f"  {name:20} wrong first byte {early:9.1f}  wrong last byte {late:9.1f}"
                f"  last/first {ratio:5.2f}x"
            )


if __name__ == "__main__":
    main()
