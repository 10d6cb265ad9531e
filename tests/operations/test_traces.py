"""Traces (docs/operations/traces.md): two real loopback HTTP services joined by a W3C
traceparent, with the no-propagation control, errors on spans, malformed traceparents and
malformed, oversized and slow HTTP; TraceIdRatioBased against a per-service coin flip; and
one trace across a real Redis Stream entry."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode, get_current_span

from tests.conftest import load_snippet

two = load_snippet("operations/traces_two_services")
sampling = load_snippet("operations/traces_sampling")
message = load_snippet("operations/traces_message")

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


def by_kind(spans) -> dict[str, object]:
    return {f"{s.resource.attributes['service.name']} {s.kind.name}": s for s in spans}


# --- Two services: one trace id, right parents; the control without the header.
def test_traceparent_joins_a_and_b_in_one_trace_with_the_right_parents_and_without_it_not():
    status, a, b = asyncio.run(two.order(7))
    assert status == 200
    spans = by_kind(a.spans() + b.spans())
    assert set(spans) == {"A SERVER", "A CLIENT", "B SERVER"}
    a_server, a_client, b_server = spans["A SERVER"], spans["A CLIENT"], spans["B SERVER"]
    trace_id = a_server.context.trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    assert a_server.parent is None  # the client sent no traceparent: A starts the trace
    assert a_client.parent.span_id == a_server.context.span_id and not a_client.parent.is_remote
    assert b_server.parent.span_id == a_client.context.span_id and b_server.parent.is_remote
    # What went over the wire: A's client span, as W3C's version 00 writes it.
    (sent,) = a.sent
    assert TRACEPARENT.fullmatch(sent).groups() == (
        f"{trace_id:032x}",
        f"{a_client.context.span_id:016x}",
    )
    # The control: the same services, the same process and event loop, no header.
    status, a, b = asyncio.run(two.order(7, propagate=False))
    assert status == 200 and a.sent == [None]
    spans = by_kind(a.spans() + b.spans())
    assert spans["B SERVER"].parent is None
    assert spans["B SERVER"].context.trace_id != spans["A SERVER"].context.trace_id
    assert len({s.context.trace_id for s in spans.values()}) == 2


def test_an_error_in_b_is_recorded_on_bs_span_and_marks_as_spans_and_the_control_has_none():
    status, a, b = asyncio.run(two.order(two.FAILING_ITEM))
    assert status == 502
    spans = by_kind(a.spans() + b.spans())
    b_server = spans["B SERVER"]
    assert b_server.status.status_code is StatusCode.ERROR
    assert b_server.status.description == "RuntimeError: stock database unavailable"
    (event,) = b_server.events
    assert event.name == "exception" and event.attributes["exception.type"] == "RuntimeError"
    assert "Traceback" in event.attributes["exception.stacktrace"]
    assert b_server.attributes["http.response.status_code"] == 500
    assert spans["A CLIENT"].status.status_code is StatusCode.ERROR
    assert spans["A CLIENT"].attributes["error.type"] == "500"
    assert spans["A SERVER"].status.status_code is StatusCode.ERROR
    assert spans["A SERVER"].attributes["http.response.status_code"] == 502
    assert len({s.context.trace_id for s in spans.values()}) == 1  # the error is in the trace
    # The control: another item, the same code path, no error anywhere.
    status, a, b = asyncio.run(two.order(7))
    assert status == 200
    for span in a.spans() + b.spans():
        assert span.status.status_code is StatusCode.UNSET and not span.events, span.name


def test_when_b_is_down_as_client_span_records_the_refusal_and_a_answers_502():
    async def go():
        closed = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = closed.sockets[0].getsockname()[1]
        closed.close()
        await closed.wait_closed()  # a port that was just listening: connect is refused
        a = two.Service("A", seed=1, downstream=port)
        async with two.serving(a) as a_port:
            status, _ = await two.get(a_port, "/orders/7", [])
        return status, a

    status, a = asyncio.run(go())
    assert status == 502
    spans = by_kind(a.spans())
    (event,) = spans["A CLIENT"].events
    assert event.attributes["exception.type"] == "ConnectionRefusedError"
    assert spans["A SERVER"].status.status_code is StatusCode.ERROR


# --- A malformed traceparent: a new trace, and the request is still served.
CONTINUED = {"the spec's example (the control)", "version 01 with a fifth field"}


@pytest.mark.parametrize(("what", "values"), two.CASES, ids=[c[0] for c in two.CASES])
def test_a_malformed_traceparent_starts_a_new_trace_and_the_request_is_still_served(what, values):
    status, a, b = asyncio.run(two.order(7, sent=[("traceparent", v) for v in values]))
    assert status == 200
    a_server = by_kind(a.spans())["A SERVER"]
    sent = (int(two.SENT_TRACE, 16), int(two.SENT_PARENT, 16))
    if what in CONTINUED:
        assert (a_server.parent.trace_id, a_server.parent.span_id) == sent
        assert a_server.context.trace_id == sent[0]
    else:  # restarted: a root span with a trace id of A's own
        assert a_server.parent is None and a_server.context.trace_id != sent[0]
    # Either way A's new or continued trace goes on to B.
    assert by_kind(b.spans())["B SERVER"].context.trace_id == a_server.context.trace_id


def test_when_traceparent_is_invalid_tracestate_is_not_parsed_and_when_valid_it_is():
    # W3C Trace Context 3.3: "If the vendor failed to parse traceparent, it MUST NOT attempt
    # to parse tracestate."
    good = {"traceparent": two.VALID, "tracestate": "congo=t61rcWkgMzE"}
    ctx = get_current_span(two.PROPAGATOR.extract(good)).get_span_context()
    assert ctx.is_valid and ctx.trace_state.get("congo") == "t61rcWkgMzE"
    bad = good | {"traceparent": two.VALID.upper()}
    assert two.PROPAGATOR.extract(bad) == Context()  # nothing at all: a new trace


# --- Bad HTTP: answered like a server, no span started, and B keeps serving.
async def send_raw(port: int, data: bytes, pace: float = 0.0, timeout: float = 10.0) -> bytes:
    """Send `data` (a byte every `pace` s if pace), then read until the server closes;
    b"<reset>" is appended if the connection was reset after what had been read."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        first = asyncio.ensure_future(reader.read(65536))  # one read, never cancelled half-way
        try:
            if not pace:
                writer.write(data)
            else:
                for byte in data:
                    writer.write(bytes([byte]))
                    if (await asyncio.wait({first}, timeout=pace))[0]:
                        break  # answered before we finished (the 408)
            try:
                answer = await first
                return answer + await reader.read()
            except ConnectionResetError:
                return (first.result() if first.done() and not first.exception() else b"") + (
                    b"<reset>"
                )
        finally:
            writer.close()


