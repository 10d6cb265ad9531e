"""Two real HTTP services on loopback, each with its own OpenTelemetry TracerProvider: A puts
a W3C `traceparent` on its call to B and B takes its parent from it, so A's server span, A's
client span and B's server span share one trace id; an error in B is recorded on B's span
and on A's; without the header B starts a trace of its own; a malformed `traceparent`
starts a new trace and the request is still served.

Run: python snippets/operations/traces_two_services.py
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import urllib.parse
from email.utils import formatdate

import h11
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()  # W3C Trace Context: traceparent, tracestate
MAX_LINE = 8 * 1024  # request-line bytes; more gets 414 (RFC 9112 section 3)
MAX_FIELDS = 8 * 1024  # header-field bytes after it; more gets 431 (RFC 6585 section 5)
READ_LIMIT = 2.0  # seconds a client has to send its whole head; then 408
CALL_TIMEOUT = 10.0  # A's for B, the client's for A: a hang guard (a busy machine is slow)
ALLOWED = (b"GET", b"HEAD")  # what our resources serve; other methods RFC 9110 defines: 405
DEFINED = (*ALLOWED, b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE")  # else: 501
FAILING_ITEM = 13  # B's stock lookup for this item raises: the error to see in the trace
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 414: "URI Too Long", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
           504: "Gateway Timeout"}  # fmt: skip


# --8<-- [start:provider]
class SeededIds(IdGenerator):
    """Random ids from a seeded generator, so the page's output shows the same ids every run.
    The SDK's default (RandomIdGenerator) draws them unseeded; 0 is the one invalid id."""

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


def tracing(service: str, seed: int, sampler: Sampler | None = None):
    """A TracerProvider of the service's own, exporting finished spans to memory (a real
    service would export them to a collector). ParentBased(ALWAYS_ON) is the SDK's default,
    written out so an OTEL_TRACES_SAMPLER variable cannot change what the page shows."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        sampler=sampler or ParentBased(ALWAYS_ON),
        resource=Resource({"service.name": service}),
        id_generator=SeededIds(seed),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # export as each span ends
    return provider, exporter


# --8<-- [end:provider]


# --8<-- [start:service]
class Service:
    """A (orders: calls B for each order) or B (stock). `propagate`: A sends traceparent."""

    def __init__(self, name: str, seed: int, downstream: int = 0, propagate: bool = True,
                 call_timeout: float = CALL_TIMEOUT) -> None:  # fmt: skip
        self.name, self.downstream, self.propagate = name, downstream, propagate
        self.call_timeout = call_timeout
        self.provider, self.exporter = tracing(name, seed)
        self.tracer = self.provider.get_tracer("backend-fundamentals.traces")
        self.sent: list[str | None] = []  # the traceparent A put on each call to B

    def spans(self) -> list[ReadableSpan]:
        return sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time)

    async def handle(self, method: str, path: str, fields: dict[str, str]) -> tuple[int, bytes]:
        """One request: a SERVER span whose parent is the caller's span if `fields` hold a
        valid traceparent; none (a new trace) if they hold none or an invalid one."""
        route, item = route_of(path)
        parent = PROPAGATOR.extract(fields)  # an empty context when absent or invalid
        attributes = {"http.request.method": method, "url.path": path}
        if route:
            attributes["http.route"] = route
        with self.tracer.start_as_current_span(
            f"{method} {route or ''}".strip(), context=parent, kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:  # fmt: skip
            try:
                status, body = await self.respond(route, item)
            except Exception as error:  # a bug or an outage in our own code: 500, on record
                span.record_exception(error)  # an "exception" event: type, message, stack
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.set_attribute("error.type", type(error).__qualname__)
                status, body = 500, b"internal error\n"
            span.set_attribute("http.response.status_code", status)
            if status >= 500 and span.status.status_code is not StatusCode.ERROR:
                span.set_status(Status(StatusCode.ERROR))  # 5xx: the server failed
                span.set_attribute("error.type", str(status))
        return status, body

    async def respond(self, route: str | None, item: int) -> tuple[int, bytes]:
        if self.name == "B" and route == "/stock/{item}":
            if item == FAILING_ITEM:
                raise RuntimeError("stock database unavailable")
            await asyncio.sleep(0)  # stands for the query
            return 200, b"in stock\n"
        if self.name == "A" and route == "/orders/{item}":
            stock = await self.call_b(item)
            if stock != 200:  # B failed or could not be reached: we cannot take the order
                return 502, b"stock service failed\n"
            return 200, b"ordered\n"
        return 404, b"no such item\n"

    async def call_b(self, item: int) -> int:
        """GET /stock/<item> on B inside a CLIENT span; B's status, or 502/504 if none."""
        with self.tracer.start_as_current_span(
            "GET /stock/{item}", kind=SpanKind.CLIENT,
            attributes={"http.request.method": "GET", "server.port": self.downstream},
        ) as span:  # fmt: skip
            fields: dict[str, str] = {}
            if self.propagate:
                PROPAGATOR.inject(fields)  # traceparent: 00-<trace id>-<this span's id>-01
            self.sent.append(fields.get("traceparent"))
            try:
                status, _ = await get(self.downstream, f"/stock/{item}", list(fields.items()),
                                      self.call_timeout)  # fmt: skip
            except (TimeoutError, OSError, h11.ProtocolError) as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.set_attribute("error.type", type(error).__qualname__)
                return 504 if isinstance(error, TimeoutError) else 502
            span.set_attribute("http.response.status_code", status)
            if status >= 400:  # a client span: 4xx and 5xx are errors (the caller's view)
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(status))
            return status


