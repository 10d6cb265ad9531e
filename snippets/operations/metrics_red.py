"""RED metrics from two instances of one HTTP service, scraped by a real Prometheus and queried
through its HTTP API: summing the histograms' buckets across instances gives the fleet's p99,
averaging the instances' p99s does not.

Run: python snippets/operations/metrics_red.py
Needs: PROMETHEUS_URL, PROMETHEUS_TARGETS
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import random
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

# Bucket bounds in seconds, fine where this service's p99 falls: histogram_quantile can only
# say which bucket a quantile is in and interpolates inside it.
BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.175, 0.2, 0.3, 0.5, 1.0)


# --8<-- [start:metrics]
@dataclass
class Metrics:
    """The RED metrics of one instance: Rate and Errors from one counter, Duration from a
    histogram. Names follow Prometheus's conventions: a unit suffix in base units
    (`_seconds`), `_total` on a counter (the client adds it), a route *template* as label."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "http_requests", "HTTP requests answered, by route and status code.",
            ["route", "code"], registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by route.",
            ["route"], buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip

    def observe(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.duration.labels(route).observe(seconds)


# --8<-- [end:metrics]


# --8<-- [start:service]
@dataclass
class Behaviour:
    """How long an instance's requests take, and how many fail: a seeded log-normal model
    (see the page), so the durations are known exactly and the run repeats."""

    median: float  # seconds
    sigma: float
    error_rate: float
    rng: random.Random
    lock: threading.Lock = field(default_factory=threading.Lock)
    recorded: list[float] = field(default_factory=list)  # every duration, for the exact p99
    failed: int = 0

    def next(self) -> tuple[int, float]:
        with self.lock:
            seconds = self.median * math.exp(self.sigma * self.rng.gauss(0, 1))
            code = 500 if self.rng.random() < self.error_rate else 200
            self.recorded.append(seconds)
            self.failed += code == 500
        return code, seconds


def handler(metrics: Metrics, behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        timeout = 5  # a client that stops sending is dropped after 5 s, not waited for
        disable_nagle_algorithm = True  # headers and body are two writes (chapter 1's Nagle)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/metrics":
                return self.answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            if urllib.parse.urlsplit(self.path).path != "/work":
                metrics.observe("other", 404, 0.0)  # one label value for every unknown path
                return self.answer(404, b"not found\n")
            code, seconds = behaviour.next()  # modelled: no sleep (see the page)
            metrics.observe("/work", code, seconds)
            self.answer(code, b"ok\n" if code == 200 else b"failed\n")

        def answer(self, code: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the metrics are the record

    return Handler


# --8<-- [end:service]


@dataclass
class Instance:
    name: str
    metrics: Metrics
    behaviour: Behaviour
    server: ThreadingHTTPServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@contextlib.contextmanager
def instance(name: str, behaviour: Behaviour) -> Iterator[Instance]:
    metrics = Metrics()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(metrics, behaviour))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Instance(name, metrics, behaviour, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def scraped(targets_dir: Path, job: str, instances: list[Instance]) -> Iterator[None]:
    """Ask Prometheus to scrape the instances: a file_sd target file with our job name."""
    groups = [{"targets": [i.address], "labels": {"job": job, "name": i.name}} for i in instances]
    path = targets_dir / f"{job}.json"
    tmp = path.with_suffix(".tmp")  # written whole, then renamed: never read half-written
    tmp.write_text(json.dumps(groups), encoding="utf-8")
    tmp.rename(path)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


# --8<-- [start:query]
def query(prometheus: str, promql: str) -> list[dict]:
    """An instant query through Prometheus's HTTP API (GET /api/v1/query)."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    if body["status"] != "success":
        raise RuntimeError(f"{promql}: {body}")
    return body["data"]["result"]


def scalar(prometheus: str, promql: str) -> float:
    result = query(prometheus, promql)
    return float(result[0]["value"][1]) if result else math.nan


def wait_until_scraped(prometheus: str, job: str, requests: int, timeout: float = 15) -> None:
    """Poll until Prometheus's newest sample counts every request we sent (it scrapes every
    second): a readiness signal, not a sleep of a guessed length."""
    promql = f'sum(http_requests_total{{job="{job}",route="/work"}})'
    deadline = time.monotonic() + timeout
    while scalar(prometheus, promql) != requests:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Prometheus did not see {requests} requests in {timeout} s")
        time.sleep(0.1)  # between polls of a condition, not instead of one


# --8<-- [end:query]


def send(address: str, count: int, path: str = "/work") -> int:
    """Send `count` GETs on one keep-alive connection; returns how many got an answer."""
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    answered = 0
    try:
        for _ in range(count):
            connection.request("GET", path)
            connection.getresponse().read()
            answered += 1
    finally:
        connection.close()
    return answered


def load(target: Instance, requests: int, connections: int = 4) -> None:
    share = [requests // connections + (i < requests % connections) for i in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        assert sum(pool.map(send, [target.address] * connections, share)) == requests


def exact_quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile of every recorded value: the p99 a user population saw."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def bucket_of(seconds: float) -> str:
    low = 0.0
    for high in (*BUCKETS, math.inf):
        if seconds <= high:
            return f"{low:g}-{high:g} s"
        low = high
    raise AssertionError("unreachable")


# --8<-- [start:promql]
BUCKET = 'http_request_duration_seconds_bucket{{job="{job}"}}'
FLEET_P99 = f"histogram_quantile(0.99, sum by (le) ({BUCKET}))"  # buckets summed, then p99
EACH_P99 = f"histogram_quantile(0.99, sum by (name, le) ({BUCKET}))"  # one p99 per instance
AVERAGE_OF_P99S = f"avg({EACH_P99})"  # the mistake
ERROR_RATIO = (
    'sum(http_requests_total{{job="{job}",code=~"5.."}}) / sum(http_requests_total{{job="{job}"}})'
)
# --8<-- [end:promql]


@dataclass(frozen=True)
class Result:
    requests: dict[str, int]
    errors: dict[str, int]
    error_ratio: float  # from Prometheus
    exact_p99: float  # from every recorded duration
    fleet_p99: float  # histogram_quantile over the summed buckets (Prometheus)
    each_p99: dict[str, float]  # histogram_quantile per instance (Prometheus)
    average_of_p99s: float  # avg of those (Prometheus)


FAST = dict(median=0.010, sigma=0.5, error_rate=0.0)
SLOW = dict(median=0.050, sigma=0.6, error_rate=0.02)


def run(prometheus: str, targets: Path, shares: dict[str, int], seed: int = 7) -> Result:
    job = f"metrics-red-{secrets.token_hex(4)}"  # ours alone on a shared Prometheus
    shapes = {"a": FAST, "b": SLOW}
    with contextlib.ExitStack() as stack:
        instances = [
            stack.enter_context(instance(n, Behaviour(**shapes[n], rng=random.Random(seed + i))))
            for i, n in enumerate(shares)
        ]
        # Registered first: Prometheus applies new targets at most every 5 s (its discovery
        # manager's throttle), and the load runs meanwhile.
        with scraped(targets, job, instances):
            for target in instances:
                load(target, shares[target.name])
            wait_until_scraped(prometheus, job, sum(shares.values()))
            each = query(prometheus, EACH_P99.format(job=job))
            recorded = [s for i in instances for s in i.behaviour.recorded]
            errors = {i.name: i.behaviour.failed for i in instances}
            return Result(
                requests=dict(shares),
                errors=errors,
                error_ratio=scalar(prometheus, ERROR_RATIO.format(job=job)),
                exact_p99=exact_quantile(recorded, 0.99),
                fleet_p99=scalar(prometheus, FLEET_P99.format(job=job)),
                each_p99={r["metric"]["name"]: float(r["value"][1]) for r in each},
                average_of_p99s=scalar(prometheus, AVERAGE_OF_P99S.format(job=job)),
            )


def prometheus_from_env() -> tuple[str, Path]:
    url, targets = os.environ.get("PROMETHEUS_URL"), os.environ.get("PROMETHEUS_TARGETS")
    if not url or not targets:
        sys.exit(
            "set PROMETHEUS_URL and PROMETHEUS_TARGETS (a Prometheus scraping a file_sd"
            " directory), or run `make run S=operations/metrics_red`, which starts one"
        )
    return url, Path(targets)


def main() -> None:
    prometheus, targets = prometheus_from_env()
    r = run(prometheus, targets, {"a": 1500, "b": 1000})
    print("Two instances of one service, scraped by Prometheus every second;")
    print("request durations are a seeded model (log-normal), the rest is real.")
    for name in r.requests:
        shape = FAST if name == "a" else SLOW
        print(f"  {name}: {r.requests[name]:,} requests, median {shape['median']:.3f} s,"
              f" {r.errors[name]} answered 500")  # fmt: skip
    print(f"error ratio (PromQL): {100 * r.error_ratio:.2f}% of all requests")
    print("p99 of request duration, in seconds:")
    print(f"  exact, from all {sum(r.requests.values()):,} durations:   {r.exact_p99:.3f}"
          f"  (bucket {bucket_of(r.exact_p99)})")  # fmt: skip
    print(f"  histogram_quantile, buckets summed: {r.fleet_p99:.3f}"
          f"  (bucket {bucket_of(r.fleet_p99)})")  # fmt: skip
    each = ", ".join(f"{n} {v:.3f}" for n, v in sorted(r.each_p99.items()))
    print(f"  each instance's p99:                {each}")
    print(f"  average of the instances' p99s:     {r.average_of_p99s:.3f}"
          f"  ({100 * (1 - r.average_of_p99s / r.exact_p99):.0f}% below the exact)")  # fmt: skip


if __name__ == "__main__":
    main()
