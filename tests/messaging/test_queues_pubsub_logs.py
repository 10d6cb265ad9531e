"""Queues, pub/sub and logs (docs/messaging/queues-pubsub-logs.md): competing consumers
split a RabbitMQ queue, a fanout exchange copies to every bound queue (not to one bound
late), and a log — a Redis Stream, a JetStream stream — is replayed from the start by any
number of readers, late ones included; Redis PUBLISH and core NATS reach only who listens."""

from __future__ import annotations

import asyncio

from nats.js.api import DeliverPolicy

from tests.conftest import load_snippet

rabbit = load_snippet("messaging/queues_rabbitmq")
logs = load_snippet("messaging/queues_log_replay")
N = rabbit.N


def test_competing_consumers_split_the_queue_and_nothing_is_left(amqp_url):
    got = rabbit.competing_consumers(amqp_url)
    assert got.pop("left in the queue") == [0]
    every = [v for values in got.values() for v in values]
    assert sorted(every) == list(range(N))  # each message to exactly one consumer
    assert all(values for values in got.values()), got  # both took part (prefetch 1)
    assert all(len(values) < N for values in got.values()), got  # a split, not a copy


def test_fanout_copies_to_every_bound_queue_but_not_to_a_late_one(amqp_url):
    """The control for the split above: the same N messages, every subscriber gets all N."""
    assert rabbit.fanout(amqp_url) == {"subscriber 1": N, "subscriber 2": N, "late subscriber": 0}


def test_a_redis_stream_is_read_again_from_zero_and_publish_reaches_only_listeners(redis_url):
    counts = logs.redis_stream(redis_url)
    assert counts["reader 1 from 0"] == counts["reader 2 from 0"] == N
    assert counts["late reader from 0"] == N
    assert counts["entries still in the stream"] == N  # reading removed nothing
    assert counts["PUBLISH receivers, one subscribed"] == 1  # the control
    assert counts["PUBLISH receivers, nobody subscribed"] == 0


def test_a_jetstream_consumer_replays_from_the_first_message(nats_url):
    counts = asyncio.run(logs.jetstream(nats_url))
    assert counts["last stream sequence"] == N
    assert counts["consumer 1 from seq 1"] == counts["consumer 2 from seq 1"] == N
    assert counts["core NATS subscriber, there before"] == N  # the control
    assert counts["core NATS subscriber, joined after"] == 0


def test_break_it_deliver_new_replays_nothing(nats_url):
    counts = asyncio.run(logs.jetstream(nats_url, DeliverPolicy.NEW))
    assert counts["consumer 1 from seq 1"] == counts["consumer 2 from seq 1"] == 0
