"""An HTTP cache that honours Cache-Control (max-age, no-cache, no-store) and
stale-while-revalidate, shown on a clock we move by hand.

Run: python snippets/servers/cache_headers.py
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

# path -> (Cache-Control the origin sends, current body); the ETag is the body's version
ORIGIN = {
    "/news": ("max-age=60, stale-while-revalidate=30", "news v1"),
    "/price": ("no-cache", "price v1"),  # may be stored, but revalidate before every use
    "/account": ("no-store", "your balance"),  # never stored at all
}


class OriginHandler(http.server.BaseHTTPRequestHandler):
    hits: Counter[str]  # (path, status) -> count, set by origin_server()

    def do_GET(self) -> None:
        cache_control, body = ORIGIN[self.path]
        etag = f'"{zlib.crc32(body.encode()):08x}"'
        if self.headers.get("If-None-Match") == etag:
            self.hits[f"{self.path} 304"] += 1
            self.send_response(304)  # "what you have is still current": no body
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", cache_control)
            self.end_headers()
            return
        self.hits[f"{self.path} 200"] += 1
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", cache_control)
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def origin_server() -> Iterator[tuple[tuple[str, int], Counter[str]]]:
    hits: Counter[str] = Counter()
    handler = type("Handler", (OriginHandler,), {"hits": hits})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield server.server_address[:2], hits
        finally:
            server.shutdown()


# --8<-- [start:directives]
# name, then optionally "=" and a token or a quoted string (which may hold commas:
# private="Set-Cookie, Authorization"), RFC 9111 §5.2 and RFC 9110 §5.6.4
DIRECTIVE = re.compile(r'\s*([^=,\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,]*?))?\s*(?:,|$)')


def directives(cache_control: str) -> dict[str, int | None]:
    """Parse Cache-Control (RFC 9111 §5.2). A malformed delta-seconds counts as 0, i.e.
    already stale (§4.2.1 encourages caches to consider invalid freshness information
    stale), and a repeated directive keeps its first value (§4.2.1: use the first
    occurrence, or consider the response stale)."""
    parsed: dict[str, int | None] = {}
    for match in DIRECTIVE.finditer(cache_control):
        name, value = match.group(1).lower(), match.group(2)
        if name not in parsed:
            value = value.strip('"') if value else value  # max-age="60" is tolerated (§5.2)
            parsed[name] = (int(value) if value.isdigit() else 0) if value else None
    return parsed


# --8<-- [end:directives]


# --8<-- [start:client]
@dataclass
class Entry:
    body: bytes
    etag: str | None
    stored_at: float
    rules: dict[str, int | None]


class CachingClient:
    """A private HTTP cache in front of an origin. `clock` is injectable: no sleeps."""

    def __init__(self, origin: tuple[str, int], clock: Callable[[], float]) -> None:
        self.origin, self.clock = origin, clock
        self.store: dict[str, Entry] = {}
        self.background = ThreadPoolExecutor(max_workers=1)
        self.pending: list[Future[object]] = []
        self.revalidating: dict[str, Future[object]] = {}  # path -> its one background fetch

    def get(self, path: str) -> tuple[str, bytes]:
        """(what the cache did, body)."""
        entry = self.store.get(path)
        if entry is None:
            status, body = self.fetch(path, None)
            return f"miss: origin sent {status}", body
        age = self.clock() - entry.stored_at
        max_age = entry.rules.get("max-age") or 0
        swr = entry.rules.get("stale-while-revalidate") or 0
        if "no-cache" not in entry.rules and age < max_age:
            return f"fresh hit (age {age:.0f} s)", entry.body  # no request at all
        if "no-cache" not in entry.rules and age < max_age + swr:
            # RFC 5861 §3: serve the stale copy now, revalidate in the background — once:
            # stale hits that arrive while a revalidation is in flight do not start another.
            running = self.revalidating.get(path)
            if running is None or running.done():
                self.revalidating[path] = self.background.submit(self.fetch, path, entry)
                self.pending.append(self.revalidating[path])
                return f"stale (age {age:.0f} s): served, revalidating", entry.body
            return f"stale (age {age:.0f} s): served, already revalidating", entry.body
        status, body = self.fetch(path, entry)  # too stale: the client waits for the origin
        return f"revalidated: origin sent {status}", body

    def fetch(self, path: str, entry: Entry | None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self.origin, timeout=5)
        try:
            conn.request(
                "GET", path, headers={"If-None-Match": entry.etag} if entry and entry.etag else {}
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        rules = directives(response.getheader("Cache-Control", ""))
        if response.status == 304 and entry is not None:
            body = entry.body  # still current: keep our copy, restart its clock
        if "no-store" not in rules and response.status in (200, 304):
            self.store[path] = Entry(body, response.getheader("ETag"), self.clock(), rules)
        return response.status, body

    def settle(self) -> None:
        """Wait for background revalidations (so a demo or test sees their effect)."""
        for future in self.pending:
            future.result(timeout=5)
        self.pending.clear()


# --8<-- [end:client]


def main() -> None:
    now = 0.0
    with origin_server() as (address, hits):
        client = CachingClient(address, clock=lambda: now)
        timeline: list[tuple[float, str]] = [
            (0, "/news"),
            (30, "/news"),
            (75, "/news"),
            (80, "/news"),
            (200, "/news"),
            (210, "change"),
            (300, "/news"),
            (301, "/price"),
            (302, "/price"),
            (303, "/account"),
            (304, "/account"),
        ]
        for t, path in timeline:
            now = t
            if path == "change":
                ORIGIN["/news"] = (ORIGIN["/news"][0], "news v2")
                print(f"t={t:>3} s  the origin publishes news v2")
                continue
            before = sum(hits.values())
            outcome, body = client.get(path)
            client.settle()
            contacted = sum(hits.values()) - before
            print(
                f"t={t:>3} s  GET {path:9} {outcome:40} {body.decode():13}"
                f" origin requests: {contacted}"
            )
        print("origin answered:", ", ".join(f"{k}: {v}" for k, v in sorted(hits.items())))
        client.background.shutdown()


if __name__ == "__main__":
    main()
