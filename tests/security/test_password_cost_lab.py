"""The password hashing cost lab's "Try it" (docs/security/password-cost-lab.ipynb): with
parallelism=4, argon2id costs the same CPU time per hash as with p=1 when every thread of
the process is counted (time.process_time), and time.thread_time misses the lanes that
libargon2 computes in worker threads — the false speed-up the notebook warns about."""

from __future__ import annotations

import os
import statistics
import time

from argon2.low_level import Type, hash_secret_raw

SALT = os.urandom(16)
REPEATS = 7


def cpu_per_hash(parallelism: int) -> tuple[float, float]:
    """(process CPU seconds, this thread's CPU seconds) for one argon2id hash, 16 MiB, t=1."""
    process, thread = time.process_time(), time.thread_time()
    hash_secret_raw(
        b"guess",
        SALT,
        time_cost=1,
        memory_cost=16 * 1024,
        parallelism=parallelism,
        hash_len=32,
        type=Type.ID,
    )
    return time.process_time() - process, time.thread_time() - thread


def measure() -> dict[int, list[tuple[float, float]]]:
    cpu_per_hash(1), cpu_per_hash(4)  # warm up: first allocations, first threads
    runs: dict[int, list[tuple[float, float]]] = {1: [], 4: []}
    for _ in range(REPEATS):  # interleaved, so load on the machine falls on both
        for p in runs:
            runs[p].append(cpu_per_hash(p))
    return runs


def test_try_it_p4_costs_the_cpu_of_p1_and_thread_time_misses_the_worker_threads():
    # In a fresh interpreter: process_time counts every thread of the process, and an
    # xdist worker may carry a thread another test left running (tests/conftest.py).
    from tests.conftest import in_fresh_process  # here: the fresh process imports this module

    runs = in_fresh_process("tests/security/test_password_cost_lab.py", "m.measure()")
    process = {p: statistics.median(c for c, _ in s) for p, s in runs.items()}
    thread = {p: statistics.median(t for _, t in s) for p, s in runs.items()}
    # Noise budget: observed process-time ratio p=4/p=1 of 1.07x-1.16x over 10 runs (7
    # repeats each) on the shared 2-core machine during the flake hunt; the margin
    # (0.67x-1.5x) holds because the four lanes compute the same blocks as one (RFC 9106
    # §3) and process_time does not count waiting for a core, only the threads' start-up
    # and synchronisation, which is what the 1.07x-1.16x is. thread_time at p=4 was
    # 0.15x-0.18x of p=1's: the margin (0.5x) holds because at p=4 libargon2 computes
    # the lanes in worker threads, and the calling thread only fills the first blocks
    # and computes the tag.
    ratio = process[4] / process[1]
    assert 0.67 < ratio < 1.5, (process, thread)
    assert thread[4] < 0.5 * thread[1], (process, thread)
