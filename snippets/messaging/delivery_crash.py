"""A consumer SIGKILLed between its effect and its ack, on a real RabbitMQ: acking first
loses the message (at-most-once), acking after the effect redelivers it (at-least-once,
a duplicate effect), and an idempotent consumer (a dedupe table committed with the effect)
gets exactly one effect per message.

Run: python snippets/messaging/delivery_crash.py
Needs: AMQP_URL
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pika
import pika.exceptions

N = 10  # messages per run
CRASH_AT = 6  # a middle delivery; the test also crashes each case at the first and the last
MODES = ("ack first", "ack after effect", "idempotent", "key after effect")  # the last: Break it
# Where each run SIGKILLs the consumer. The Break it moves the kill into the gap between
# its two commits; the same mode killed after both commits is its control: a window.
CASES = (
    ("ack first", "after the ack"),
    ("ack after effect", "before the ack"),
    ("idempotent", "before the ack"),
    ("key after effect", "between commits"),
    ("key after effect", "before the ack"),
)


def amqp_url() -> str:
    url = os.environ.get("AMQP_URL")
    if not url:
        sys.exit(
            "set AMQP_URL to a RabbitMQ server, e.g. amqp://guest:guest@127.0.0.1:5672/%2F,"
            " or run `make run S=messaging/delivery_crash`, which starts one"
        )
    return url


def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def open_db(path: Path) -> sqlite3.Connection:
    """The consumer's database: the effect (a charge per order) and the dedupe table."""
    db = sqlite3.connect(path, isolation_level=None, timeout=5)
    # The crash here is a killed process, not a power cut: with synchronous=OFF a committed
    # transaction is handed to the OS and survives it (SQLite's PRAGMA docs), minus fsyncs.
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE IF NOT EXISTS charges (order_id INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS processed (message_id TEXT PRIMARY KEY)")
    return db


# --8<-- [start:consumer]
def handle(db: sqlite3.Connection, channel, method, props, body: bytes, mode: str, crash: str):  # noqa: ANN001, PLR0913
    """Process one delivery. `crash`: where to SIGKILL this process ("" for nowhere)."""
    if mode == "ack first":  # at-most-once: the broker forgets it before we did the work
        channel.basic_ack(method.delivery_tag)
        channel.queue_declare(method.routing_key, passive=True)  # a round trip: ack arrived
        if crash == "after the ack":
            os.kill(os.getpid(), signal.SIGKILL)
        db.execute("INSERT INTO charges VALUES (?)", (int(body),))
        return
    if mode == "ack after effect":  # at-least-once: a crash before the ack redelivers it
        db.execute("INSERT INTO charges VALUES (?)", (int(body),))
    elif mode == "key after effect":  # Break it: the key in its own, later transaction
        seen = db.execute("SELECT 1 FROM processed WHERE message_id = ?", (props.message_id,))
        if seen.fetchone() is None:
            db.execute("INSERT INTO charges VALUES (?)", (int(body),))  # committed alone
            if crash == "between commits":
                os.kill(os.getpid(), signal.SIGKILL)  # between the effect and the key
            db.execute("INSERT INTO processed VALUES (?)", (props.message_id,))
    else:  # idempotent: the dedupe key commits in the same transaction as the effect
        db.execute("BEGIN")
        try:
            db.execute("INSERT INTO processed VALUES (?)", (props.message_id,))
        except sqlite3.IntegrityError:  # seen before: the effect is already committed
            db.execute("ROLLBACK")
        else:
            db.execute("INSERT INTO charges VALUES (?)", (int(body),))
            db.execute("COMMIT")
    if crash == "before the ack":
        os.kill(os.getpid(), signal.SIGKILL)  # after the effect, before the ack
    channel.basic_ack(method.delivery_tag)


def consume_until_killed(  # noqa: PLR0913
    url: str, queue: str, db_path: Path, mode: str, crash_at: int, where: str
) -> None:
    """A consumer (basic.consume, prefetch 1) SIGKILLed at delivery `crash_at`, at `where`."""
    db = open_db(db_path)
    with connect(url) as conn:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=1)  # at most one unacknowledged delivery
        for n, (method, props, body) in enumerate(channel.consume(queue), start=1):
            handle(db, channel, method, props, body, mode, crash=where if n == crash_at else "")


