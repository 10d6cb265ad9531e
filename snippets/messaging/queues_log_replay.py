"""A log keeps what was read: a Redis Stream and a NATS JetStream stream are read twice from
the start and a late reader still gets everything, while Redis PUBLISH and core NATS deliver
only to whoever listens at that moment.

Run: python snippets/messaging/queues_log_replay.py
Needs: REDIS_URL, NATS_URL
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import nats
import redis
from nats.js.api import ConsumerConfig, DeliverPolicy

N = 10


def urls() -> tuple[str, str]:
    redis_url, nats_url = os.environ.get("REDIS_URL"), os.environ.get("NATS_URL")
    if not redis_url or not nats_url:
        sys.exit(
            "set REDIS_URL and NATS_URL (e.g. redis://127.0.0.1:6379/0, nats://127.0.0.1:4222),"
            " or run `make run S=messaging/queues_log_replay`, which starts both"
        )
    return redis_url, nats_url


# --8<-- [start:redis]
def redis_stream(url: str) -> dict[str, int]:
    """XADD N entries; two readers and a late one read from ID 0. Then PUBLISH (pub/sub,
    not the stream) with one subscriber and with none: it returns how many received it."""
    stream = f"orders-{uuid.uuid4().hex[:8]}"
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5) as r:
        try:
            for i in range(N):
                r.xadd(stream, {"order": i})  # appended with an ID (ms-seq), kept
            counts = {
                "reader 1 from 0": len(r.xrange(stream, "-", "+")),
                "reader 2 from 0": len(r.xrange(stream, "-", "+")),
                "late reader from 0": len(r.xread({stream: "0"}, count=100)[0][1]),
                "entries still in the stream": r.xlen(stream),
            }
            listener = r.pubsub()
            listener.subscribe(stream)  # Redis pub/sub: only whoever listens right now
            listener.get_message(timeout=5)  # the subscribe confirmation
            counts["PUBLISH receivers, one subscribed"] = r.publish(stream, "to 1")
            listener.close()
            counts["PUBLISH receivers, nobody subscribed"] = r.publish(stream, "to 0")
        finally:
            r.delete(stream)
    return counts


# --8<-- [end:redis]


# --8<-- [start:jetstream]
async def jetstream(url: str, policy: DeliverPolicy = DeliverPolicy.ALL) -> dict[str, int]:
    """Publish N messages to a JetStream stream, then create consumers that replay from the
    first message (DeliverPolicy.ALL). Core NATS (no JetStream) delivers to the subscribers
    present when a message is published: one that was there gets N, a late one none."""
    name = f"ORDERS{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        early = await nc.subscribe(f"{name}.>")  # core NATS, subscribed before publishing
        for i in range(N):
            ack = await js.publish(f"{name}.new", str(i).encode())  # stored: seq 1..N
        counts = {"last stream sequence": ack.seq}
        for reader in ("consumer 1", "consumer 2"):
            config = ConsumerConfig(deliver_policy=policy)  # ALL: from the first message
            sub = await js.pull_subscribe(f"{name}.>", config=config)
            waiting = (await sub.consumer_info()).num_pending  # what this reader can get
            got = await sub.fetch(waiting, timeout=5) if waiting else []
            counts[f"{reader} from seq 1"] = len(got)
            await sub.unsubscribe()
        late = await nc.subscribe(f"{name}.>")  # core NATS, subscribed after publishing
        await nc.flush()  # a PING/PONG round trip: everything published before it is here
        counts["core NATS subscriber, there before"] = early.pending_msgs
        counts["core NATS subscriber, joined after"] = late.pending_msgs
        await js.delete_stream(name)
        return counts
    finally:
        await nc.close()


# --8<-- [end:jetstream]


def main() -> None:
    redis_url, nats_url = urls()
    print(f"Redis Stream, {N} entries appended:")
    for name, count in redis_stream(redis_url).items():
        print(f"  {name}: {count}")
    print(f"NATS JetStream stream, {N} messages published:")
    for name, count in asyncio.run(jetstream(nats_url)).items():
        print(f"  {name}: {count}")


if __name__ == "__main__":
    main()
