"""A producer faster than its consumer, in one asyncio process: a bounded queue makes the
producer wait (its length never passes the bound; the producer accepts only what the
consumer frees); an unbounded queue takes everything offered, and the backlog grows with time.
Run: python snippets/messaging/backpressure_queue.py
"""

from __future__ import annotations

import asyncio
import time

BOUND = 100
RATE = 5000  # items offered per second, on the clock (open loop): 5x what the consumer takes
WORK = 0.001  # seconds of simulated I/O per item (an await, like a call to a database)
SAMPLES = (0.1, 0.2, 0.4)  # seconds after the start at which the queue is measured


# --8<-- [start:run]
async def run(bound: int | None, samples: tuple[float, ...] = SAMPLES) -> list[dict]:
    """Items arrive at RATE per second whatever happens downstream; one consumer takes at
    most 1/WORK per second. `bound` None: an unbounded queue. Returns, at each sample
    time, how many items were offered, accepted (put in the queue), consumed and queued."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=bound or 0)  # 0 = unbounded
    counts = {"accepted": 0, "consumed": 0, "longest": 0}
    start = time.perf_counter()

    def offered() -> int:
        return int(RATE * (time.perf_counter() - start))  # due by now, on the clock

    async def producer() -> None:
        while True:
            while counts["accepted"] < offered():
                await queue.put(counts["accepted"])  # waits while a bounded queue is full
                counts["accepted"] += 1
                counts["longest"] = max(counts["longest"], queue.qsize())
            await asyncio.sleep(0.001)

    async def consumer() -> None:
        while True:
            await queue.get()
            await asyncio.sleep(WORK)  # the work: I/O-bound, simulated
            counts["consumed"] += 1

    tasks = [asyncio.create_task(producer()), asyncio.create_task(consumer())]
    rows: list[dict] = []
    try:
        for at in samples:
            # at least 10 ms after the previous sample, even if the machine made us late
            await asyncio.sleep(max(0.01, start + at - time.perf_counter()))
            rows.append({"at": at, "offered": offered(), "queued": queue.qsize(), **counts})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return rows


# --8<-- [end:run]


def main() -> None:
    print(
        f"items offered at {RATE} per second to one consumer"
        f" ({WORK * 1000:.1f} ms of simulated I/O per item, so at most {1 / WORK:.0f} per second)"
    )
    print("queue        after   offered  accepted  consumed  queued  longest")
    for name, bound in (("unbounded", None), (f"bound {BOUND}", BOUND)):
        for row in asyncio.run(run(bound)):
            longest = f"~{row['longest']}" if bound is None else row["longest"]
            print(
                f"{name:<12} {row['at']:.1f} s  ~{row['offered']:<7} ~{row['accepted']:<8}"
                f" ~{row['consumed']:<8} ~{row['queued']:<6} {longest}"
            )


if __name__ == "__main__":
    main()
