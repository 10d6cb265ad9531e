"""An API gateway: one entry point that routes by path to two services, checks an API key
(401), rate-limits each key with a token bucket (429 + Retry-After) and aggregates two
backend calls concurrently.

Run: python snippets/servers/gateway_api.py
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import unquote

import httpx

Response = tuple[int, dict[str, str], bytes]
App = Callable[[str, str, dict[str, str]], Awaitable[Response]]
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}
BACKEND_SECONDS = 0.05  # each backend takes 50 ms to answer
USER_ID = re.compile(r"[A-Za-z0-9_-]+")  # what may go into the backend URLs we build
# an encoded "/", "\\" or "%"; an encoded NUL; a lead byte of overlong UTF-8 (%c0%ae is ".")
ENCODED_SEPARATORS = re.compile(r"%(2f|5c|25|00|c0|c1)", re.IGNORECASE)


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or not parts[2].startswith("HTTP/1."):
        raise HttpError(400)
    headers = {}
    for line in filter(None, lines[1:]):
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(400)
        headers[name.lower()] = value.strip()
    return parts[0], parts[1], headers


async def start_http(app: App, read_timeout: float = 5.0) -> tuple[asyncio.Server, str]:
    """Serve `app` on 127.0.0.1:<ephemeral>; one request per connection; (server, base URL)."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)
            status, fields, body = await app(*parse_head(head[:-4]))
        except HttpError as error:
            status, fields, body = error.status, {}, b""
        except asyncio.LimitOverrunError:
            status, fields, body = 431, {}, b""
        except TimeoutError:
            status, fields, body = 408, {}, b""
        except asyncio.IncompleteReadError:
            writer.close()
            return
        lines = [
            f"HTTP/1.1 {status} {REASONS[status]}",
            f"Date: {formatdate(usegmt=True)}",  # RFC 9110 §6.6.1: MUST, we have a clock
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in fields.items()),
        ]
        writer.write("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        try:
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0, limit=8192)
    host, port = server.sockets[0].getsockname()[:2]
    return server, f"http://{host}:{port}"


def json_response(status: int, data: object, **fields: str) -> Response:
    return status, {"Content-Type": "application/json", **fields}, json.dumps(data).encode()


# --8<-- [start:services]
async def users_service(method: str, target: str, headers: dict[str, str]) -> Response:
    await asyncio.sleep(BACKEND_SECONDS if target != "/users/slow" else 10)  # a database call
    return json_response(200, {"id": target.rsplit("/", 1)[-1], "name": "Ada"})


async def orders_service(method: str, target: str, headers: dict[str, str]) -> Response:
    await asyncio.sleep(BACKEND_SECONDS)
    return json_response(200, {"user": target.rsplit("=", 1)[-1], "orders": [17, 42]})


# --8<-- [end:services]


