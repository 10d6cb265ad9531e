"""CPU-bound work on threads and on processes, and which calls release CPython's GIL: a
witness thread counts how often it ran while the main thread computed.

Run: python snippets/design/cpu_parallelism_gil.py
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import sys
import sysconfig
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

PURE_N = 200_000  # loop steps of the pure-Python task (14-24 ms of CPU here, varying)
BIG = 32 * 2**20  # bytes hashed or compressed in one call
SMALL = 1024  # bytes per call for hashlib below its GIL threshold (2047 bytes)
# The speedup table: calls of ~65-110 ms of CPU, median of 4 rounds, ~3 s in all. With calls
# of 15-22 ms and 3 rounds, four runs on this quiet 2-vCPU VM gave 2 processes of pure
# Python 0.83x to 2.11x: a few ms lost moved a whole round, and two bad rounds the median.
LOOPS = 5  # the table's pure-Python call: 5 x PURE_N loop steps
HASHES = 3  # the table's hashing call: 3 hashlib calls on 32 MiB
ROUNDS = 4


# --8<-- [start:build]
def cores() -> tuple[int, int | None]:
    """CPUs this process may run on (its affinity mask) and CPUs in the machine."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return usable or os.cpu_count() or 1, os.cpu_count()


def build() -> dict[str, object]:
    """Which interpreter this is, whether its GIL is on, and free-threaded ones installed."""
    gil_check = getattr(sys, "_is_gil_enabled", None)  # added in 3.13
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "free-threaded build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "GIL enabled": gil_check() if gil_check else "yes (no sys._is_gil_enabled before 3.13)",
        # _hashlib is the OpenSSL-backed module (built-in fallbacks: _sha256, _sha2 in 3.12+)
        "hashlib.sha256 objects": f"{type(hashlib.sha256()).__module__}."
        f"{type(hashlib.sha256()).__qualname__}",
        "free-threaded interpreters on PATH": [
            name for name in ("python3.13t", "python3.14t", "python3.15t") if shutil.which(name)
        ],
    }


# --8<-- [end:build]


# --8<-- [start:work]
def pure_python(n: int = PURE_N) -> int:
    """A loop of bytecode: holds the GIL except when the interpreter hands it over."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


_data: dict[int, bytes] = {}


def data(size: int) -> bytes:
    if size not in _data:  # made once per process, outside the timed part
        _data[size] = bytes(range(256)) * (size // 256)
    return _data[size]


def sha256_big(size: int = BIG, calls: int = 1) -> bytes:
    """hashlib calls on a large buffer (one by default): the GIL is released while each
    hashes."""
    h, buf = hashlib.sha256(), data(size)
    for _ in range(calls):
        h.update(buf)
    return h.digest()


def sha256_small(size: int = BIG) -> bytes:
    """Half of those bytes (16 MiB) in 1 KiB calls, each under hashlib's 2047-byte
    threshold: 14-19 ms of CPU here, about as long as the pure-Python loop."""
    h, buf = hashlib.sha256(), data(size)
    for start in range(0, size // 2, SMALL):  # half the bytes: 16,384 calls
        h.update(buf[start : start + SMALL])
    return h.digest()


def compress_big(size: int = BIG // 4) -> int:
    """One zlib.compress call: CPython releases the GIL around zlib's deflate()."""
    return len(zlib.compress(data(size), 6))


# --8<-- [end:work]


# --8<-- [start:witness]
def witness_ticks(work: Callable[[], object], switch_interval: float = 10.0) -> int:
    """How many times a second thread ran Python code while `work` ran on this one.

    The witness sleeps 1 ms (no GIL), then needs the GIL to count. With a 10 s switch
    interval the interpreter never *takes* the GIL from us during `work`; so the witness
    can count only if `work` itself releases the GIL."""
    ticks, stop = [0], threading.Event()

    def witness() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    old = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    thread = threading.Thread(target=witness)
    try:
        thread.start()
        while ticks[0] < 3:  # the witness is running
            time.sleep(0.001)
        before = ticks[0]
        work()  # only this call runs between the two reads, on this thread
        during = ticks[0] - before
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)
    return during


# --8<-- [end:witness]


# --8<-- [start:speedup]
def timed(work: Callable[[], object]) -> float:
    """Run work; return the CPU seconds this thread spent on it (in a worker: its own)."""
    start = time.thread_time()
    work()
    return time.thread_time() - start


def ready() -> tuple[int, int]:
    """A worker's warm-up, before any clock starts: the hashing buffer made, and which
    worker this is (process id, thread id)."""
    data(BIG)
    time.sleep(0.01)  # keep this worker busy so that the next one gets the next call
    return os.getpid(), threading.get_ident()


def start_workers(pool: Executor, workers: int = 2) -> None:
    """Return once every worker has answered: a process pool's processes are started
    (forked or spawned, this module imported) and not started again while timed."""
    seen: set[tuple[int, int]] = set()
    while len(seen) < workers:
        seen |= {f.result() for f in [pool.submit(ready) for _ in range(workers)]}