def request(*fields: bytes, target: bytes = b"/stock/1", method: bytes = b"GET") -> bytes:
    lines = b"".join(f + b"\r\n" for f in fields)
    return b"%s %s HTTP/1.1\r\nHost: b\r\n%s\r\n" % (method, target, lines)


def against_b(*sent: tuple[bytes, float]):
    async def go():
        b = two.Service("B", seed=2)
        async with two.serving(b) as port:
            answers = await asyncio.gather(*(send_raw(port, data, pace) for data, pace in sent))
            status, _ = await two.get(port, "/stock/1", [("traceparent", two.VALID)])
            assert status == 200  # still serving after all that
        return answers, b.spans()

    return asyncio.run(go())


def test_malformed_oversized_and_slow_http_get_400_414_431_408_and_no_span():
    # B closes at once after an error answer (no staged close, RFC 9112 9.6): a reset could
    # follow an answer; on loopback every answer here arrived (as in test_logs, same server).
    start = time.monotonic()
    answers, spans = against_b(
        (b"GARBAGE\r\n\r\n", 0),
        (b"GET /stock/1 HTTP/1.1\r\n\r\n", 0),  # no Host (RFC 9112 3.2): 400
        (request(b"traceparent: " + b"0" * 10_000), 0),  # an oversized header: 431
        (request(target=b"/stock/" + b"1" * 10_000), 0),  # a long target: 414
        (request(b"X-Slow: " + b"z" * 40), 0.3),  # a byte every 0.3 s: 408 after READ_LIMIT
        (request(method=b"BREW"), 0),  # 501
        (request(b"traceparent: ff" + two.VALID[2:].encode()), 0),  # served, a new trace
    )
    took = time.monotonic() - start
    status = [a.split(b"\r\n", 1)[0] for a in answers]
    assert status == [
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 431 Request Header Fields Too Large",
        b"HTTP/1.1 414 URI Too Long",
        b"HTTP/1.1 408 Request Timeout",
        b"HTTP/1.1 501 Not Implemented",
        b"HTTP/1.1 200 OK",
    ]
    # Spans only for the requests B served: the ff one (a new trace) and the last (continued).
    assert [s.parent is None for s in spans] == [True, False]
    assert spans[1].context.trace_id == int(two.SENT_TRACE, 16)
    # A hang guard, not a measurement: the 408 comes from the whole-head timer.
    assert two.READ_LIMIT * 0.9 <= took < two.READ_LIMIT + 8, took