def drain(channel, queue: str, db_path: Path, mode: str) -> int:  # noqa: ANN001
    """The consumer after its restart: take what is left (basic.get until empty)."""
    db = open_db(db_path)
    deliveries = 0
    while True:
        method, props, body = channel.basic_get(queue)
        if method is None:
            return deliveries
        deliveries += 1
        handle(db, channel, method, props, body, mode, crash="")


# --8<-- [end:consumer]


def publish(channel, queue: str) -> None:  # noqa: ANN001
    """N persistent messages with confirms, each with a message_id (the dedupe key)."""
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    for order in range(N):
        props = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, message_id=f"order-{order}"
        )
        channel.basic_publish("", queue, str(order).encode(), properties=props)


def wait_until_released(channel, queue: str, timeout: float = 10) -> None:  # noqa: ANN001
    """When the broker sees the dead consumer's connection close, it requeues the consumer's
    unacked delivery and removes the consumer in one step: poll (not a blind sleep) until
    the queue has no consumer."""
    deadline = time.monotonic() + timeout
    while channel.queue_declare(queue, passive=True).method.consumer_count:
        if time.monotonic() > deadline:
            raise TimeoutError("the broker still lists the killed consumer")
        time.sleep(0.01)


# --8<-- [start:run]
def crash_run(url: str, mode: str, crash_at: int, where: str) -> dict[str, int]:
    """Publish N, run a consumer that is SIGKILLed at delivery `crash_at` (at `where`), then
    a second consumer that drains the rest. Count charges per order."""
    queue = f"orders-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, connect(url) as conn:
        db_path = Path(tmp) / "billing.sqlite"
        publish(conn.channel(), queue)
        args = (url, queue, db_path, mode, crash_at, where)
        child = multiprocessing.get_context("fork").Process(target=consume_until_killed, args=args)
        child.start()
        child.join(timeout=30)
        killed = child.exitcode == -signal.SIGKILL
        if child.exitcode is None:
            child.kill()
            child.join()
        channel = conn.channel()
        wait_until_released(channel, queue)
        # Orders the killed consumer's code received and the second one received again: the
        # deliveries beyond the N - crash_at never handed to the first. (Not the broker's
        # redelivered flag: that also marks a message prefetched by the killed process that
        # its code never saw, a race with the kill.)
        handled_twice = drain(channel, queue, db_path, mode) - (N - crash_at)
        charges = collections.Counter(
            row[0] for row in open_db(db_path).execute("SELECT order_id FROM charges")
        )
        channel.queue_delete(queue)
    return {
        "killed": int(killed),
        "handled twice": handled_twice,
        "lost": sum(1 for order in range(N) if charges[order] == 0),
        "charged twice": sum(1 for order in range(N) if charges[order] > 1),
    }


# --8<-- [end:run]


# --8<-- [start:publisher]
def publish_until_broker_dies(
    url: str, queue: str, confirms: bool, published: list[int], durable: bool = True
) -> None:
    """Publish persistent messages until the connection breaks. published[0] counts the
    publishes the publisher believes in: with confirms, each one the broker confirmed;
    without (fire-and-forget), each basic_publish that returned without an error.
    It stops when the broker dies: a real publisher reconnects and resends every publish
    not yet confirmed (here at most the one in flight), accepting a possible duplicate."""
    try:
        with connect(url) as conn:
            channel = conn.channel()
            channel.queue_declare(queue, durable=durable)  # durable: the queue survives
            if confirms:
                channel.confirm_delivery()  # each publish now waits for the broker's ack
            persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
            while True:
                channel.basic_publish("", queue, b"order", properties=persistent)
                published[0] += 1
    except (pika.exceptions.AMQPError, OSError):
        return  # the broker is gone


# --8<-- [end:publisher]


def main() -> None:
    url = amqp_url()
    print(f"{N} orders per run, consumer SIGKILLed at delivery {CRASH_AT}:")
    print(f"  {'mode':<17} {'killed':<16} {'handled twice':>13} {'lost':>5} {'charged twice':>14}")
    for mode, where in CASES:
        got = crash_run(url, mode, CRASH_AT, where)
        print(
            f"  {mode:<17} {where:<16} {got['handled twice']:>13}"
            f" {got['lost']:>5} {got['charged twice']:>14}"
        )


if __name__ == "__main__":
    main()