def run_twice(pool: Executor | None, work: Callable[[], object]) -> tuple[float, float]:
    """Do `work` twice: one after another here (pool None), or on two started workers at
    once. Returns (wall seconds, CPU seconds the two runs used together)."""
    start = time.perf_counter()
    if pool is None:
        cpu = timed(work) + timed(work)
    else:
        cpu = sum(f.result() for f in [pool.submit(timed, work), pool.submit(timed, work)])
    return time.perf_counter() - start, cpu


def nothing() -> None:
    """A call that does no work: what run_twice costs on a pool beyond the work."""


@dataclass
class Parallel:
    speedup: float  # median wall time one after another / median wall time this way
    low: float  # the spread: the lowest and highest speedup of one round (that round's
    high: float  # time one after another / its time this way; the ways are interleaved)
    cores: float  # median CPU seconds / median wall seconds: how many cores the work had
    cpu: float  # median CPU seconds of one call (the two calls' CPU seconds / 2)


def speedups(works: dict[str, Callable[[], object]], rounds: int = ROUNDS
             ) -> tuple[dict[str, float], dict[str, dict[str, Parallel]]]:  # fmt: skip
    """Interleaved rounds of each work one after another, on 2 threads, on 2 processes,
    the workers started first. Returns each pool's own cost (median wall seconds of
    run_twice with `nothing`) and the speedups."""
    ways = ("one after another", "2 threads", "2 processes")
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {way: [] for way in ways} for name in works
    }
    with ProcessPoolExecutor(2) as processes, ThreadPoolExecutor(2) as threads:
        pools = dict(zip(ways, (None, threads, processes), strict=True))
        ready()  # the buffer made here too, for one after another
        start_workers(processes)  # processes first: forked before this process has threads
        start_workers(threads)
        overhead = {
            way: statistics.median(run_twice(pool, nothing)[0] for _ in range(20))
            for way, pool in pools.items() if pool is not None
        }  # fmt: skip
        for _ in range(rounds):
            for name, work in works.items():
                for way, pool in pools.items():
                    runs[name][way].append(run_twice(pool, work))
    result: dict[str, dict[str, Parallel]] = {}
    for name, by_way in runs.items():
        alone = [wall for wall, _ in by_way["one after another"]]
        result[name] = {}
        for way, r in by_way.items():
            walls = [wall for wall, _ in r]
            per_round = [a / w for a, w in zip(alone, walls, strict=True)]
            result[name][way] = Parallel(
                statistics.median(alone) / statistics.median(walls),
                min(per_round), max(per_round),
                statistics.median(cpu for _, cpu in r) / statistics.median(walls),
                statistics.median(cpu for _, cpu in r) / 2)  # fmt: skip
    return overhead, result


# --8<-- [end:speedup]

WORKS: dict[str, Callable[[], object]] = {
    "pure-Python loop": pure_python,
    "hashlib.sha256, 32 MiB at once": sha256_big,
    "hashlib.sha256, 1 KiB at a time": sha256_small,
    "zlib.compress, 8 MiB": compress_big,
}


def main() -> None:
    usable, total = cores()
    for key, value in build().items():
        print(f"{key:36}{value}")
    print(f"{'cores this process may use':36}~{usable} (of ~{total})")
    print()
    print("ticks of a witness thread while the main thread ran each call once:")
    for name, work in WORKS.items():
        ticks = witness_ticks(work)
        print(f"  {name:46}{f'~{ticks}' if ticks else 0:>6}")
    ticks = witness_ticks(lambda: pure_python(5 * PURE_N), switch_interval=0.005)
    print(f"  {'pure-Python loop x5, switch interval 5.0 ms':46}{f'~{ticks}':>6}")
    print()
    chosen = {f"pure-Python loop x{LOOPS}": partial(pure_python, LOOPS * PURE_N),
              f"hashlib.sha256, {HASHES} x 32 MiB": partial(sha256_big, BIG, HASHES)}  # fmt: skip
    overhead, table = speedups(chosen)
    print(f"the same call twice, one after another and on 2 started workers, {ROUNDS} "
          "interleaved rounds:")  # fmt: skip
    print(f"  {'':46}{'speedup':>8}{'(rounds)':>13}{'cores busy':>12}{'CPU/call':>10}")
    for name, ways in table.items():
        for way, p in ways.items():
            spread = "" if way == "one after another" else f"{p.low:.2f}-{p.high:.2f}"
            print(f"  {name + ', ' + way:46}{p.speedup:>7.2f}x{spread:>13}{p.cores:>12.2f}"
                  f"{p.cpu * 1000:>7.1f} ms")  # fmt: skip
    print("the pools' own cost: the same with a call that does nothing (median of 20):")
    print("  " + ", ".join(f"{way} {sec * 1000:.2f} ms" for way, sec in overhead.items()))


if __name__ == "__main__":
    main()
