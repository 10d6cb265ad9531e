"""Two real HTTP services on loopback log JSON lines with structlog: A takes the request id
from X-Request-ID (or makes one), binds it in a contextvar and passes it on to B, and every
line of a request carries its id; kept in a global or a thread-local, lines get another
request's id.

Run: python snippets/operations/logs_request_id.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from io import StringIO

import h11
import structlog
from structlog.contextvars import (
    bind_contextvars,
    clear_contextvars,
    get_contextvars,
    merge_contextvars,
)
from structlog.processors import JSONRenderer, TimeStamper, add_log_level

HEADER = "X-Request-ID"  # a convention (Rails, Heroku), not a field any RFC defines
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # what we accept; anything else: a new id
MAX_LINE = 8 * 1024  # request-line bytes; more gets 414 (RFC 9112 section 3: 8000 RECOMMENDED)
MAX_FIELDS = 8 * 1024  # header-field bytes after it; more gets 431 (RFC 6585 section 5)
READ_LIMIT = 2.0  # seconds a client has to send its whole head; then 408
CALL_TIMEOUT = 10.0  # A's for B, the load generator's for A: a hang guard (a busy machine is slow)
ALLOWED = (b"GET", b"HEAD")  # what our resources serve; other methods RFC 9110 defines: 405
DEFINED = (*ALLOWED, b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE")  # else: 501
MODES = ("contextvars", "global", "threading.local")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 414: "URI Too Long", 431: "Request Header Fields Too Large",
           501: "Not Implemented", 502: "Bad Gateway", 504: "Gateway Timeout"}  # fmt: skip


# --8<-- [start:validate]
def accept_request_id(raw: str | None) -> tuple[str, str | None]:
    """The id to log under, and the refused value (None when accepted or absent).

    A request id is untrusted input that goes into every line: take it only if it is short
    and plain, else make our own (a bad id is no reason to fail the user's request)."""
    if raw is not None and REQUEST_ID.fullmatch(raw):  # fullmatch: "$" would accept "id\n"
        return raw, None
    return uuid.uuid4().hex, raw


# --8<-- [end:validate]


# --8<-- [start:service]
class Service:
    """A (orders: calls B for each) or B (stock). `mode` is where the request id is kept."""

    def __init__(self, name: str, mode: str = "contextvars", downstream: int = 0,
                 forward: bool = True, call_timeout: float = CALL_TIMEOUT) -> None:  # fmt: skip
        self.name, self.mode, self.downstream, self.forward = name, mode, downstream, forward
        self.call_timeout = call_timeout  # how long A waits for B's whole answer
        self.file = StringIO()  # stands for stdout: one JSON object per line
        self.current: str | None = None  # "global": one slot for every request of the service
        self.local = threading.local()  # "threading.local": one slot per thread (we have one)
        first = merge_contextvars if mode == "contextvars" else self.add_request_id
        self.log = structlog.wrap_logger(
            structlog.PrintLogger(self.file),
            processors=[first, add_log_level, TimeStamper(fmt="iso", utc=True), JSONRenderer()],
            service=name,
        )

    def bind_request_id(self, request_id: str) -> None:
        if self.mode == "contextvars":
            clear_contextvars()  # this connection's task has its own copy of the context
            bind_contextvars(request_id=request_id)
        elif self.mode == "global":
            self.current = request_id
        else:
            self.local.request_id = request_id

    def request_id(self) -> str | None:
        if self.mode == "contextvars":
            return get_contextvars().get("request_id")
        if self.mode == "global":
            return self.current
        return getattr(self.local, "request_id", None)

    def add_request_id(self, logger, method: str, event: dict) -> dict:  # the naive modes
        event.setdefault("request_id", self.request_id())
        return event

    async def handle(self, path: str) -> tuple[int, bytes]:
        kind, _, number = path.rpartition("/")
        if not number.isascii() or not number.isdecimal() or len(number) > 9:
            return 404, b"no such item\n"
        item = int(number)
        if self.name == "B" and kind == "/stock":
            self.log.info("stock lookup", item=item)
            await asyncio.sleep(0)  # stands for a database query: other requests run meanwhile
            self.log.info("stock found", item=item)
            return 200, b"in stock\n"
        if self.name == "A" and kind == "/orders":
            self.log.info("order received", item=item)
            async with asyncio.TaskGroup() as tasks:  # each task starts with a copy of our context
                stock = tasks.create_task(self.check_stock(item))
                tasks.create_task(self.write_audit(item))
            if stock.result() in (502, 504):  # no usable answer from B: say so, with the id
                return stock.result(), b"stock service failed\n"
            self.log.info("order answered", item=item, in_stock=stock.result() == 200)
            return 200, b"ordered\n"
        return 404, b"no such path\n"

    async def check_stock(self, item: int) -> int:
        """B's status; 502 if B refused, closed or sent what is not HTTP, 504 if too slow."""
        headers = {HEADER: self.request_id()} if self.forward else {}  # pass the id on
        self.log.info("calling stock service", item=item)
        try:
            status, _, _ = await get(self.downstream, f"/stock/{item}", headers, self.call_timeout)
        except TimeoutError:  # RFC 9110 15.6.5: no timely response from upstream
            self.log.error("stock service failed", item=item, error="timeout", status=504)
            return 504
        except (OSError, h11.ProtocolError) as error:  # 15.6.3: refused, reset or invalid
            self.log.error("stock service failed", item=item, error=type(error).__name__,
                           status=502)  # fmt: skip
            return 502
        self.log.info("stock answered", item=item, status=status)
        return status

    async def write_audit(self, item: int) -> None:
        await asyncio.sleep(0)  # stands for a write to an audit store
        self.log.info("audit written", item=item)

    def lines(self) -> list[str]:
        return self.file.getvalue().splitlines()


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
    """The path of an origin-form (/p?q) or absolute-form (http://host/p?q) target, else None.
    RFC 9112 3.2.2: a server MUST accept the absolute form (and use its host, not Host's;
    each service here serves one host, so neither host is used)."""
    if target.startswith("/"):
        return target.partition("?")[0]
    parts = urllib.parse.urlsplit(target)
    if parts.scheme in ("http", "https") and parts.netloc:
        return parts.path or "/"
    return None


async def on_connection(service: Service, reader, writer) -> None:
    """One request per connection (we answer `Connection: close`): parse with h11, bind the
    request id, answer; a malformed head gets 400, a long target 414, long fields 431, a
    slow head 408."""
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_LINE + MAX_FIELDS)
    request, status, received, start = None, 0, 0, b""
    try:
        async with asyncio.timeout(READ_LIMIT):  # for the whole head, not per read
            while (event := parser.next_event()) is h11.NEED_DATA:
                data = await reader.read(65536)  # b"" at EOF: h11 judges what that means
                received += len(data)
                start += data[: MAX_LINE + 1 - len(start)]
                parser.receive_data(data)
        if isinstance(event, h11.ConnectionClosed):
            return writer.close()  # connected and left without a request: nothing to answer
        # h11's limit applies to a head still arriving; one that came whole in one read
        # passes it, so measure: what we received, less what h11 has not parsed yet.
        status = too_large(start, received - len(parser.trailing_data[0]))
        request = None if status else event
    except h11.RemoteProtocolError as bad:  # 400, or 431: over h11's limit, line or fields?
        status = (too_large(start, received) or 431) if bad.error_status_hint == 431 else 400
    except TimeoutError:
        status = 408
    raw = None
    if request is not None:  # h11 has already refused CR, LF and NUL in a field value
        values = [v for k, v in request.headers if k == HEADER.lower().encode()]
        raw = b",".join(values).decode("latin-1") if values else None  # RFC 9110 5.3
    request_id, refused = accept_request_id(raw)
    service.bind_request_id(request_id)
    if refused is not None:  # JSON keeps even a hostile value inside one string
        service.log.warning("request id refused", refused=refused[:100], length=len(refused))
    path = request and path_of(request.target.decode("ascii", "replace"))
    if request is None:
        service.log.warning("bad request", status=status)
        body = f"{REASONS[status]}\n".encode()
    elif request.method not in DEFINED:  # RFC 9110 9.1: unrecognized, SHOULD be 501
        service.log.warning("method not implemented", method=request.method.decode("latin-1"))
        status, body = 501, b"GET or HEAD only\n"
    elif request.method not in ALLOWED:  # a method we know, on resources that lack it
        service.log.warning("method not allowed", method=request.method.decode("latin-1"))
        status, body = 405, b"GET or HEAD only\n"
    elif path is None:  # neither origin-form nor absolute-form (RFC 9112 3.2)
        service.log.warning("bad request target", status=400)
        status, body = 400, b"Bad Request\n"
    else:
        status, body = await service.handle(path)
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nDate: {formatdate(usegmt=True)}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"{HEADER}: {request_id}\r\nConnection: close\r\n")  # fmt: skip
    if status == 405:
        head += "Allow: GET, HEAD\r\n"  # RFC 9110 15.5.6: a 405 MUST say what is allowed
    is_head = request is not None and request.method == b"HEAD"
    writer.write(head.encode() + b"\r\n" + (b"" if is_head else body))
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.drain(), CALL_TIMEOUT)
    writer.close()