# --- Break it: inject before the client span starts.
def test_break_it_injecting_outside_the_client_span_makes_b_a_child_of_as_server_span(
    monkeypatch,
):
    async def call_b_injecting_too_early(self, item: int) -> int:
        fields: dict[str, str] = {}
        two.PROPAGATOR.inject(fields)  # the current span is still A's server span
        with self.tracer.start_as_current_span("GET /stock/{item}", kind=SpanKind.CLIENT):
            status, _ = await two.get(self.downstream, f"/stock/{item}", list(fields.items()))
            return status

    for broken in (False, True):  # the snippet as it is (the control), then broken
        if broken:
            monkeypatch.setattr(two.Service, "call_b", call_b_injecting_too_early)
        status, a, b = asyncio.run(two.order(7))
        assert status == 200
        spans = by_kind(a.spans() + b.spans())
        parent = spans["B SERVER"].parent.span_id
        assert len({s.context.trace_id for s in spans.values()}) == 1  # still one trace
        expected = spans["A SERVER"] if broken else spans["A CLIENT"]
        assert parent == expected.context.span_id


# --- Sampling.
def test_the_same_ratio_in_both_services_keeps_each_trace_whole_and_coin_flips_do_not():
    same = sampling.run(TraceIdRatioBased(0.25), TraceIdRatioBased(0.25))
    assert same.only_a == same.only_b == 0 and same.a == same.b
    assert same.flags["01"] == same.whole and same.flags["00"] == same.neither
    # About a quarter kept: deterministic for these seeded ids; 4 standard errors of room.
    n = sampling.TRACES
    assert abs(same.whole / n - 0.25) < 4 * (0.25 * 0.75 / n) ** 0.5
    coin = sampling.run(sampling.CoinFlip(0.25, 1), sampling.CoinFlip(0.25, 2))
    half = coin.only_a + coin.only_b
    assert half > 0.25 * n  # expected 37.5%; the counts are those of the seeded coins
    assert abs(coin.whole / n - 0.0625) < 4 * (0.0625 * 0.9375 / n) ** 0.5


def test_trace_id_ratio_reads_only_the_low_64_bits_and_a_lower_ratio_keeps_a_subset():
    b = sampling.bits()
    assert b["rule"] == b["same_high"] == b["ids"]
    assert b["same_low"] < 0.7 * b["ids"]  # the control: new low bits, new decisions
    low = sampling.run(TraceIdRatioBased(0.25), TraceIdRatioBased(0.10))
    assert low.b < low.a and low.only_b == 0  # 0.10's traces are a subset of 0.25's
    assert low.only_a > 0  # ...so B drops some that A keeps: half-recorded traces


