"""RabbitMQ: competing consumers split one queue (each message to one of them, gone after
ack); a fanout exchange copies every message to every bound queue, but not to a queue bound
after the message was published.

Run: python snippets/messaging/queues_rabbitmq.py
Needs: AMQP_URL
"""

from __future__ import annotations

import os
import sys
import uuid

import pika

N = 10


def amqp_url() -> str:
    url = os.environ.get("AMQP_URL")
    if not url:
        sys.exit(
            "set AMQP_URL to a RabbitMQ server, e.g. amqp://guest:guest@127.0.0.1:5672/%2F,"
            " or run `make run S=messaging/queues_rabbitmq`, which starts one"
        )
    return url


def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


# --8<-- [start:competing]
def competing_consumers(url: str, consumers: int = 2) -> dict[str, list[int]]:
    """Publish N messages to one queue; `consumers` consumers on it, each with prefetch 1
    (at most one unacknowledged delivery), take them. Returns what each one got."""
    queue = f"work-{uuid.uuid4().hex[:8]}"
    got: dict[str, list[int]] = {f"consumer {c + 1}": [] for c in range(consumers)}
    with connect(url) as conn:
        producer = conn.channel()
        producer.queue_declare(queue, auto_delete=True)
        for i in range(N):
            producer.basic_publish("", queue, str(i).encode())
        for name in got:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=1)

            def on_message(ch, method, _props, body, name=name):  # noqa: ANN001
                got[name].append(int(body))
                ch.basic_ack(method.delivery_tag)  # acked: the broker deletes it

            channel.basic_consume(queue, on_message)
        while sum(len(v) for v in got.values()) < N:
            conn.process_data_events(time_limit=1)
        left = producer.queue_declare(queue, passive=True).method.message_count
        got["left in the queue"] = [left]
    return got


# --8<-- [end:competing]


# --8<-- [start:fanout]
def fanout(url: str) -> dict[str, int]:
    """Two subscribers bind a queue each to a fanout exchange; N messages are published;
    a third subscriber binds only afterwards. Returns how many each queue holds."""
    exchange = f"events-{uuid.uuid4().hex[:8]}"
    with connect(url) as conn:
        channel = conn.channel()
        channel.exchange_declare(exchange, "fanout", auto_delete=True)

        def subscribe() -> str:
            queue = channel.queue_declare("", exclusive=True).method.queue  # server-named
            channel.queue_bind(queue, exchange)
            return queue

        early = [subscribe(), subscribe()]
        for i in range(N):
            channel.basic_publish(exchange, "", str(i).encode())  # routing key ignored
        late = subscribe()
        counts = {}
        for name, queue in [("subscriber 1", early[0]), ("subscriber 2", early[1])]:
            counts[name] = channel.queue_declare(queue, passive=True).method.message_count
        counts["late subscriber"] = channel.queue_declare(late, passive=True).method.message_count
        channel.exchange_delete(exchange)
    return counts


# --8<-- [end:fanout]


def main() -> None:
    url = amqp_url()
    got = competing_consumers(url)
    left = got.pop("left in the queue")[0]
    print(f"one queue, {N} messages, two competing consumers (prefetch 1):")
    for name, values in got.items():
        print(f"  {name} got ~{len(values)}")
    every = sorted(v for values in got.values() for v in values)
    print(f"  together: {len(every)} deliveries, {len(set(every))} distinct, left in queue: {left}")
    print(f"fanout exchange, {N} messages, a queue per subscriber:")
    for name, count in fanout(url).items():
        print(f"  {name}: {count} messages")


if __name__ == "__main__":
    main()