def route_of(path: str) -> tuple[str | None, int]:
    """('/orders/{item}', 7) for /orders/7; (None, -1) for a path we do not serve."""
    kind, _, number = path.rpartition("/")
    digits = number.isascii() and number.isdecimal() and len(number) <= 9
    if kind in ("/orders", "/stock") and digits:
        return f"{kind}/{{item}}", int(number)
    return None, -1


# --8<-- [end:service]


# --8<-- [start:http]
def too_large(start: bytes, head: int) -> int:
    """414 if the request line is over MAX_LINE (`start`: the head's first MAX_LINE + 1
    bytes), 431 if the `head` bytes hold over MAX_FIELDS of fields after it, else 0."""
    end = start.find(b"\n")  # h11 ends a line at LF, with or without a CR before it
    if end == -1:
        return 414 if len(start) > MAX_LINE else 0
    return 431 if head - (end + 1) > MAX_FIELDS else 0


def path_of(target: str) -> str | None:
    """The path of an origin-form (/p?q) or absolute-form (http://host/p?q) target, else None
    (RFC 9112 3.2: a server MUST accept the absolute form)."""
    if target.startswith("/"):
        return target.partition("?")[0]
    parts = urllib.parse.urlsplit(target)
    if parts.scheme in ("http", "https") and parts.netloc:
        return parts.path or "/"
    return None


async def on_connection(service: Service, reader, writer) -> None:
    """One request per connection (`Connection: close`), parsed by h11: a malformed head gets
    400, a long target 414, long fields 431, a slow head 408 — before any span is started."""
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_LINE + MAX_FIELDS)
    request, status, received, start = None, 0, 0, b""
    try:
        async with asyncio.timeout(READ_LIMIT):  # for the whole head, not per read
            while (event := parser.next_event()) is h11.NEED_DATA:
                data = await reader.read(65536)
                received += len(data)
                start += data[: MAX_LINE + 1 - len(start)]
                parser.receive_data(data)
        if isinstance(event, h11.ConnectionClosed):
            return writer.close()  # connected and left without a request
        # h11's limit applies to a head still arriving; measure one that came whole too.
        status = too_large(start, received - len(parser.trailing_data[0]))
        request = None if status else event
    except h11.RemoteProtocolError as bad:
        status = (too_large(start, received) or 431) if bad.error_status_hint == 431 else 400
    except TimeoutError:
        status = 408
    path = request and path_of(request.target.decode("ascii", "replace"))
    if request is None:
        body = f"{REASONS[status]}\n".encode()
    elif request.method not in DEFINED:  # RFC 9110 9.1: unrecognized, SHOULD be 501
        status, body = 501, b"GET or HEAD only\n"
    elif request.method not in ALLOWED:
        status, body = 405, b"GET or HEAD only\n"
    elif path is None:
        status, body = 400, b"Bad Request\n"
    else:
        fields: dict[str, str] = {}
        for name, value in request.headers:  # h11 lowercases names; repeated fields combine
            key, text = name.decode("ascii"), value.decode("latin-1")  # (RFC 9110 5.3)
            fields[key] = f"{fields[key]},{text}" if key in fields else text
        status, body = await service.handle(request.method.decode("ascii"), path, fields)
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nDate: {formatdate(usegmt=True)}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n")  # fmt: skip
    if status == 405:
        head += "Allow: GET, HEAD\r\n"  # RFC 9110 15.5.6: a 405 MUST say what is allowed
    is_head = request is not None and request.method == b"HEAD"
    writer.write(head.encode() + b"\r\n" + (b"" if is_head else body))
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.drain(), CALL_TIMEOUT)
    writer.close()


async def get(port: int, target: str, fields: list[tuple[str, str]],
              timeout: float = CALL_TIMEOUT) -> tuple[int, bytes]:  # fmt: skip
    """GET http://127.0.0.1:<port><target> within `timeout`: (status, body); raises
    OSError, TimeoutError, or h11.RemoteProtocolError for an answer that is not HTTP."""
    client = h11.Connection(h11.CLIENT)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = [("Host", f"127.0.0.1:{port}"), *fields]
            writer.write(client.send(h11.Request(method="GET", target=target, headers=head)))
            writer.write(client.send(h11.EndOfMessage()))
            client.receive_data(await reader.read())  # all of it: the server closes after it
            client.receive_data(b"")
        finally:
            writer.close()
    response, body = client.next_event(), b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    return response.status_code, body


