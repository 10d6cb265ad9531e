"""Little's law, L = λW, on a real thread pool: the number of requests in the pool, sampled
while it runs, against λW from the requests' own timestamps (equal by counting over a run
that starts and ends empty, so what this checks is the sampling); and pools of 2, 3, 4
and 32 workers at the same load, against busy workers = λ × service time.

Run: python snippets/design/queues_littles_law.py
"""

from __future__ import annotations

import itertools
import queue
import statistics
import threading
import time
from dataclasses import dataclass

SERVICE = 0.002  # seconds of work per request: a sleep, standing in for an IO call
RATE = 1500  # requests per second, open loop: request i is due at start + i / RATE
DURATION = 0.4  # seconds of arrivals
SAMPLE_EVERY = 0.0005  # seconds between two looks at the pool
SIZES = (2, 3, 4, 32)  # pool sizes to try; λ × SERVICE = 3 busy workers on average
# 32: keeps up until a busy machine stretches each 2 ms sleep past 21 ms on average


@dataclass
class Request:
    arrived: float = 0.0  # perf_counter seconds: put in the queue
    started: float = 0.0  # a worker took it
    done: float = 0.0


@dataclass
class Pool:
    workers: int
    requests: list[Request]
    samples: list[tuple[float, int, int]]  # (when, requests in the pool, busy workers)
    max_depth: int  # the most requests seen waiting in the queue
    span: float  # seconds from the first arrival until the pool was empty again

    @property
    def rate(self) -> float:  # λ: arrivals per second over the span
        return len(self.requests) / self.span

    @property
    def mean_w(self) -> float:  # W: mean seconds from arrival to done
        return statistics.fmean(r.done - r.arrived for r in self.requests)

    @property
    def mean_s(self) -> float:  # mean seconds of work (the sleep and its overrun)
        return statistics.fmean(r.done - r.started for r in self.requests)

    def time_average(self, column: int) -> float:
        """Each sample's value held until the next sample, averaged over the time sampled:
        a stalled sampler's gap counts for its length (nothing changes while no thread of
        this process runs), not as one sample."""
        pairs = itertools.pairwise(self.samples)
        area = sum(a[column] * (b[0] - a[0]) for a, b in pairs)
        return area / (self.samples[-1][0] - self.samples[0][0])

    @property
    def l_sampled(self) -> float:  # L, sampled: mean requests in the pool
        return self.time_average(1)

    @property
    def busy_sampled(self) -> float:  # mean busy workers, sampled
        return self.time_average(2)


# --8<-- [start:measure]
def run_pool(workers: int, rate: float = RATE, duration: float = DURATION) -> Pool:
    """An open-loop generator feeds a pool of `workers` threads through an unbounded queue;
    a sampler thread counts, every SAMPLE_EVERY s from the first arrival until the pool is
    empty again, the requests in the pool and the busy workers."""
    n = round(rate * duration)
    q: queue.Queue = queue.Queue()
    counts = {"arrived": 0, "done": 0}  # each key written by one kind of thread only
    busy = [False] * workers
    done_lock = threading.Lock()  # several workers add to counts["done"]

    def worker(me: int) -> None:
        while (request := q.get()) is not None:
            busy[me] = True  # busy from before `started` to after `done`
            request.started = time.perf_counter()
            time.sleep(SERVICE)  # the work
            request.done = time.perf_counter()
            busy[me] = False
            with done_lock:
                counts["done"] += 1

    samples: list[tuple[float, int, int]] = []
    sampling = threading.Event()

    def sampler() -> None:
        while True:
            in_pool, working = counts["arrived"] - counts["done"], sum(busy)
            samples.append((time.perf_counter(), in_pool, working))
            if counts["done"] == n or sampling.wait(SAMPLE_EVERY):
                return  # the pool is empty again (the span is over), or told to stop

    threads = [threading.Thread(target=worker, args=(me,)) for me in range(workers)]
    watcher = threading.Thread(target=sampler)
    requests, max_depth = [], 0
    for t in threads:
        t.start()
    start = time.perf_counter()
    watcher.start()
    try:
        for i in range(n):
            if (ahead := start + i / rate - time.perf_counter()) > 0:
                time.sleep(ahead)
            request = Request(arrived=time.perf_counter())
            requests.append(request)
            counts["arrived"] += 1
            q.put(request)
            max_depth = max(max_depth, q.qsize())
    finally:
        for _ in threads:
            q.put(None)  # behind every request: the pool drains first
        for t in threads:
            t.join(timeout=30)
        sampling.set()  # the sampler stops by itself when the pool is empty; this if not
        watcher.join(timeout=30)
    span = max(r.done for r in requests) - requests[0].arrived
    return Pool(workers, requests, samples, max_depth, span)


# --8<-- [end:measure]


def main() -> None:
    print(
        f"Open loop: {RATE} requests/s for {DURATION:.1f} s into an unbounded queue;"
        f" each request sleeps {SERVICE * 1e3:.1f} ms"
    )
    pool = run_pool(4)
    l_sampled = pool.l_sampled
    l_little = pool.rate * pool.mean_w
    busy_sampled = pool.busy_sampled
    busy_little = pool.rate * pool.mean_s
    print(f"4 workers, ~{len(pool.requests)} requests, ~{len(pool.samples)} samples of the pool:")
    print(
        f"  span {pool.span:.3f} s (first arrival to empty pool): λ = requests / span"
        f" = {pool.rate:.1f}/s, W = mean time in the pool = {pool.mean_w * 1e3:.2f} ms"
    )
    print(
        f"  L sampled {l_sampled:.2f} requests in the pool; λW = {l_little:.2f}"
        f"  (sampled / λW = {l_sampled / l_little:.2f})"
    )
    print(
        f"  busy workers sampled {busy_sampled:.2f}; λS = {busy_little:.2f} with S = mean work"
        f" {pool.mean_s * 1e3:.2f} ms  (sampled / λS = {busy_sampled / busy_little:.2f})"
    )
    need = RATE * SERVICE
    print(f"Pool sizing: λ × nominal S = {RATE} × {SERVICE * 1e3:.1f} ms = {need:.1f} busy workers")
    print("offered λ × measured S / workers: above 1, arrivals outpace the pool")
    print("workers  λS/workers  busy (sampled)  waiting: max  mean  median ms     max ms")
    for size in SIZES:
        p = pool if size == 4 else run_pool(size)
        latencies = sorted(r.done - r.arrived for r in p.requests)
        utilisation = RATE * p.mean_s / size  # the offered λ, not the pool's throughput
        waiting = p.l_sampled - p.busy_sampled  # time-average: in the pool, not at work
        print(
            f"{size:7}  {utilisation:10.2f}  {p.busy_sampled:14.2f}"
            f"  {'~' + str(p.max_depth):>12}{waiting:6.1f}"
            f" {statistics.median(latencies) * 1e3:10.1f} {latencies[-1] * 1e3:10.1f}"
        )


if __name__ == "__main__":
    main()