async def get(port: int, target: str, headers: dict[str, str],
              timeout: float = CALL_TIMEOUT) -> tuple[int, dict, bytes]:  # fmt: skip
    """GET http://127.0.0.1:<port><target>, one request per connection, within `timeout`;
    raises OSError, TimeoutError, or h11.RemoteProtocolError for an answer that is not HTTP."""
    client = h11.Connection(h11.CLIENT)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            fields = [("Host", f"127.0.0.1:{port}"), *headers.items()]
            writer.write(client.send(h11.Request(method="GET", target=target, headers=fields)))
            writer.write(client.send(h11.EndOfMessage()))
            client.receive_data(await reader.read())  # all of it: the server closes after it
            client.receive_data(b"")
        finally:
            writer.close()
    response, body = client.next_event(), b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    fields = {name.decode(): value.decode("latin-1") for name, value in response.headers}
    return response.status_code, fields, body


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


@dataclass
class Tally:
    lines: int  # every one parsed by json.loads
    right: int  # the request_id of the request the line is about
    other_request: int  # the id of another request
    other: int  # no id, or an id that no request had (one B made up)
    requests_all_right: int  # requests whose 7 lines all carry their own id
    sample: list[dict]  # the lines of one request, A's then B's
    records: list[dict]  # every line, parsed


