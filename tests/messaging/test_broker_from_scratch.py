"""A pub/sub broker from scratch (docs/messaging/broker-from-scratch.md): NATS-style wildcards,
fan-out to every matching subscriber, a bounded buffer per subscriber with an explicit policy
(drop, counted; or cut the slow consumer off) against the unbounded control that grows, the
naive blocking fan-out that stalls everyone (Break it), and bad input answered without a
crash, a hang or harm to other clients."""

from __future__ import annotations

import asyncio
import struct
import tracemalloc

import pytest

from tests.conftest import load_snippet

broker = load_snippet("messaging/broker_pubsub")
slow = load_snippet("messaging/broker_slow_subscriber")
bad = load_snippet("messaging/broker_bad_input")


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("orders.eu.created", "orders.eu.created", True),
        ("orders.*.created", "orders.us.created", True),
        ("orders.*.created", "orders.eu.refund.created", False),  # '*' is one token
        ("orders.*", "orders", False),
        ("orders.>", "orders.eu.refund.issued", True),
        ("orders.>", "orders", False),  # '>' needs at least one token
        (">", "users.signup", True),
        ("*.*", "a.b", True),
        ("*.*", "a.b.c", False),
        ("orders.eu", "orders.eu.created", False),  # no prefix matching without '>'
    ],
)
def test_nats_wildcard_semantics(pattern, subject, expected):
    assert broker.matches(broker.tokens(pattern, True), broker.tokens(subject, False)) is expected


@pytest.mark.parametrize(
    ("subject", "wildcards"),
    [("orders.>.x", True), ("orders..x", True), ("", True), ("ord*rs", True), ("a.*", False)],
)
def test_bad_subjects_are_refused(subject, wildcards):
    with pytest.raises(ValueError):
        broker.tokens(subject, wildcards)


def test_fan_out_reaches_every_matching_subscriber_and_only_those():
    assert asyncio.run(broker.fan_out()) == {
        "exact": ["orders.eu.created"],
        "one token": ["orders.eu.created", "orders.us.created"],
        "the rest": ["orders.eu.created", "orders.us.created", "orders.eu.refund.issued"],
        "everything": [*broker.PUBLISHED],
    }


def test_unsub_stops_delivery_and_unknown_unsub_is_an_error():
    async def run() -> tuple[bytes | None, list, bytes | None]:
        async with broker.Broker().serving() as port:
            sub, pub = await broker.Client.connect(port), await broker.Client.connect(port)
            assert await sub.call(b"SUB a.>") == b"OK"
            assert await sub.call(b"UNSUB a.>") == b"OK"
            await pub.send(b"PUB a.b hello")
            assert await pub.call(b"PING") == b"PONG"
            pong = await sub.call(b"PING")
            again = await sub.call(b"UNSUB a.>")
            await sub.close()
            await pub.close()
            return pong, sub.messages, again

    pong, messages, again = asyncio.run(run())
    assert (pong, messages) == (b"PONG", [])
    assert again.startswith(b"ERR not subscribed")


@pytest.fixture(scope="module")
def policies():
    return asyncio.run(slow.all_policies())


def test_fast_subscribers_get_everything_under_every_bounded_policy(policies):
    for policy, rows in policies.items():
        for row in rows:
            assert row["fast got"] == [row["published"]] * 2, (policy, row)


def test_unbounded_buffer_grows_with_what_is_published(policies):
    """The control: nothing bounds the broker's queue for the subscriber that stopped."""
    # Noise budget: over 11 runs at a load average of 12-17 on 2 cores the queue held
    # 7,259-15,113, 37,009-41,412 and 96,509-100,912 bytes after 250, 500 and 1,000 messages
    # (1,000 frames of 119 bytes = 119,000 bytes published; the rest, 18-22.5 KB, sat in
    # kernel and asyncio buffers).
    # The margins (strictly increasing; > 3x the 16 KiB bound at 1,000) hold because those
    # hidden buffers are capped by SO_SNDBUF, SO_RCVBUF and the reader's limit, not timing.
    queued = [row["slow queued bytes"] for row in policies["unbounded"]]
    assert queued[0] < queued[1] < queued[2], queued
    assert queued[2] > 3 * slow.MAX_PENDING, queued
    last = policies["unbounded"][-1]
    assert last["slow then read"] == slow.STEPS[-1] and last["slow still connected"]


def test_drop_policy_bounds_the_queue_and_counts_every_dropped_message(policies):
    rows = policies["drop"]
    assert all(row["slow queued bytes"] <= slow.MAX_PENDING for row in rows), rows
    last = rows[-1]
    assert last["slow dropped"] > 0 and last["slow still connected"]
    # nothing vanishes unaccounted: what it read + what was dropped = what was published
    assert last["slow then read"] + last["slow dropped"] == last["published"]


def test_disconnect_policy_cuts_the_slow_consumer_off(policies):
    last = policies["disconnect"][-1]
    assert last["slow cut off"] == 1
    assert not last["slow still connected"]
    assert last["slow then read"] < last["published"]  # what was in flight, then EOF


