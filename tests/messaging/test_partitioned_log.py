"""Kafka's model, the partitioned log (docs/messaging/partitioned-log.md): the model's
per-key order (and the random-partition control that breaks it), redelivery since the last
commit after a rebalance, and the real consumer-group machinery of Redis Streams and NATS
JetStream, each with its control."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.conftest import load_snippet

model = load_snippet("messaging/partitions_model")
real = load_snippet("messaging/partitions_real")


def produce(by_key: bool, seed: int):  # noqa: ANN201
    """The same events (keys drawn from `seed`) for both ways of partitioning."""
    keys = random.Random(seed)
    rng = random.Random(seed + 1000)  # random partitions and the consumers' pace
    topic = model.Topic()
    for seq in range(model.EVENTS):
        topic.append(keys.choice(model.KEYS), seq, by_key, rng)
    return topic, rng


def test_both_runs_partition_the_same_events():
    hashed, _ = produce(by_key=True, seed=3)
    randomly, _ = produce(by_key=False, seed=3)
    assert sorted(r for p in hashed.partitions for r in p) == sorted(
        r for p in randomly.partitions for r in p
    )


@pytest.mark.parametrize("seed", range(5))
def test_hashing_the_key_keeps_per_key_order_but_not_global_order(seed):
    topic, rng = produce(by_key=True, seed=seed)
    seen = model.consume_all(topic, rng)
    assert model.out_of_order(seen, per_key=True) == 0
    assert model.out_of_order(seen, per_key=False) > 0  # no order across partitions
    control, rng = produce(by_key=False, seed=seed)  # the control: a random partition
    assert model.out_of_order(model.consume_all(control, rng), per_key=True) > 0


@pytest.mark.parametrize("crash_after", [0, 3, model.BATCH - 1])
def test_a_rebalance_redelivers_exactly_what_came_after_the_last_commit(crash_after):
    topic, _ = produce(by_key=True, seed=1)
    counts = model.rebalance_after_a_crash(topic, crash_after)
    assert counts["lost"] == 0
    assert counts["processed twice"] == crash_after  # 0: died right after a commit
    # The control: the same crash with the commit before processing loses the rest of the
    # batch instead, and processes nothing twice (at-most-once).
    control = model.rebalance_after_a_crash(topic, crash_after, commit_first=True)
    assert control["lost"] == model.BATCH - crash_after
    assert control["processed twice"] == 0


def test_xautoclaim_hands_a_dead_consumers_pending_entries_to_another(redis_url):
    counts = real.redis_group(redis_url)
    owed = counts["read by A"] - counts["acked by A"]
    assert counts["pending after A went silent"] == counts["claimed by B"] == owed
    assert counts["times each was delivered"] == 2
    assert counts["group lag (never delivered)"] == real.N - counts["read by A"]


def test_xautoclaim_with_a_min_idle_time_leaves_recent_entries_alone(redis_url):
    """The control: entries delivered a moment ago are not idle for 60 s yet."""
    assert real.redis_group(redis_url, min_idle_ms=60_000)["claimed by B"] == 0


def test_jetstream_drops_a_duplicate_msg_id_and_redelivers_after_ack_wait(nats_url):
    counts = asyncio.run(real.jetstream(nats_url))
    assert counts["second flagged duplicate"] == 1 and counts["messages stored"] == 1
    assert counts["first delivery's count"] == 1 and counts["redelivery's count"] == 2
    assert counts["same stream sequence"] == 1
    # Noise budget: timed from *before* the first fetch request, the redelivery came
    # 0.502-0.519 s later over 40 runs (load ~15); it cannot come sooner than ack_wait,
    # because the server starts the timer when it delivers, after that request. Timed
    # from when the first fetch *returned*, it was 0.497-0.515 s: below 0.5 (a flake).
    assert counts[f"came back after the {real.ACK_WAIT} s ack wait"] == 1


def test_jetstream_does_not_redeliver_an_acked_message(nats_url):
    """The control: the same fetch, acked, and the second fetch times out (2 x ack wait)."""
    assert asyncio.run(real.jetstream(nats_url, ack_first=True)) == {"redelivered": 0}


def test_jetstream_stores_both_when_the_msg_ids_differ(nats_url):
    """The control: the same payload with two ids is two messages."""
    counts = asyncio.run(real.jetstream(nats_url, same_id=False))
    assert counts["second flagged duplicate"] == 0 and counts["messages stored"] == 2
