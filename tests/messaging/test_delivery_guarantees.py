"""Delivery guarantees under crash injection (docs/messaging/delivery-guarantees.md): a
consumer SIGKILLed between its effect and its ack, on a real RabbitMQ. Each mode is the
others' control: the same crash loses a message (ack first), duplicates it (ack after the
effect) or neither (idempotent); the Break it (dedupe key committed apart from the effect)
duplicates again."""

from __future__ import annotations

import threading
import time

import pika.exceptions
import pytest

from tests.conftest import load_snippet

crash = load_snippet("messaging/delivery_crash")

EXPECTED = {  # per crash: what the page's table says
    ("ack first", "after the ack"): {
        "killed": 1,
        "handled twice": 0,
        "lost": 1,
        "charged twice": 0,
    },
    ("ack after effect", "before the ack"): {
        "killed": 1,
        "handled twice": 1,
        "lost": 0,
        "charged twice": 1,
    },
    ("idempotent", "before the ack"): {
        "killed": 1,
        "handled twice": 1,
        "lost": 0,
        "charged twice": 0,
    },
    # Break it: killed between the charge's commit and the key's: charged twice again ...
    ("key after effect", "between commits"): {
        "killed": 1,
        "handled twice": 1,
        "lost": 0,
        "charged twice": 1,
    },
    # ... and its control: the same mode killed after both commits charges once (a window)
    ("key after effect", "before the ack"): {
        "killed": 1,
        "handled twice": 1,
        "lost": 0,
        "charged twice": 0,
    },
}


@pytest.mark.parametrize(("mode", "where"), crash.CASES)
@pytest.mark.parametrize("crash_at", [1, 7, crash.N])  # first, middle and last delivery
def test_one_crash_loses_duplicates_or_neither_by_mode(amqp_url, mode, where, crash_at):
    assert crash.crash_run(amqp_url, mode, crash_at, where) == EXPECTED[(mode, where)]


def test_every_case_is_in_the_expected_table():
    assert set(EXPECTED) == set(crash.CASES)
    assert {mode for mode, _ in crash.CASES} == set(crash.MODES)


PUBLISHERS = {  # queue: (confirms, durable queue, publishes counted before the kill)
    "confirms": (True, True, 300),
    "fire-and-forget": (False, True, 5000),
    "confirms, not durable": (True, False, 300),  # Break it
}


@pytest.mark.slow
@pytest.mark.timeout(400)  # a start and a restart (35-58 s at load 14-17), each guarded by 180 s
def test_publisher_confirms_lose_nothing_when_the_broker_is_killed(crashable_rabbitmq):
    """Durable queue, persistent messages, RabbitMQ SIGKILLed mid-stream and restarted:
    every confirmed message is there; fire-and-forget lost some of what it had 'sent';
    Break it: confirms on a non-durable queue lose every one (the queue is gone).

    The three publishers run at once, each on its own connection and queue, and one kill
    (once every one has counted its publishes) and one restart serve all three."""
    # Noise budget: over 8 runs on a busy machine (load 14-17) fire-and-forget had 'sent'
    # 5020-9491 and the restarted broker held 0-4195 of them: it lost 2186-8450, never
    # fewer than 2186; the test needs a loss of 1. Confirms lost 0 of 300-715 in every run:
    # that is the guarantee, not a margin. Each run took 35-58 s (one start, one restart).
    broker = crashable_rabbitmq
    published = {queue: [0] for queue in PUBLISHERS}
    threads = [
        threading.Thread(
            target=crash.publish_until_broker_dies,
            args=(broker.url, queue, confirms, published[queue], durable),
        )
        for queue, (confirms, durable, _after) in PUBLISHERS.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        published[queue][0] < after and thread.is_alive()
        for (queue, (_c, _d, after)), thread in zip(PUBLISHERS.items(), threads, strict=True)
    ):
        time.sleep(0.001)  # polling counters; the kill waits for them, not for time
    broker.kill()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a publisher did not notice the broker's death"
    broker.restart()
    kept = {}
    with crash.connect(broker.url) as conn:
        for queue in PUBLISHERS:
            try:
                kept[queue] = conn.channel().queue_declare(queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:  # 404: the queue did not survive
                kept[queue] = 0
    sent = {queue: count[0] for queue, count in published.items()}
    for queue, (_c, _d, after) in PUBLISHERS.items():
        assert sent[queue] >= after, (queue, sent, kept)
    # +1 allowed: the publish in flight when the broker died may be stored, unconfirmed
    assert kept["confirms"] >= sent["confirms"], (sent, kept)
    assert kept["fire-and-forget"] < sent["fire-and-forget"], (sent, kept)
    assert kept["confirms, not durable"] == 0, (sent, kept)
    print(f"sent {sent}, kept after the restart {kept}")
