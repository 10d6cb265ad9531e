"""RabbitMQ: a queue with a length limit and `overflow: reject-publish` pushes back on the
publisher (a nack for every message beyond the limit, seen through publisher confirms);
competing consumers with prefetch 1 raise throughput with their number — and give up the
queue's order.

Run: python snippets/messaging/backpressure_rabbitmq.py
Needs: AMQP_URL
"""

from __future__ import annotations

import os
import queue
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pika
import pika.exceptions

LIMIT = 10  # x-max-length: ready messages the queue will hold
OFFERED = 30  # messages published with no consumer running
N = 8  # messages per throughput run: few, each long against the broker round trip (~1-20 ms)
CONSUMERS = (1, 2, 4)
REPEATS = 5
WORK = [random.Random(i).uniform(0.020, 0.040) for i in range(N)]  # seconds of I/O each


# amqp_url() and connect() as in the other RabbitMQ snippets (snippets do not import each other).
def amqp_url() -> str:
    url = os.environ.get("AMQP_URL")
    if not url:
        sys.exit(
            "set AMQP_URL to a RabbitMQ server, e.g. amqp://guest:guest@127.0.0.1:5672/%2F,"
            " or run `make run S=messaging/backpressure_rabbitmq`, which starts one"
        )
    return url


def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


# --8<-- [start:limit]
def max_length(
    url: str, limit: int | None = LIMIT, overflow: str = "reject-publish", offered: int = OFFERED
) -> dict[str, int]:
    """Publish `offered` messages with confirms into a queue nobody consumes. With a limit
    and reject-publish the broker nacks what does not fit; with drop-head (RabbitMQ's
    default) it confirms everything and drops the oldest; without a limit it keeps all."""
    queue = f"bounded-{uuid.uuid4().hex[:8]}"
    args = {"x-max-length": limit, "x-overflow": overflow} if limit else {}
    counts = {"confirmed": 0, "nacked": 0}
    with connect(url) as conn:
        channel = conn.channel()
        channel.queue_declare(queue, auto_delete=True, arguments=args)
        channel.confirm_delivery()  # each basic_publish now waits for the broker's ack/nack
        for i in range(offered):
            try:
                channel.basic_publish("", queue, str(i).encode())
                counts["confirmed"] += 1
            except pika.exceptions.NackError:  # the queue is full: the broker said no
                counts["nacked"] += 1
        counts["in the queue"] = channel.queue_declare(queue, passive=True).method.message_count
        _, _, oldest = channel.basic_get(queue, auto_ack=True)
        counts["oldest kept"] = int(oldest)  # message numbers start at 0
        channel.queue_delete(queue)
    return counts


# --8<-- [end:limit]


# --8<-- [start:scaling]
@dataclass
class Run:
    """One throughput run: a queue of N messages and what the consumers did with them."""

    queue: str
    done: list[int] = field(default_factory=list)  # message numbers, in completion order
    handled: Counter = field(default_factory=Counter)  # per consumer
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: threading.Event = field(default_factory=threading.Event)


def consumer(url: str, prefetch: int, jobs: queue.Queue, ready: threading.Event) -> None:
    """A competing consumer: its own connection (in its own thread), at most `prefetch`
    unacknowledged deliveries; consumes each Run's queue it is given until the run is done."""
    with connect(url) as conn:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=prefetch)  # 0 would mean: no limit
        me = threading.get_ident()
        ready.set()
        while (run := jobs.get()) is not None:

            def on_message(ch, method, _props, body, run=run) -> None:  # noqa: ANN001
                i = int(body)
                time.sleep(WORK[i])  # the work, I/O-bound: the GIL is released
                ch.basic_ack(method.delivery_tag)
                with run.lock:
                    run.done.append(i)
                    run.handled[me] += 1
                    if len(run.done) == N:
                        run.finished.set()

            tag = channel.basic_consume(run.queue, on_message)
            while not run.finished.is_set():
                conn.process_data_events(time_limit=0.01)
            channel.basic_cancel(tag)