# --8<-- [start:bucket]
@dataclass
class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; each request takes one."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.updated = float(self.burst), self.clock()

    def take(self) -> float:
        """0 if the request may pass, else the seconds until a token will be there."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


# --8<-- [end:bucket]


# --8<-- [start:paths]
def is_safe_path(path: str) -> bool:
    """False for a path a backend could resolve outside the route it matched: a dot-segment
    (`/api/users/../internal` is `/internal` to RFC 3986 §5.2.4), also percent-encoded
    (`%2e%2e`) or with a parameter (`..;/`, which Tomcat and Spring treat as `..`), an
    encoded slash or backslash, which some servers decode and split on, an encoded `%`
    (decoded twice, `%252e` becomes `.`), overlong UTF-8 (`%c0%ae` is `.` to a lax
    decoder), a NUL (raw or `%00`, which C code reads as the end) and a raw backslash."""
    if ENCODED_SEPARATORS.search(path) or "\\" in path or "\0" in path:
        return False
    segments = unquote(path).split("/")  # %2e is ".": RFC 3986 §2.3 (unreserved)
    return not any(segment.split(";", 1)[0] in (".", "..") for segment in segments)


# --8<-- [end:paths]


# --8<-- [start:gateway]
@dataclass
class Gateway:
    routes: dict[str, str]  # path prefix -> backend base URL
    keys: set[str]
    rate: float = 0.2  # tokens per second per key
    burst: int = 5
    timeout: float = 2.0  # seconds for a whole backend call: a deadline
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    client: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)

    async def __call__(self, method: str, target: str, headers: dict[str, str]) -> Response:
        key = headers.get("x-api-key", "")
        if key not in self.keys:  # authentication first: no key, no service
            return json_response(
                401,
                {"error": "missing or unknown API key"},
                **{"WWW-Authenticate": 'ApiKey realm="gateway"'},
            )
        bucket = self.buckets.setdefault(key, TokenBucket(self.rate, self.burst, self.clock))
        if (wait := bucket.take()) > 0:  # RFC 6585 §4: 429, and when to come back
            return json_response(
                429, {"error": "rate limited"}, **{"Retry-After": str(math.ceil(wait))}
            )
        if not is_safe_path(target.partition("?")[0]):  # before routing: no ../ escapes
            return json_response(400, {"error": "invalid path"})
        if target.startswith("/api/profile/"):
            user = target.removeprefix("/api/profile/")
            if not USER_ID.fullmatch(user):  # never paste client text into a URL unchecked
                return json_response(400, {"error": "invalid user id"})
            return await self.profile(user)
        for prefix, base in self.routes.items():
            # whole path segments: /api/users and /api/users/7, never /api/usersfoo
            if target == prefix or (target.startswith(prefix) and target[len(prefix)] in "/?"):
                status, data = await self.call(base + target.removeprefix("/api"))
                return json_response(status, data)
        return json_response(404, {"error": "no such route"})

    async def call(self, url: str) -> tuple[int, object]:
        """One backend request; its failures become the gateway's 502 / 504, and a URL that
        httpx refuses to send (the client's path made it invalid) a 400."""
        try:
            # httpx's timeout bounds each operation (connect, each read), so a backend that
            # sends a byte every 0.1 s never trips it: the deadline bounds the whole call.
            async with asyncio.timeout(self.timeout):
                reply = await self.client.get(url, timeout=self.timeout)
                return reply.status_code, reply.json()
        except httpx.InvalidURL:  # e.g. control characters in the client's path
            return 400, {"error": "invalid request target"}
        except (TimeoutError, httpx.TimeoutException):
            return 504, {"error": "backend timed out"}
        except httpx.TransportError:
            return 502, {"error": "backend unreachable"}

    async def profile(self, user: str, concurrent: bool = True) -> Response:
        """Aggregation: one client request, two backend calls, one combined answer."""
        users, orders = self.routes["/api/users"], self.routes["/api/orders"]
        if concurrent:  # both in flight at once: the time of the slower one
            (s1, user_data), (s2, order_data) = await asyncio.gather(
                self.call(f"{users}/users/{user}"), self.call(f"{orders}/orders?user={user}")
            )
        else:  # one after the other: the sum of both
            s1, user_data = await self.call(f"{users}/users/{user}")
            s2, order_data = await self.call(f"{orders}/orders?user={user}")
        if s1 != 200 or s2 != 200:
            return json_response(max(s1, s2), {"error": "a backend failed"})
        return json_response(200, {"user": user_data, "orders": order_data})


# --8<-- [end:gateway]


async def start_all(**gateway_options: object) -> tuple[list[asyncio.Server], str, Gateway]:
    """Two services and a gateway in front of them; (servers, gateway URL, gateway)."""
    users, users_url = await start_http(users_service)
    orders, orders_url = await start_http(orders_service)
    gateway = Gateway(
        {"/api/users": users_url, "/api/orders": orders_url}, {"key-1", "key-2"}, **gateway_options
    )  # type: ignore[arg-type]
    server, url = await start_http(gateway)
    return [users, orders, server], url, gateway


async def stop_all(servers: list[asyncio.Server], gateway: Gateway) -> None:
    await gateway.client.aclose()
    for server in servers:
        server.close()
        await server.wait_closed()


async def aggregation_seconds(gateway: Gateway, concurrent: bool, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        status, _, _ = await gateway.profile("1", concurrent=concurrent)
        assert status == 200
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def demo() -> None:
    servers, url, gateway = await start_all()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            key = {"X-API-Key": "key-1"}
            for path, headers in [
                ("/api/users/1", {}),
                ("/api/users/1", key),
                ("/api/orders?user=1", key),
                ("/api/nope", key),
            ]:
                r = await client.get(path, headers=headers)
                print(
                    f"GET {path:20} key={'yes' if headers else 'no ':3} -> {r.status_code} {r.text}"
                )
            burst = await asyncio.gather(
                *(client.get("/api/users/1", headers={"X-API-Key": "key-2"}) for _ in range(12))
            )
            codes = [r.status_code for r in burst]
            retry = {r.headers.get("Retry-After") for r in burst if r.status_code == 429}
            print(
                f"12 requests at once with key-2: {codes.count(200)} x 200,"
                f" {codes.count(429)} x 429 (Retry-After: {', '.join(sorted(retry))} s)"
            )
        sequential = await aggregation_seconds(gateway, concurrent=False)
        concurrent = await aggregation_seconds(gateway, concurrent=True)
        print(f"GET /api/profile/1 = users + orders, each backend {BACKEND_SECONDS * 1e3:.0f} ms:")
        print(f"  one after the other: {sequential * 1e3:.1f} ms (the sum)")
        print(
            f"  concurrently:        {concurrent * 1e3:.1f} ms (the max),"
            f" {sequential / concurrent:.1f}x faster"
        )
    finally:
        await stop_all(servers, gateway)


if __name__ == "__main__":
    asyncio.run(demo())