def test_break_it_parent_based_makes_b_follow_as_sampled_flag_and_plain_ratio_does_not():
    # The page's Break it: B with TraceIdRatioBased(0.10) instead of ParentBased(...).
    follows = sampling.run(TraceIdRatioBased(0.25), ParentBased(TraceIdRatioBased(0.10)))
    assert follows.a == follows.b and follows.only_a == follows.only_b == 0
    broken = sampling.run(TraceIdRatioBased(0.25), TraceIdRatioBased(0.10))
    assert broken.only_a > 0.05 * sampling.TRACES and broken.a == follows.a


# --- Across a Redis Stream entry.
def test_the_consumer_span_is_a_child_of_and_linked_to_the_producer_span(redis_url):
    results = {r.what: r for r in message.run(redis_url)}
    good = results["with traceparent"]
    send, proc = good.send, good.process
    assert (send.kind, proc.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert proc.context.trace_id == send.context.trace_id
    assert proc.parent.span_id == send.context.span_id and proc.parent.is_remote
    assert [link.context.span_id for link in proc.links] == [send.context.span_id]
    assert proc.status.status_code is StatusCode.UNSET and good.outcome == "2 reserved"
    # The control: no field, so a new trace, no parent, no link; the entry is processed.
    control = results["without the field (control)"]
    assert control.process.parent is None and not control.process.links
    assert control.process.context.trace_id != control.send.context.trace_id
    assert control.outcome == "1 reserved"
    for what in ("traceparent version ff", "traceparent uppercase hex"):
        r = results[what]
        assert r.process.parent is None and not r.process.links
        assert r.process.context.trace_id != r.send.context.trace_id
        assert r.outcome.endswith("reserved")
    bad = results["with traceparent, bad qty"]
    assert bad.process.status.status_code is StatusCode.ERROR and bad.outcome == "failed"
    assert bad.process.events[0].attributes["exception.type"] == "ValueError"
    assert bad.process.context.trace_id == bad.send.context.trace_id


@pytest.mark.parametrize(
    "value",
    [
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e4736",
        "\x1b[2J" + "z" * 5000,
        "",
    ],
)
def test_a_malformed_traceparent_in_an_entry_starts_a_new_trace_and_is_processed(redis_url, value):
    entries = [("bad", {"order": "9", "qty": "3"}, True, value)]
    (r,) = message.run(redis_url, entries)
    assert r.outcome == "3 reserved"
    assert r.process.parent is None and not r.process.links
    assert r.process.context.trace_id != r.send.context.trace_id


def test_the_entry_carries_traceparent_as_a_field_and_an_empty_stream_times_out(
    redis_url, monkeypatch
):
    import redis

    tracer, exporter = message.tracing("producer", seed=3)
    stream = f"orders-{uuid.uuid4().hex[:8]}"
    with redis.Redis.from_url(redis_url, socket_timeout=5, decode_responses=True) as r:
        try:
            message.produce(r, tracer, stream, {"order": "1", "qty": "2"})
            [(_, fields)] = r.xrange(stream)
            (send,) = exporter.get_finished_spans()
            assert TRACEPARENT.fullmatch(fields["traceparent"]).groups() == (
                f"{send.context.trace_id:032x}",
                f"{send.context.span_id:016x}",
            )
            # A consumer waiting for an entry that never comes gives up: no hang.
            monkeypatch.setattr(message, "BLOCK_MS", 100)
            consumer, _ = message.tracing("consumer", seed=4)
            r.xtrim(stream, maxlen=0)
            with pytest.raises(TimeoutError):
                message.consume(r, consumer, stream, expect=1)
        finally:
            r.delete(stream)