@contextlib.asynccontextmanager
async def serving(service: Service):
    """Serve `service` on 127.0.0.1, an ephemeral port; yields the port."""
    server = await asyncio.start_server(lambda r, w: on_connection(service, r, w), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


# --8<-- [end:http]


# --8<-- [start:run]
async def order(item: int, propagate: bool = True, sent: list[tuple[str, str]] = ()):
    """One GET /orders/<item> to A (with `sent` fields, e.g. a traceparent of the client's);
    returns A's answer, A and B (their spans: a.spans(), b.spans())."""
    b = Service("B", seed=2)
    async with serving(b) as b_port:
        a = Service("A", seed=1, downstream=b_port, propagate=propagate)
        async with serving(a) as a_port:
            status, _ = await get(a_port, f"/orders/{item}", list(sent))
    return status, a, b


# --8<-- [end:run]

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # W3C's example (3.2.3)
SENT_TRACE, SENT_PARENT = VALID[3:35], VALID[36:52]
CASES = [  # (what, the traceparent fields a client sends to A)
    ("the spec's example (the control)", [VALID]),
    ("version ff", ["ff" + VALID[2:]]),
    ("trace-id all zeros", [f"00-{'0' * 32}-{SENT_PARENT}-01"]),
    ("parent-id all zeros", [f"00-{SENT_TRACE}-{'0' * 16}-01"]),
    ("uppercase hex", [VALID.upper()]),
    ("trace-id one digit short", [f"00-{SENT_TRACE[:-1]}-{SENT_PARENT}-01"]),
    ("parent-id one digit long", [f"00-{SENT_TRACE}-{SENT_PARENT}0-01"]),
    ("version 00 with a fifth field", [VALID + "-extra"]),
    ("version 01 with a fifth field", ["01" + VALID[2:] + "-extra"]),
    ("version 01, 600 characters", ["01" + VALID[2:] + "-" + "x" * 544]),
    ("two traceparent fields", [VALID, VALID.replace("00f067aa", "11f067aa")]),
    ("not a traceparent at all", ["hello"]),
]


def hex_id(value: int | None, digits: int) -> str:
    return "-" if value is None else f"{value:0{digits}x}"


def table(spans: list[ReadableSpan]) -> None:
    print(f"   {'svc':<4}{'kind':<8}{'name':<20}{'trace id':<12}{'span id':<18}"
          f"{'parent id':<18}status")  # fmt: skip
    for s in spans:
        ctx, parent = s.get_span_context(), s.parent and s.parent.span_id
        print(f"   {s.resource.attributes['service.name']:<4}{s.kind.name:<8}{s.name:<20}"
              f"{hex_id(ctx.trace_id, 32)[:8] + '..':<12}{hex_id(ctx.span_id, 16):<18}"
              f"{hex_id(parent, 16):<18}{s.status.status_code.name}")  # fmt: skip


def main() -> None:
    status, a, b = asyncio.run(order(7))
    spans = a.spans() + b.spans()
    print(f"1. GET /orders/7 to A; A calls B with traceparent (A answered {status})")
    print(f"   A sent B: traceparent: {a.sent[0]}")
    table(spans)
    print(f"   -> {len({s.context.trace_id for s in spans})} trace id across "
          f"{len(spans)} spans in 2 services; B's parent is A's client span\n")  # fmt: skip

    status, a, b = asyncio.run(order(7, propagate=False))
    spans = a.spans() + b.spans()
    print(f"2. the same, A sends no traceparent (the control; A answered {status})")
    table(spans)
    print(f"   -> {len({s.context.trace_id for s in spans})} unrelated traces: B's span is "
          f"the root of its own\n")  # fmt: skip

    status, a, b = asyncio.run(order(FAILING_ITEM))
    spans = a.spans() + b.spans()
    print(f"3. GET /orders/{FAILING_ITEM}: B's lookup raises, B answers 500, A answers {status}")
    table(spans)
    for s in spans:
        for event in s.events:
            print(f"   {s.resource.attributes['service.name']} {s.name}: event "
                  f"{event.name!r} {event.attributes['exception.type']}: "
                  f"{event.attributes['exception.message']}")  # fmt: skip
    print()

    print("4. a traceparent from the client to A: continued, or a new trace (and still served)")
    print(f"   {'the traceparent sent':<32}{'answer':>7}  {'A':<11}B")
    for what, values in CASES:
        sent = [("traceparent", value) for value in values]
        status, a, b = asyncio.run(order(7, sent=sent))
        server = a.spans()[0]
        parent = server.parent
        took = parent is not None and (parent.trace_id, parent.span_id) == (
            int(SENT_TRACE, 16), int(SENT_PARENT, 16))  # fmt: skip
        joined = b.spans()[0].context.trace_id == server.context.trace_id
        print(f"   {what:<32}{status:>7}  {'continued' if took else 'new trace':<11}"
              f"{'in A' + chr(39) + 's trace' if joined else 'apart'}")  # fmt: skip


if __name__ == "__main__":
    main()
