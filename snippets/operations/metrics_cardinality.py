"""Label cardinality counted in a real Prometheus: the same 1,000 requests make a handful of
series when the route label is a template, and thousands when it is the raw path.

Run: python snippets/operations/metrics_cardinality.py
Needs: PROMETHEUS_URL, PROMETHEUS_TARGETS
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

disable_created_metrics()  # no extra `_created` series per label set: count only what we mean

USER = re.compile(r"/users/[0-9]+")


# --8<-- [start:labels]
def raw_path(path: str) -> str:
    """The label a first version uses: every user id is a new label value."""
    return urllib.parse.urlsplit(path).path


def route_template(path: str) -> str:
    """The route the request matched, as the router names it: a bounded set of values."""
    return "/users/{id}" if USER.fullmatch(urllib.parse.urlsplit(path).path) else "other"


# --8<-- [end:labels]


def handler(registry: CollectorRegistry, label: Callable[[str], str]) -> type:
    requests = Counter("http_requests", "Requests.", ["route", "code"], registry=registry)
    duration = Histogram(
        "http_request_duration_seconds", "Time to answer.", ["route"], registry=registry
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/metrics":
                return self.answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            start = time.perf_counter()
            code = 200 if USER.fullmatch(raw_path(self.path)) else 404
            self.answer(code, b"{}\n" if code == 200 else b"not found\n")
            requests.labels(label(self.path), str(code)).inc()
            duration.labels(label(self.path)).observe(time.perf_counter() - start)

        def answer(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def service(label: Callable[[str], str]) -> Iterator[tuple[str, CollectorRegistry]]:
    registry = CollectorRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(registry, label))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def query(prometheus: str, promql: str) -> dict[str, float]:
    """An instant query (GET /api/v1/query): each series' `label` label -> its value."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return {r["metric"].get("label", ""): float(r["value"][1]) for r in result}


def send(address: str, paths: list[str]) -> None:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for path in paths:
            connection.request("GET", path)
            connection.getresponse().read()
    finally:
        connection.close()


# --8<-- [start:count]
SERIES = 'count by (label) ({{job="{job}", __name__=~"http_.*"}})'  # every series of ours
REQUESTS = 'sum by (label) (http_requests_total{{job="{job}"}})'


@dataclass(frozen=True)
class Count:
    label: str
    series: int  # in Prometheus, after the scrape
    exposition_bytes: int  # the size of one /metrics answer


def count_series(
    prometheus: str, targets: Path, labels: list[Callable[[str], str]], paths: list[str]
) -> list[Count]:
    """One service per way of labelling, the same requests to each, scraped together."""
    job = f"metrics-cardinality-{secrets.token_hex(4)}"
    with contextlib.ExitStack() as stack:
        running = {f.__name__: stack.enter_context(service(f)) for f in labels}
        groups = [
            {"targets": [a], "labels": {"job": job, "label": n}} for n, (a, _) in running.items()
        ]
        file = targets / f"{job}.json"
        file.with_suffix(".tmp").write_text(json.dumps(groups), encoding="utf-8")
        file.with_suffix(".tmp").rename(file)  # whole, never half-written
        try:
            for address, _ in running.values():
                send(address, paths)
            deadline = time.monotonic() + 15
            while query(prometheus, REQUESTS.format(job=job)) != {n: len(paths) for n in running}:
                if time.monotonic() > deadline:  # not all scraped after the last request yet
                    raise TimeoutError("Prometheus did not scrape the services in 15 s")
                time.sleep(0.1)  # between polls of a condition
            series = query(prometheus, SERIES.format(job=job))
        finally:
            file.unlink(missing_ok=True)
        return [Count(n, int(series[n]), len(generate_latest(r))) for n, (_, r) in running.items()]


# --8<-- [end:count]


def user_paths(requests: int, users: int, seed: int = 1) -> list[str]:
    """Requests from a seeded population: `users` ids, a few paths that are not routes."""
    rng = random.Random(seed)
    paths = [f"/users/{rng.randrange(users)}" for _ in range(requests)]
    for i in range(0, requests, 100):
        paths[i] = f"/wp-login.php?probe={i}"  # scanners: 404s (one raw path: no query)
    return paths


def prometheus_from_env() -> tuple[str, Path]:
    url, targets = os.environ.get("PROMETHEUS_URL"), os.environ.get("PROMETHEUS_TARGETS")
    if not url or not targets:
        sys.exit(
            "set PROMETHEUS_URL and PROMETHEUS_TARGETS (a Prometheus scraping a file_sd"
            " directory), or run `make run S=operations/metrics_cardinality`, which starts one"
        )
    return url, Path(targets)


def main() -> None:
    prometheus, targets = prometheus_from_env()
    paths = user_paths(1000, users=100_000)
    print(f"{len(paths):,} requests, {len({raw_path(p) for p in paths}):,} distinct paths;"
          " two services, each scraped by Prometheus")  # fmt: skip
    for c in count_series(prometheus, targets, [route_template, raw_path], paths):
        print(
            f"  route label = {c.label + ':':16} {c.series:>6,} series in Prometheus,"
            f" /metrics {c.exposition_bytes / 1024:7.1f} KiB"
        )  # the sums vary: 1 decimal


if __name__ == "__main__":
    main()