def test_break_it_a_blocking_fan_out_stalls_the_fast_subscribers_too():
    """The naive broker writes to each subscriber in turn and waits for its socket: once the
    slow one's buffers are full, nobody gets anything."""
    # Noise budget: over 10 runs (load 12-17) the fast subscribers had 135-192 of the first
    # 250 when the broker stopped answering for 1 s (151-205 in 12 earlier runs); in every
    # bounded run they had all 250 within milliseconds, so "fewer than published" cannot
    # come from a slow machine: the fan-out is stuck on the slow socket, and no amount of
    # waiting unblocks it.
    [row] = asyncio.run(slow.slow_subscriber("block", patience=1.0))
    assert row["stalled"]
    assert all(got < row["published"] for got in row["fast got"]), row


EXPECTED = {  # case: (start of the ERR, connection afterwards)
    "length 2 GiB (> 1 MiB limit)": ("ERR frame too large: 2147483648 > 1048576", "closed"),
    "unknown command": ("ERR unknown command", "open"),
    "PUB without a payload": ("ERR usage: PUB", "open"),
    "'>' not last": ("ERR bad wildcard", "open"),
    "wildcard in a PUB subject": ("ERR wildcard in a publish subject", "open"),
    "empty token": ("ERR empty token", "open"),
    "not ASCII": ("ERR subject is not ASCII", "open"),
    "empty frame": ("ERR empty frame", "open"),
    "frame cut short, then EOF": ("ERR truncated frame: EOF after 13 bytes", "closed"),
    "length prefix, then silence": ("ERR frame not completed within 0.5 s", "closed"),
    "half a length prefix, then silence": ("ERR frame not completed within 0.5 s", "closed"),
}


def test_bad_input_gets_a_clear_error_and_other_clients_keep_working():
    rows = asyncio.run(bad.bad_input())
    assert [name for name, *_ in rows] == list(EXPECTED)
    for name, answer, state, seconds, healthy in rows:
        prefix, expected_state = EXPECTED[name]
        assert answer.startswith(prefix) and state == expected_state, (name, answer, state)
        assert healthy == 10, name  # the pair beside it got all of its messages
        if "silence" in name:  # the broker waited for the frame, then gave up (no hang)
            assert seconds >= bad.FRAME_TIMEOUT, (name, seconds)


def test_a_client_that_never_reads_its_replies_is_bounded_too():
    """Replies count against the bound: under 'drop' the broker stops reading the client
    (TCP pushes back on it), under 'disconnect' it is cut off; the control, unbounded,
    reads every PING and queues every PONG."""
    rows = asyncio.run(bad.never_reads_all())
    replies = bad.PINGS * len(bad.frame(b"PONG"))
    control = rows["unbounded"]
    # Noise budget: not a timing test; over 11 runs (load 12-17) the control's peak was all
    # 80,000 bytes every time (the handler reads the buffered PINGs without yielding to the
    # pump), and 75,416 once in a 2-worker suite run (a few KB reached the kernel's socket
    # buffer first); drop's peak 16,384; the margin of 3x the bound is a count, not a time.
    assert control["read them all"] and control["peak queued bytes"] > 3 * bad.MAX_PENDING
    assert control["peak queued bytes"] <= replies
    drop = rows["drop"]
    assert drop["paused"] and not drop["read them all"] and not drop["cut off"]
    # within the bound, plus at most one reply (a reply is never dropped)
    assert drop["peak queued bytes"] < bad.MAX_PENDING + len(bad.frame(b"PONG")), drop
    assert rows["disconnect"]["cut off"] == 1 and not rows["disconnect"]["read them all"]
    assert all(row["healthy got"] == 10 for row in rows.values()), rows


def stream(data: bytes, eof: bool = False) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_an_oversized_length_is_refused_before_waiting_for_or_allocating_the_body():
    """Two controls: a reader that trusts the length waits for 2 GiB that never come, and
    one that preallocates its buffer (capped at 64 MiB here) allocates far over the limit."""
    data = struct.pack(">I", 2**31) + b"x" * 1000  # the header, then some read-ahead body

    async def ours() -> str:
        with pytest.raises(broker.FrameError) as e:
            await broker.read_frame(stream(data), timeout=5)
        return str(e.value)

    async def trusting() -> bool:
        reader = stream(data)
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        try:
            await asyncio.wait_for(reader.readexactly(length), 0.2)
        except TimeoutError:
            return True  # still waiting: a connection (and its memory) held hostage
        return False

    async def preallocating() -> int:
        reader = stream(data)
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        body = bytearray(min(length, 64 * 1024 * 1024))  # "reserve room for the body"
        return len(body)

    def peak(coro) -> tuple[object, int]:  # noqa: ANN001
        tracemalloc.start()
        try:
            result = asyncio.run(coro)
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    message, ours_peak = peak(ours())
    _, control_peak = peak(preallocating())
    assert message == "frame too large: 2147483648 > 1048576 bytes"
    assert ours_peak < broker.MAX_FRAME < control_peak, (ours_peak, control_peak)
    # "too large", not "not completed within 5 s": refused without waiting for the body
    assert asyncio.run(trusting())


def test_read_frame_truncated_stalled_and_clean_eof():
    async def run() -> tuple:
        clean = await broker.read_frame(stream(b"", eof=True))
        whole = await broker.read_frame(stream(broker.frame(b"PING"), eof=True))
        with pytest.raises(broker.FrameError, match="truncated frame: EOF after 2 bytes"):
            await broker.read_frame(stream(struct.pack(">I", 10) + b"PU", eof=True))
        with pytest.raises(broker.FrameError, match="not completed within 0.1 s"):
            await broker.read_frame(stream(struct.pack(">I", 10)), timeout=0.1)
        return clean, whole

    assert asyncio.run(run()) == (None, b"PING")