# --8<-- [start:run]
async def run(mode: str = "contextvars", requests: int = 50, forward: bool = True) -> Tally:
    """`requests` concurrent orders to A (every tenth without X-Request-ID); each line says
    which item it is about (passed explicitly), so we can check the id it carries."""
    b = Service("B", mode)
    async with serving(b) as b_port:
        a = Service("A", mode, downstream=b_port, forward=forward)
        async with serving(a) as a_port:

            async def order(item: int) -> tuple[int, str]:
                headers = {HEADER: f"req-{item:03d}"} if item % 10 else {}
                status, fields, _ = await get(a_port, f"/orders/{item}", headers)
                assert status == 200, (status, fields)
                return item, fields[HEADER.lower()]  # A's id for it, even when it made one

            ids = dict(await asyncio.gather(*(order(i) for i in range(requests))))
    lines = [json.loads(line) for line in a.lines() + b.lines()]
    return tally(lines, ids)


# --8<-- [end:run]


def tally(lines: list[dict], ids: dict[int, str]) -> Tally:
    everyone = set(ids.values())
    verdicts = Counter()
    wrong_items = set()
    for line in lines:
        mine = ids[line["item"]]
        got = line.get("request_id")
        verdict = "right" if got == mine else "other_request" if got in everyone else "other"
        verdicts[verdict] += 1
        if verdict != "right":
            wrong_items.add(line["item"])
    per_request = Counter(line["item"] for line in lines)
    assert set(per_request.values()) == {7}, per_request  # 5 lines in A, 2 in B
    sample = [line for line in lines if line["item"] == 7]
    return Tally(len(lines), verdicts["right"], verdicts["other_request"], verdicts["other"],
                 len(ids) - len(wrong_items), sample, lines)  # fmt: skip


LABELS = {"contextvars": "contextvars", "global": "a global (one per service)",
          "threading.local": "threading.local"}  # fmt: skip


def main() -> None:
    rows = [(mode, True) for mode in MODES] + [("contextvars", False)]
    results = {(m, f): asyncio.run(run(m, forward=f)) for m, f in rows}
    first = results[("contextvars", True)]
    print(f"50 concurrent requests to A (5 without {HEADER}); A calls B for each")
    print(f"{first.lines} JSON lines per run, each parsed with json.loads\n")
    print(f"{'request id kept in':<34}{'right id':>9}{'another':>9}{'none or':>9}{'requests':>10}")
    print(f"{'':<34}{'':>9}{'request':>9}{'unknown':>9}{'all right':>10}")
    for (mode, forward), t in results.items():
        name = LABELS[mode] if forward else f"{mode}, id not sent to B"
        vary = "" if mode == "contextvars" else "~"  # the naive modes' counts vary by run
        print(f"{name:<34}{f'{vary}{t.right}':>9}{f'{vary}{t.other_request}':>9}"
              f"{t.other:>9}{f'{vary}{t.requests_all_right}':>10}")  # fmt: skip
    print("\nrequest req-007's lines with contextvars: A, its two child tasks, then B")
    print(
        "(each timestamp matched YYYY-MM-DDTHH:MM:SS.ffffffZ; shown as that: it changes every run)"
    )
    for line in first.sample:
        stamp = line["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        print(json.dumps(line | {"timestamp": "YYYY-MM-DDTHH:MM:SS.ffffffZ"}))


if __name__ == "__main__":
    main()
