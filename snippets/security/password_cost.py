"""What a slow password hash buys: guesses per second against one salted SHA-256 hash vs
argon2id (t=3, p=4, RFC 9106's shape) at three memory sizes, as ratios of medians.

Run: python snippets/security/password_cost.py
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time

from argon2.low_level import Type, hash_secret_raw

# RFC 9106 §4's SECOND RECOMMENDED option is t=3, p=4, m=64 MiB. One such hash took
# 0.25-0.47 s on the shared 2-core machine (10 runs, load ~5) and over a second when it was
# busier: too slow to repeat at several sizes within a snippet's budget, so this timing
# runs the same t and p at smaller m (labelled on the page) and shows the trend.
# Both rates are wall-clock: SHA-256 runs in this one thread, argon2id with p=4 in up to
# four threads (argon2-cffi: parallelism is the "number of parallel threads").
TIME_COST, PARALLELISM = 3, 4
MEMORY_KIB = (1024, 4096, 16384)
ROUNDS = 5  # argon2 samples per size; SHA-256 gets one batch per round and size


# --8<-- [start:measure]
def sha256_guesses_per_second(salt: bytes, batch: int = 2000) -> float:
    """One batch of guesses against a salted SHA-256: what an attacker's loop does."""
    start = time.perf_counter()
    for n in range(batch):
        hashlib.sha256(salt + b"guess%d" % n).digest()
    return batch / (time.perf_counter() - start)


def argon2_guesses_per_second(salt: bytes, memory_kib: int) -> float:
    """One argon2id hash (one guess) at the given memory, t=3, p=4."""
    start = time.perf_counter()
    hash_secret_raw(
        b"guess", salt, time_cost=TIME_COST, memory_cost=memory_kib,
        parallelism=PARALLELISM, hash_len=32, type=Type.ID,
    )  # fmt: skip
    return 1 / (time.perf_counter() - start)


def measure(rounds: int = ROUNDS) -> dict[int, tuple[float, float]]:
    """{memory KiB: (median SHA-256 guesses/s, median argon2id guesses/s)}. The two are
    interleaved round by round, so load on the machine falls on both."""
    salt = os.urandom(16)
    fast: dict[int, list[float]] = {m: [] for m in MEMORY_KIB}
    slow: dict[int, list[float]] = {m: [] for m in MEMORY_KIB}
    sha256_guesses_per_second(salt), argon2_guesses_per_second(salt, MEMORY_KIB[0])  # warm up
    for _ in range(rounds):
        for m in MEMORY_KIB:
            fast[m].append(sha256_guesses_per_second(salt))
            slow[m].append(argon2_guesses_per_second(salt, m))
    return {m: (statistics.median(fast[m]), statistics.median(slow[m])) for m in MEMORY_KIB}


# --8<-- [end:measure]


def main() -> None:
    print(f"Guesses per second (wall-clock) against one salted hash, medians of {ROUNDS}")
    print("interleaved rounds; SHA-256 in one thread, argon2id p=4 in up to 4 threads:")
    print("  argon2id t=3 p=4 at   SHA-256/s    argon2id/s   SHA-256 is faster by")
    for memory, (fast, slow) in measure().items():
        print(f"  {memory // 1024:4d} MiB   {fast:12.1f} {slow:12.1f}   {fast / slow:12.1f}x")


if __name__ == "__main__":
    main()
