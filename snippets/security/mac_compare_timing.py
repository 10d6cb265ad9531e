"""Why tags are compared with hmac.compare_digest: `==` on bytes can stop at the first
difference, so its time depends on how much of a guess was right; compare_digest's does
not. Guesses wrong at byte 0, byte 1, the middle and the last byte, timed in-process as
medians of paired ratios, at three sizes.

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
SAMPLES = 41
COMPARES: dict[str, Callable[[bytes, bytes], bool]] = {
    "==": operator.eq,
    "hmac.compare_digest": hmac.compare_digest,
}
# Where the one wrong byte of a guess sits. Byte 0 is special in CPython: bytes `==`
# checks it before calling memcmp (Objects/bytesobject.c, bytes_compare_eq), so the
# gradient memcmp adds is measured from byte 1.
POSITIONS = ("byte 0", "byte 1", "middle", "last")


# --8<-- [start:measure]
def guesses(size: int) -> tuple[bytes, dict[str, bytes]]:
    """The expected tag and, per position, a guess equal to it except for that one byte."""
    if size < 3:
        raise ValueError(f"need at least 3 bytes for byte 0, byte 1 and the last, got {size}")
    tag = os.urandom(size)
    where = {"byte 0": 0, "byte 1": 1, "middle": size // 2, "last": size - 1}
    wrong = {}
    for name, i in where.items():
        wrong[name] = tag[:i] + bytes([tag[i] ^ 1]) + tag[i + 1 :]
    return tag, wrong


def per_call_ns(compare: Callable[[bytes, bytes], bool], a: bytes, b: bytes, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        compare(a, b)
    return (time.perf_counter_ns() - start) / calls


def by_position(size: int, samples: int = SAMPLES) -> dict[str, dict[str, float]]:
    """For each comparison: the median ns per call of each wrong-byte position, and the
    medians of the paired ratios middle/byte 1 and last/byte 1. The four guesses are timed
    one after another within each sample (interleaved, the order rotating), so a burst of
    load on the machine hits all of them."""
    tag, wrong = guesses(size)
    calls = max(20, 20_000 // size)  # enough calls per sample to rise above the timer's step
    result = {}
    for name, compare in COMPARES.items():
        per_call_ns(compare, tag, wrong["last"], calls)  # warm up: caches, branch predictors
        times: dict[str, list[float]] = {p: [] for p in POSITIONS}
        for s in range(samples):
            for k in range(len(POSITIONS)):
                position = POSITIONS[(s + k) % len(POSITIONS)]
                times[position].append(per_call_ns(compare, tag, wrong[position], calls))
        row = {p: statistics.median(times[p]) for p in POSITIONS}
        for p in ("middle", "last"):
            pairs = zip(times[p], times["byte 1"], strict=True)
            row[f"{p}/byte 1"] = statistics.median(x / b for x, b in pairs)
        result[name] = row
    return result


# --8<-- [end:measure]


def main() -> None:
    for size in SIZES:
        print(f"{size}-byte tags, median ns per comparison ({SAMPLES} interleaved samples),")
        print(f"  {'the guess is wrong at':22}" + "".join(f"{p:>10}" for p in POSITIONS)
              + "  middle/b1  last/b1")  # fmt: skip
        for name, row in by_position(size).items():
            print(
                f"  {name:22}"
                + "".join(f"{row[p]:10.1f}" for p in POSITIONS)
                + f"  {row['middle/byte 1']:8.2f}x {row['last/byte 1']:7.2f}x"
            )


if __name__ == "__main__":
    main()
