"""One trace across a message on a real Redis Stream: the producer's PRODUCER span puts a W3C
traceparent into the entry's fields (XADD); the consumer reads the entry (XREAD) and starts a
CONSUMER span whose parent is that producer span and which also links to it. An entry
without the field starts a new trace; a malformed one too, and it is still processed.

Run: python snippets/operations/traces_message.py
Needs: REDIS_URL
"""

from __future__ import annotations

import os
import random
import sys
import uuid
from dataclasses import dataclass

import redis
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()
TIMEOUT = 5.0  # seconds for any Redis call: a hang guard
BLOCK_MS = 1000  # how long one XREAD waits for new entries


class SeededIds(IdGenerator):
    """Random ids from a seeded generator, so the page's output shows the same ids every run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def generate_span_id(self) -> int:
        while not (span_id := self.rng.getrandbits(64)):
            pass
        return span_id

    def generate_trace_id(self) -> int:
        while not (trace_id := self.rng.getrandbits(128)):
            pass
        return trace_id


def tracing(service: str, seed: int):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON), id_generator=SeededIds(seed),
                              resource=Resource({"service.name": service}))  # fmt: skip
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("backend-fundamentals.traces"), exporter


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        sys.exit(
            "set REDIS_URL (e.g. redis://127.0.0.1:6379/0), or run"
            " `make run S=operations/traces_message`, which starts a Redis"
        )
    return url


# --8<-- [start:produce]
def produce(r: redis.Redis, tracer, stream: str, order: dict[str, str],
            propagate: bool = True, traceparent: str | None = None) -> None:  # fmt: skip
    """XADD one entry inside a PRODUCER span ("send"), whose context travels in the entry's
    fields as traceparent (its creation context). `traceparent`: send this value instead."""
    attributes = {"messaging.system": "redis", "messaging.operation.type": "send",
                  "messaging.destination.name": stream}  # fmt: skip
    with tracer.start_as_current_span(f"send {stream}", kind=SpanKind.PRODUCER,
                                      attributes=attributes) as span:  # fmt: skip
        fields = dict(order)
        if propagate:
            PROPAGATOR.inject(fields)  # fields["traceparent"] = "00-<trace>-<this span>-01"
        if traceparent is not None:
            fields["traceparent"] = traceparent
        entry_id = r.xadd(stream, fields)
        span.set_attribute("messaging.message.id", entry_id)


# --8<-- [end:produce]


# --8<-- [start:consume]
def process(tracer, stream: str, entry_id: str, fields: dict[str, str]) -> str:
    """One entry inside a CONSUMER span ("process"): its parent is the producer's span when
    the entry carries a valid traceparent (a new trace otherwise), and it links to it."""
    creation = PROPAGATOR.extract(fields)  # empty if the field is absent or invalid
    producer = trace.get_current_span(creation).get_span_context()
    links = [Link(producer)] if producer.is_valid else []
    attributes = {
        "messaging.system": "redis",
        "messaging.operation.type": "process",
        "messaging.destination.name": stream,
        "messaging.message.id": entry_id,
    }
    with tracer.start_as_current_span(
        f"process {stream}",
        context=creation,
        links=links,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        try:
            quantity = int(fields["qty"])  # the work: a bad order is an error on this span
        except (KeyError, ValueError) as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.set_attribute("error.type", type(error).__qualname__)
            return "failed"
        return f"{quantity} reserved"


def consume(r: redis.Redis, tracer, stream: str, expect: int) -> list[str]:
    """XREAD entries from the start of the stream until `expect` are processed."""
    last, outcomes = "0-0", []
    while len(outcomes) < expect:
        reply = r.xread({stream: last}, count=10, block=BLOCK_MS)
        if not reply:
            raise TimeoutError(f"no new entry within {BLOCK_MS} ms; {len(outcomes)} processed")
        for entry_id, fields in reply[0][1]:
            last = entry_id
            outcomes.append(process(tracer, stream, entry_id, fields))
    return outcomes


# --8<-- [end:consume]

VALID_ELSEWHERE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ENTRIES = [  # (what, the order, does the producer inject?, a traceparent sent instead)
    ("with traceparent", {"order": "1", "qty": "2"}, True, None),
    ("without the field (control)", {"order": "2", "qty": "1"}, False, None),
    ("traceparent version ff", {"order": "3", "qty": "5"}, True, "ff" + VALID_ELSEWHERE[2:]),
    ("traceparent uppercase hex", {"order": "4", "qty": "1"}, True, VALID_ELSEWHERE.upper()),
    ("with traceparent, bad qty", {"order": "5", "qty": "two"}, True, None),
]


@dataclass
class Result:
    what: str
    outcome: str
    send: ReadableSpan
    process: ReadableSpan


# --8<-- [start:run]
def run(url: str, entries=ENTRIES) -> list[Result]:
    """Produce every entry to a new stream, then consume them all; each entry's spans."""
    stream = f"orders-{uuid.uuid4().hex[:8]}"
    producer, sent = tracing("producer", seed=3)
    consumer, processed = tracing("consumer", seed=4)
    with redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                              decode_responses=True) as r:  # fmt: skip
        try:
            for _, order, propagate, traceparent in entries:
                produce(r, producer, stream, order, propagate, traceparent)
            outcomes = consume(r, consumer, stream, len(entries))
        finally:
            r.delete(stream)
    sends, processes = sent.get_finished_spans(), processed.get_finished_spans()
    return [
        Result(what, outcome, s, p)
        for (what, *_), outcome, s, p in zip(entries, outcomes, sends, processes, strict=True)
    ]


# --8<-- [end:run]


def short(value: int) -> str:
    return f"{value:016x}"


def trace_prefix(trace_id: int) -> str:
    return f"{trace_id:032x}"[:8] + ".."


def main() -> None:
    results = run(redis_url())
    print(f"{len(results)} entries: XADD to one Redis Stream by the producer, XREAD by the"
          " consumer; each row is one entry's two spans")  # fmt: skip
    print(f"\n{'':<30}{'send span':<30}process span")
    print(f"{'entry':<30}{'trace id':<12}{'span id':<18}{'trace id':<12}{'parent id':<18}"
          f"{'link':<6}{'status':<7}outcome")  # fmt: skip
    for x in results:
        send, proc = x.send.context, x.process
        parent = proc.parent.span_id if proc.parent else None
        linked = [link.context.span_id for link in proc.links]
        print(f"{x.what:<30}{trace_prefix(send.trace_id):<12}{short(send.span_id):<18}"
              f"{trace_prefix(proc.context.trace_id):<12}"
              f"{short(parent) if parent else '-':<18}"
              f"{('yes' if linked == [send.span_id] else 'no'):<6}"
              f"{proc.status.status_code.name:<7}{x.outcome}")  # fmt: skip
    for x in results:
        for event in x.process.events:
            print(
                f"\n{x.what}: the process span's event {event.name!r}: "
                f"{event.attributes['exception.type']}: {event.attributes['exception.message']}"
            )
    joined = sum(x.process.context.trace_id == x.send.context.trace_id for x in results)
    print(f"\nprocess spans in their producer's trace: {joined} of {len(results)}; "
          f"entries processed: {len(results)} of {len(results)}")  # fmt: skip
    print(f"span kinds: send {results[0].send.kind.name}, process {results[0].process.kind.name}")


if __name__ == "__main__":
    main()