def scaling(
    url: str, prefetch: int = 1, repeats: int = REPEATS, consumers: tuple[int, ...] = CONSUMERS
) -> dict[int, dict]:
    """1, 2 and 4 consumers work through N queued messages, `repeats` times, interleaved
    and with the order rotated each round (1, 2, 4; 2, 4, 1; 4, 1, 2; ...), so a slow
    spell on the machine does not always fall on the same count. The consumers connect
    once, before the clock starts. The first count is the baseline of the speed-up."""
    jobs = [queue.Queue() for _ in range(max(consumers))]
    ready = [threading.Event() for _ in jobs]
    threads = [
        threading.Thread(target=consumer, args=(url, prefetch, job, event))
        for job, event in zip(jobs, ready, strict=True)
    ]
    for thread in threads:
        thread.start()
    runs: dict[int, list] = {c: [] for c in consumers}
    try:
        with connect(url) as conn:
            channel = conn.channel()
            channel.tx_select()  # publish a run's N messages in one transaction
            for event in ready:
                event.wait(10)
            for r in range(repeats):
                for c in consumers[r % len(consumers) :] + consumers[: r % len(consumers)]:
                    run = Run(f"work-{uuid.uuid4().hex[:8]}")
                    channel.queue_declare(run.queue)
                    for i in range(N):
                        channel.basic_publish("", run.queue, str(i).encode())
                    channel.tx_commit()  # all N are in the queue before the clock starts
                    start = time.perf_counter()
                    for job in jobs[:c]:
                        job.put(run)
                    run.finished.wait(30)
                    runs[c].append((time.perf_counter() - start, run))
                    channel.queue_delete(run.queue)
                    channel.tx_commit()
    finally:
        for job in jobs:
            job.put(None)
        for thread in threads:
            thread.join(10)
    base = statistics.median(elapsed for elapsed, _ in runs[consumers[0]])
    return {
        c: {
            "median s": statistics.median(elapsed for elapsed, _ in results),
            "speed-up": base / statistics.median(elapsed for elapsed, _ in results),
            "busiest": [max(run.handled.values()) for _, run in results],
            "out of order": [out_of_order(run.done) for _, run in results],
            "each once": all(sorted(run.done) == list(range(N)) for _, run in results),
        }
        for c, results in runs.items()
    }


def out_of_order(order: list[int]) -> int:
    """Messages finished after one that was behind them in the queue."""
    count, highest = 0, -1
    for i in order:
        count += i < highest
        highest = max(highest, i)
    return count


# --8<-- [end:scaling]


def main() -> None:
    url = amqp_url()
    print(f"{OFFERED} messages published with confirms, no consumer:")
    for overflow, limit in (("reject-publish", LIMIT), ("drop-head", LIMIT), ("", None)):
        counts = max_length(url, limit, overflow)
        name = f"x-max-length {LIMIT}, {overflow}" if limit else "no limit (the control)"
        print(f"  {name}:\n    " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    low, high = min(WORK) * 1000, max(WORK) * 1000
    print(f"{N} queued messages, {low:.0f}-{high:.0f} ms of simulated I/O each, prefetch 1;")
    print(f"median of {REPEATS} interleaved runs per consumer count (order rotated):")
    print("consumers  median    speed-up  busiest one handled  out of order (each run)")
    results = scaling(url)
    for c, row in results.items():
        mark = "~" if c > 1 else ""
        busiest = ", ".join(f"{mark}{n}" for n in row["busiest"])
        order = ", ".join(f"{mark}{n}" for n in row["out of order"])
        print(
            f"{c:>9}  {row['median s']:.3f} s   {row['speed-up']:.1f}x      {busiest:<19}  {order}"
        )
    once = all(row["each once"] for row in results.values())
    print(f"every message handled exactly once in every run: {once}")


if __name__ == "__main__":
    main()
