"""The consumer-group machinery of two real logs: a Redis Stream consumer group hands a dead
consumer's unacknowledged entries to another (XPENDING, XAUTOCLAIM), and NATS JetStream
redelivers an unacked message after its ack wait and drops a re-published message with the
same Nats-Msg-Id.

Run: python snippets/messaging/partitions_real.py
Needs: REDIS_URL, NATS_URL
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import nats
import nats.errors
import redis
from nats.js.api import ConsumerConfig

N = 10
ACK_WAIT = 0.5  # seconds JetStream waits for an ack before it redelivers


def urls() -> tuple[str, str]:
    redis_url, nats_url = os.environ.get("REDIS_URL"), os.environ.get("NATS_URL")
    if not redis_url or not nats_url:
        sys.exit(
            "set REDIS_URL and NATS_URL (e.g. redis://127.0.0.1:6379/0, nats://127.0.0.1:4222),"
            " or run `make run S=messaging/partitions_real`, which starts both"
        )
    return redis_url, nats_url


# --8<-- [start:redis]
def redis_group(url: str, acked: int = 6, min_idle_ms: int = 0) -> dict[str, int]:
    """Consumer A reads 8 of N entries in group `billing`, acks `acked` of them and stops
    (it never acks or reads again: to Redis, a crashed consumer looks exactly like that,
    since a group does not track whether its consumers are alive). Consumer B claims A's
    pending entries that have been idle at least `min_idle_ms`."""
    stream = f"orders-{uuid.uuid4().hex[:8]}"
    with redis.Redis.from_url(url, socket_timeout=5, decode_responses=True) as r:
        try:
            for i in range(N):
                r.xadd(stream, {"order": i})
            r.xgroup_create(stream, "billing", id="0")
            [[_, entries]] = r.xreadgroup("billing", "A", {stream: ">"}, count=N - 2)
            r.xack(stream, "billing", *[entry_id for entry_id, _ in entries[:acked]])
            # A is silent from here on. What the group still owes: delivered, never acked.
            pending = r.xpending(stream, "billing")["pending"]
            _next, claimed, _deleted = r.xautoclaim(
                stream, "billing", "B", min_idle_time=min_idle_ms, start_id="0-0"
            )
            delivered = r.xpending_range(stream, "billing", "-", "+", count=N, consumername="B")
            group = r.xinfo_groups(stream)[0]
            return {
                "read by A": len(entries),
                "acked by A": acked,
                "pending after A went silent": pending,
                "claimed by B": len(claimed),
                "times each was delivered": max(
                    (d["times_delivered"] for d in delivered), default=0
                ),
                "group lag (never delivered)": group.get("lag") or 0,
            }
        finally:
            r.delete(stream)


# --8<-- [end:redis]


# --8<-- [start:jetstream]
async def jetstream(url: str, same_id: bool = True, ack_first: bool = False) -> dict[str, int]:
    """Publish one order twice with a Nats-Msg-Id (the same id, or two ids); then fetch it
    with a 0.5 s ack wait, do not ack (with ack_first: ack it, the control), and fetch
    again, timing how long the second fetch took."""
    name = f"ORDERS{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(name=name, subjects=[f"{name}.>"])  # duplicate window: 2 min
        first = await js.publish(f"{name}.new", b"order 1", headers={"Nats-Msg-Id": "order-1"})
        again = "order-1" if same_id else "order-1b"
        second = await js.publish(f"{name}.new", b"order 1", headers={"Nats-Msg-Id": again})
        stored = (await js.stream_info(name)).state.messages
        sub = await js.pull_subscribe(f"{name}.>", config=ConsumerConfig(ack_wait=ACK_WAIT))
        asked = time.monotonic()  # the server cannot deliver (and start its timer) before this
        [msg] = await sub.fetch(1, timeout=5)  # not acked: the consumer "dies"
        if ack_first:  # the control: acked, so nothing is owed and nothing comes back
            await msg.ack_sync()
            try:
                again = len(await sub.fetch(1, timeout=2 * ACK_WAIT))
            except nats.errors.TimeoutError:
                again = 0
            await js.delete_stream(name)
            return {"redelivered": again}
        [redelivered] = await sub.fetch(1, timeout=5)  # arrives once ack wait has passed
        waited = time.monotonic() - asked
        await redelivered.ack()
        await js.delete_stream(name)
        return {
            "publishes": 2,
            "second flagged duplicate": int(bool(second.duplicate)),
            "messages stored": stored,
            "first delivery's count": msg.metadata.num_delivered,
            "redelivery's count": redelivered.metadata.num_delivered,
            f"came back after the {ACK_WAIT} s ack wait": int(waited >= ACK_WAIT),
            "same stream sequence": int(
                msg.metadata.sequence.stream == first.seq == redelivered.metadata.sequence.stream
            ),
        }
    finally:
        await nc.close()


# --8<-- [end:jetstream]


def main() -> None:
    redis_url, nats_url = urls()
    print(f"Redis Stream consumer group, {N} entries, consumer A stops acking:")
    for name, count in redis_group(redis_url).items():
        print(f"  {name}: {count}")
    print("NATS JetStream, one order published twice with the same Nats-Msg-Id:")
    for name, count in asyncio.run(jetstream(nats_url)).items():
        print(f"  {name}: {count}")


if __name__ == "__main__":
    main()
