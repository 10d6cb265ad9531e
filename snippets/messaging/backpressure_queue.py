"""A producer faster than its consumer, in one asyncio process: a bounded queue makes the
producer wait (its length never passes the bound, the producer runs at the consumer's pace);
an unbounded queue lets it run ahead, and the backlog grows with time.

Run: python snippets/messaging/backpressure_queue.py
"""

from __future__ import annotations

import asyncio
import time

BOUND = 100
WORK = 0.001  # seconds of simulated I/O per item (an await, like a call to a database)
SAMPLES = (0.1, 0.2, 0.4)  # seconds after the start at which the queue is measured


# --8<-- [start:run]
async def run(bound: int | None, samples: tuple[float, ...] = SAMPLES) -> list[dict]:
    """A producer that could make items far faster than one consumer can handle them.
    `bound` None: an unbounded queue. Returns what the queue held at each sample time."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=bound or 0)  # 0 = unbounded
    counts = {"produced": 0, "consumed": 0, "longest": 0}

    async def producer() -> None:
        while True:
            await queue.put(counts["produced"])  # waits while a bounded queue is full
            counts["produced"] += 1
            counts["longest"] = max(counts["longest"], queue.qsize())
            await asyncio.sleep(0)  # let others run: the producer is fast, not greedy

    async def consumer() -> None:
        while True:
            await queue.get()
            await asyncio.sleep(WORK)  # the work: I/O-bound, simulated
            counts["consumed"] += 1

    tasks = [asyncio.create_task(producer()), asyncio.create_task(consumer())]
    start, rows = time.perf_counter(), []
    try:
        for at in samples:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            rows.append({"at": at, "queued": queue.qsize(), **counts})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return rows


# --8<-- [end:run]


def main() -> None:
    print(f"one producer, one consumer ({WORK * 1000:.1f} ms of simulated I/O per item)")
    print("queue        after   produced  consumed  queued  longest")
    for name, bound in (("unbounded", None), (f"bound {BOUND}", BOUND)):
        for row in asyncio.run(run(bound)):
            longest = f"~{row['longest']}" if bound is None else row["longest"]
            print(
                f"{name:<12} {row['at']:.1f} s  ~{row['produced']:<8} ~{row['consumed']:<8}"
                f" ~{row['queued']:<6} {longest}"
            )


if __name__ == "__main__":
    main()
