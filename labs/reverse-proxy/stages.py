"""The reverse-proxy lab, stage by stage (docs/proxies/lab-reverse-proxy.md).

Black-box tests over real sockets: each test starts backends of its own (small HTTP/1.1
servers in threads that record every request and connection), starts the learner's file as
`python <file> --port 0 --backend 127.0.0.1:<p1> [--backend …]`, waits for
`listening on 127.0.0.1:<port>`, and talks HTTP/1.1 to it.

Run: make lab LAB=reverse-proxy FILE=path/to/your_proxy.py
"""

from __future__ import annotations

import contextlib
import http.client
import re
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

PAGE = "docs/proxies/lab-reverse-proxy.md"
STAGES = {
    1: "forward one request and its response faithfully",
    2: "a keep-alive upstream pool",
    3: "round robin over N backends",
    4: "a backend killed: passive detection, failover, idempotent requests retried",
    5: "active health checks take a backend out and bring it back",
    6: "bad input and failures: 400, 431, 408, 502, 504, no retried POST, hop-by-hop, Via",
}
READY = r"listening on 127\.0\.0\.1:(\d+)"
TIMEOUT = 3.0  # the client's limit for any answer; the proxy's own limits are 1 s
HOP = ("connection", "keep-alive", "proxy-authorization", "x-secret", "x-internal")


# --- backends the stages control ----------------------------------------------------------


@dataclass
class Seen:
    connection: int  # which of the backend's connections it came on (1, 2, …)
    method: str
    target: str
    headers: list[tuple[str, str]]  # (lower-cased name, value), in order
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None


@dataclass
class Backend:
    """An HTTP/1.1 keep-alive server. GET/POST anything: 200 with `X-Backend: <name>` and a
    body naming it (POST: the body echoed). /status/<n>: that status. /slow: never answers.
    /garbage: an answer that is not HTTP. /hop: hop-by-hop headers in the response.
    /drop: the request is recorded, then the connection closed without a response byte.
    GET /health is the health check: counted in `checks`, never in `requests`, and a
    connection counts in `connections` only once it carries a request that is not one.

    `mode` breaks it (stages 4 and 5): "ok"; "unhealthy" (/health answers 503, requests are
    served); "crash" (every request is recorded, then its connection closed without a
    response; /health still answers 200); "dead" (the same for /health too). kill() closes
    its listener (connections refused) and every open connection; revive() listens again
    on the same port."""

    name: str
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    checks: list[int] = field(default_factory=list)  # the status each health check got
    mode: str = "ok"

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.open: set[socket.socket] = set()
        self.listen(0)

    def listen(self, port: int) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, args=(self.listener,), daemon=True).start()

    def accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.open.add(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def break_connections(self) -> None:
        """Close every open connection, as the kernel does when a process dies."""
        with self.lock:
            conns, self.open = list(self.open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "dead":
            self.break_connections()

    def kill(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() (Linux): new connects refused
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.break_connections()

    def revive(self) -> None:
        self.mode = "ok"
        self.listen(self.port)

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buffer, number = b"", 0
        with conn:
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    start, *lines = head.decode("latin-1").split("\r\n")
                    method, target, _ = start.split(" ", 2)
                    headers = [
                        (k.strip().lower(), v.strip())
                        for k, _, v in (line.partition(":") for line in lines)
                    ]
                    length = int(dict(headers).get("content-length", "0"))
                    while len(buffer) < length:
                        buffer += conn.recv(65536)
                    body, buffer = buffer[:length], buffer[length:]
                    if target == "/health":
                        if self.mode == "dead":
                            return
                        status = 503 if self.mode == "unhealthy" else 200
                        with self.lock:
                            self.checks.append(status)
                        conn.sendall(b"HTTP/1.1 %d Health\r\nContent-Length: 0\r\n\r\n" % status)
                        continue
                    with self.lock:
                        if not number:
                            self.connections += 1
                            number = self.connections
                        self.requests.append(Seen(number, method, target, headers, body))
                    if self.mode in ("crash", "dead"):
                        return  # recorded; closing is the whole answer
                    conn.sendall(self.answer(method, target, body))
            except (OSError, ValueError):
                return
            finally:
                with self.lock:
                    self.open.discard(conn)

    def answer(self, method: str, target: str, body: bytes) -> bytes:
        status, extra = 200, ""
        out = body if method == "POST" else f"{self.name} {method} {target}\n".encode()
        if target.startswith("/status/"):
            status = int(target.removeprefix("/status/"))
            out = f"{self.name} says {status}\n".encode()
        elif target == "/slow":
            self.stop.wait(5)  # longer than any proxy should wait
            raise OSError("gave up")
        elif target == "/drop":
            raise OSError("dropped")  # recorded already; closing is the whole answer
        elif target == "/garbage":
            return b"NOT HTTP AT ALL\r\n\r\n"
        elif target == "/hop":
            extra = "Connection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\n"
        return (
            f"HTTP/1.1 {status} Whatever\r\nX-Backend: {self.name}\r\n{extra}"
            f"Content-Length: {len(out)}\r\n\r\n"
        ).encode() + out

    def close(self) -> None:
        self.stop.set()
        self.kill()


@pytest.fixture
def backends(request):
    started: list[Backend] = []

    def start(n: int) -> list[Backend]:
        new = [Backend(f"b{i}") for i in range(1, n + 1)]
        started.extend(new)
        return new

    yield start
    for backend in started:
        backend.close()


@pytest.fixture
def proxy(spawn, backends):
    """proxy(n): start n backends and the learner's proxy in front of them."""

    def start(n: int = 1) -> tuple[tuple[str, int], list[Backend]]:
        started = backends(n)
        args = [a for b in started for a in ("--backend", f"127.0.0.1:{b.port}")]
        program = spawn("--port", "0", *args)
        port = int(program.wait_for(READY)[1])
        return ("127.0.0.1", port), started

    return start


def call(
    address: tuple[str, int],
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> http.client.HTTPResponse:
    """One request through the proxy; any failure becomes an AssertionError saying what."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(*address, timeout=TIMEOUT)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        response.data = response.read()  # type: ignore[attr-defined]
        return response
    except (OSError, http.client.HTTPException) as error:
        raise AssertionError(
            f"{method} {target} through your proxy: no valid response "
            f"({error.__class__.__name__}: {error})"
        ) from None
    finally:
        if own:
            conn.close()


def raw(address: tuple[str, int], data: bytes) -> tuple[bytes, float]:
    """Send bytes, read until the proxy closes (or TIMEOUT): (what came back, seconds)."""
    start = time.monotonic()
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except TimeoutError:
            raise AssertionError(
                f"sent {data[:60]!r}…; your proxy neither answered nor closed within "
                f"{TIMEOUT} s. Received: {got[:200]!r}"
            ) from None
        except ConnectionResetError:
            pass
    return got, time.monotonic() - start


def status_of(got: bytes) -> int | None:
    parts = got.split(b" ", 2)
    return int(parts[1]) if got.startswith(b"HTTP/1.") and parts[1].isdigit() else None


# --- stage 1 --------------------------------------------------------------------------------


@pytest.mark.stage(1)
def test_a_get_reaches_the_backend_and_its_answer_comes_back(proxy):
    """GET with a query and a custom header: the backend sees them, the client gets its answer."""
    address, (b1,) = proxy(1)
    response = call(address, "GET", "/hello?x=1", {"X-Test": "abc"})
    assert response.status == 200, f"GET /hello?x=1: expected 200, got {response.status}"
    assert response.data == b"b1 GET /hello?x=1\n", f"the body came back as {response.data!r}"
    assert response.getheader("X-Backend") == "b1", "the backend's X-Backend header was lost"
    assert b1.requests, "the backend received no request"
    seen = b1.requests[-1]
    assert (seen.method, seen.target) == ("GET", "/hello?x=1"), (
        f"the backend received {seen.method} {seen.target}, not GET /hello?x=1"
    )
    assert seen.header("x-test") == "abc", f"X-Test: abc arrived as {seen.header('x-test')!r}"


@pytest.mark.stage(1)
def test_a_post_body_arrives_whole(proxy, rng):
    """POST with a random body of 1-200 KB: the backend receives every byte, in order."""
    address, (b1,) = proxy(1)
    body = rng.randbytes(rng.randint(1_000, 200_000))
    response = call(address, "POST", "/upload", body=body)
    assert b1.requests and b1.requests[-1].body == body, (
        f"the backend received {len(b1.requests[-1].body) if b1.requests else 0} of "
        f"{len(body)} body bytes, or different bytes"
    )
    assert response.status == 200 and response.data == body, "the echoed body came back changed"


@pytest.mark.stage(1)
def test_the_backends_status_passes_through(proxy):
    """A 404 or a 503 from the backend reaches the client as it is, with its body."""
    address, _ = proxy(1)
    for status in (404, 503):
        response = call(address, "GET", f"/status/{status}")
        assert response.status == status, f"the backend said {status}; you said {response.status}"
        assert response.data == f"b1 says {status}\n".encode(), response.data


# --- stage 2 --------------------------------------------------------------------------------


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes, bytes]:
    """One response with Content-Length from a raw socket: (head, body, what is left)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"your proxy closed the connection; received {buffer[:80]!r}")
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    found = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    assert found, f"a response without Content-Length: {head[:200]!r}"
    while len(buffer) < int(found[1]):
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("your proxy closed the connection in the middle of a body")
        buffer += chunk
    return head, buffer[: int(found[1])], buffer[int(found[1]) :]


@pytest.mark.stage(2)
def test_requests_on_one_client_connection_are_all_answered(proxy):
    """10 requests on ONE client connection (keep-alive): 10 answers, in order."""
    address, _ = proxy(1)
    # A raw socket, not http.client: http.client quietly opens a new connection when the
    # proxy closes one, so a proxy without client keep-alive would pass.
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        left = b""
        for i in range(10):
            try:
                sock.sendall(f"GET /n/{i} HTTP/1.1\r\nHost: lab\r\n\r\n".encode())
                head, body, left = read_response(sock, left)
            except (OSError, AssertionError) as error:
                raise AssertionError(
                    f"request {i + 1} of 10 on one connection got no answer ({error}); keep "
                    "the client connection open after a response (HTTP/1.1 keep-alive)"
                ) from None
            assert body == f"b1 GET /n/{i}\n".encode(), (i, head, body)


@pytest.mark.stage(2)
def test_the_proxy_reuses_its_upstream_connection(proxy):
    """10 sequential requests from 10 client connections: the backend accepts ONE connection."""
    address, (b1,) = proxy(1)
    for i in range(10):
        call(address, "GET", f"/n/{i}")
    assert len(b1.requests) == 10, f"the backend got {len(b1.requests)} of 10 requests"
    assert b1.connections == 1, (
        f"the backend accepted {b1.connections} connections for 10 sequential requests; "
        "keep the upstream connection open and reuse it (a pool of idle connections)"
    )


# --- stage 3 --------------------------------------------------------------------------------


@pytest.mark.stage(3)
def test_round_robin_spreads_requests_evenly(proxy):
    """30 sequential requests over 3 backends: 10 each, and one connection to each."""
    address, started = proxy(3)
    statuses = Counter(call(address, "GET", f"/n/{i}").status for i in range(30))
    counts = {b.name: len(b.requests) for b in started}
    assert counts == {"b1": 10, "b2": 10, "b3": 10}, (
        f"requests per backend: {counts}; your proxy's answers: {dict(statuses)}"
    )
    conns = {b.name: b.connections for b in started}
    assert conns == {"b1": 1, "b2": 1, "b3": 1}, f"connections per backend: {conns}"


@pytest.mark.stage(3)
def test_round_robin_takes_turns(proxy):
    """6 requests over 2 backends alternate: b1 b2 b1 b2 … (or b2 b1 …)."""
    address, _ = proxy(2)
    order = [call(address, "GET", "/").getheader("X-Backend") for _ in range(6)]
    assert order in (["b1", "b2"] * 3, ["b2", "b1"] * 3), f"backends in order: {order}"


# --- stage 4 --------------------------------------------------------------------------------


def answers(address: tuple[str, int], n: int, method: str = "GET") -> Counter[str]:
    """n sequential requests, each on a new client connection: {"b1": 10, "502": 1, …}, by
    the X-Backend of a 200 or else the status (a request that got no answer: "no answer")."""
    got: Counter[str] = Counter()
    for i in range(n):
        try:
            response = call(address, method, f"/n/{i}", body=b"" if method == "POST" else None)
        except AssertionError:
            got["no answer"] += 1
            continue
        got[
            response.getheader("X-Backend") if response.status == 200 else str(response.status)
        ] += 1
    return got


def shared_by_b1_and_b3(got: Counter[str]) -> bool:
    """All 30 answered 200, by b1 and b3 only, taking turns (each at least 10: round robin
    over the backends that are up)."""
    return set(got) == {"b1", "b3"} and sum(got.values()) == 30 and min(got.values()) >= 10


@pytest.mark.stage(4)
def test_a_killed_backend_costs_no_failed_get(proxy):
    """3 backends, b2 killed (connections refused): 30 GETs all answered 200 by b1 and b3."""
    address, (b1, b2, b3) = proxy(3)
    answers(address, 3)  # every backend has a pooled connection now
    b2.kill()
    got = answers(address, 30)
    assert shared_by_b1_and_b3(got), (
        f"b2 was killed (its connections closed, new ones refused); 30 GETs got {dict(got)}. "
        "A GET is idempotent: when a backend fails, send it to the next one; and stop "
        "choosing a backend that failed"
    )


@pytest.mark.stage(4)
def test_a_failing_backend_is_taken_out_after_its_first_failure(proxy):
    """b2 closes every connection unanswered: tried at most twice, then never in 30 more GETs."""
    address, (b1, b2, b3) = proxy(3)
    answers(address, 3)
    b2.set_mode("dead")  # accepts, reads the request, closes: a crashed application
    window = answers(address, 30)
    tried = len(b2.requests) - 1  # b2 answered one request before it broke
    assert shared_by_b1_and_b3(window), f"30 GETs while b2 was failing got {dict(window)}"
    assert tried <= 2, (
        f"b2 closed every connection without an answer, and your proxy sent it {tried} of 30 "
        "GETs: after a failure, mark the backend down and stop choosing it (passive detection)"
    )
    after = answers(address, 30)
    assert shared_by_b1_and_b3(after) and len(b2.requests) - 1 == tried, (
        f"after the first failure: {dict(after)}, and b2 got "
        f"{len(b2.requests) - 1 - tried} more; expected b1 and b3 in turn, and none"
    )


@pytest.mark.stage(4)
def test_a_post_whose_connection_was_refused_goes_to_the_next_backend(proxy):
    """b2 killed: a POST refused by b2 was never sent, so it goes to b1: 4 POSTs, 4 times 200."""
    # A refused connection is HAProxy's `retry-on conn-failure`: safe for any method.
    address, (b1, b2) = proxy(2)
    b2.kill()  # no pooled connection yet: the proxy's connect to b2 is refused
    # Noise budget: the health checks need FALL (2) failed checks CHECK_INTERVAL (0.2 s)
    # apart before b2 is down, so the POST whose turn is b2 (the first or second, sent
    # milliseconds after the kill) meets the refused connection; a proxy that also answers
    # that POST 502 fails here. The reference passes whichever way it goes.
    statuses = [
        call(address, "POST", "/pay", body=f"payment {i}".encode()).status for i in range(4)
    ]
    at_b1 = [seen.body for seen in b1.requests if seen.method == "POST"]
    assert statuses == [200] * 4 and sorted(at_b1) == [b"payment %d" % i for i in range(4)], (
        f"b2's connection was refused, so it never saw the POST: send it to the next backend "
        f"(only a request that may have been acted on must not be sent again). The client "
        f"got {statuses}; b1 received {at_b1}"
    )


@pytest.mark.stage(4)
def test_a_post_is_never_sent_to_a_second_backend(proxy):
    """b2 crashes after reading each request: a POST it got is answered 502 and arrives once."""
    # b2 gets one POST over its pooled connection and one over a new connection.
    # RFC 9110 §9.2.2: "A proxy MUST NOT automatically retry non-idempotent requests."
    address, (b1, b2) = proxy(2)
    answers(address, 2)  # each backend has a pooled connection now
    b2.set_mode("crash")  # its health check still passes: only real requests find it out
    statuses = []
    for i in range(4):
        response = call(address, "POST", "/pay", body=f"payment {i}".encode())
        statuses.append(response.status)
    at_b2 = [seen.body for seen in b2.requests if seen.method == "POST"]
    received = Counter(seen.body for b in (b1, b2) for seen in b.requests if seen.method == "POST")
    twice = sorted(body for body, times in received.items() if times > 1)
    assert len(at_b2) >= 1, f"no POST reached b2 (statuses {statuses}); round robin must try it"
    assert not twice, (
        f"{twice} reached the backends more than once: b2 read each POST and closed the "
        "connection without an answer (a pooled connection, or a new one). That does not say "
        "b2 did nothing; never send a POST again, to b2 or another backend (RFC 9110 §9.2.2)"
    )
    assert statuses.count(502) == len(at_b2), (
        f"{len(at_b2)} POST(s) reached b2 and got no response: each should get 502; "
        f"the client got {statuses}"
    )


# --- stage 5 --------------------------------------------------------------------------------


def wait_for_checks(backend: Backend, n: int, status: int) -> None:
    """Until `backend` has answered n more health checks with `status` (at most 3 s)."""
    deadline, seen = time.monotonic() + TIMEOUT, backend.checks.count(status)
    while backend.checks.count(status) < seen + n:
        assert time.monotonic() < deadline, (
            f"{backend.name} received {backend.checks.count(status) - seen} GET /health "
            f"answered {status} in {TIMEOUT} s: send one to every backend every "
            "CHECK_INTERVAL (0.2 s)"
        )
        time.sleep(0.01)  # polls what the backend counted, not a fixed wait


@pytest.mark.stage(5)
def test_a_failing_health_check_takes_a_backend_out(proxy):
    """b2 serves requests but its GET /health answers 503: after three checks it gets none."""
    address, (b1, b2, b3) = proxy(3)
    b2.set_mode("unhealthy")
    wait_for_checks(b2, 3, 503)  # FALL is 2; the third says the second was acted on
    got = answers(address, 30)
    assert shared_by_b1_and_b3(got), (
        f"b2 answered three health checks 503; then 30 GETs went {dict(got)}. A health "
        "check passes only with a 2xx or 3xx status; FALL (2) failed checks in a row mark "
        "a backend down"
    )


@pytest.mark.stage(5)
def test_an_active_check_brings_a_revived_backend_back(proxy):
    """b2 killed, then revived: once it passes two health checks, 30 GETs land 10/10/10."""
    address, (b1, b2, b3) = proxy(3)
    answers(address, 3)
    b2.kill()
    assert shared_by_b1_and_b3(answers(address, 30)), "failover, as in stage 4"
    b2.revive()  # listening again on the same port
    wait_for_checks(b2, 2, 200)
    got = answers(address, 30)
    assert got == {"b1": 10, "b2": 10, "b3": 10}, (
        f"b2 came back and passed two health checks; then 30 GETs went {dict(got)}: a "
        "passing health check must mark a backend up again"
    )


# --- stage 6 --------------------------------------------------------------------------------


@pytest.mark.stage(6)
def test_malformed_and_oversized_requests(proxy):
    """A request line that is not HTTP gets 400; a 16 KiB header gets 431; nothing reaches b1."""
    address, (b1,) = proxy(1)
    got, _ = raw(address, b"HELLO THERE\r\n\r\n")
    assert status_of(got) == 400, f"sent b'HELLO THERE'; expected 400, got {got[:80]!r}"
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 16384 + b"\r\n\r\n"
    got, _ = raw(address, big)
    assert status_of(got) == 431, f"sent a 16 KiB header; expected 431, got {got[:80]!r}"
    assert not b1.requests, f"the backend received {len(b1.requests)} bad request(s)"


@pytest.mark.stage(6)
def test_a_slow_client_is_timed_out(proxy):
    """Half a request head, then silence: 408 (or a close) within 3 s, not a hang."""
    address, _ = proxy(1)
    got, seconds = raw(address, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert status_of(got) in (408, None) and (not got or status_of(got) == 408), (
        f"expected 408 or a close, got {got[:80]!r}"
    )
    # The lab asks for 1 s (CLIENT_TIMEOUT); 3 s leaves a busy machine 2 s of margin and
    # still tells a timeout from a hang (the reference solution: 1.00-1.01 s over 5 runs).
    assert seconds < TIMEOUT, f"took {seconds:.1f} s"


@pytest.mark.stage(6)
def test_a_drip_fed_head_is_cut_at_a_deadline(proxy):
    """A head dripped one byte every 0.3 s: 408 (or a close) within 3 s, a whole-head deadline."""
    address, _ = proxy(1)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 100 + b"\r\n\r\n"
    start, got = time.monotonic(), b""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        # Noise budget: the reference answered after 1.001-1.006 s over 12 runs on a busy
        # machine (CLIENT_TIMEOUT is 1 s); a proxy that resets its timeout
        # on every byte never answers while bytes keep coming (114 bytes at 0.3 s: 34 s),
        # so the 3 s limit leaves a busy machine 2 s and still fails a per-recv timeout.
        for byte in head:
            with contextlib.suppress(OSError):
                sock.sendall(bytes([byte]))
            if select.select([sock], [], [], 0.3)[0]:  # the proxy answered or closed
                with contextlib.suppress(OSError):
                    while chunk := sock.recv(65536):
                        got += chunk
                break
            assert time.monotonic() - start < TIMEOUT, (
                f"sent one byte every 0.3 s for {TIMEOUT} s and your proxy is still waiting: "
                "limit the time for the WHOLE head (a deadline), not each recv()"
            )
    assert not got or status_of(got) == 408, f"expected 408 or a close, got {got[:80]!r}"


@pytest.mark.stage(6)
def test_a_silent_backend_gets_504_and_a_garbled_one_502(proxy):
    """/slow never answers: 504. /garbage answers with something that is not HTTP: 502."""
    address, _ = proxy(1)
    response = call(address, "GET", "/slow")
    assert response.status == 504, (
        f"a backend that never answers: expected 504, got {response.status}"
    )
    response = call(address, "GET", "/garbage")
    assert response.status == 502, (
        f"a backend answering 'NOT HTTP': expected 502, got {response.status}"
    )
    assert call(address, "GET", "/after").status == 200, "the proxy stopped serving afterwards"


@pytest.mark.stage(6)
def test_a_post_is_not_sent_twice_when_the_backend_drops_the_connection(proxy):
    """A POST whose pooled connection the backend drops unanswered: 502, and it arrived ONCE."""
    # RFC 9110 §9.2.2: "A proxy MUST NOT automatically retry non-idempotent requests."
    address, (b1,) = proxy(1)
    call(address, "GET", "/")  # leaves an idle connection in the pool
    response = call(address, "POST", "/drop", body=b"pay 10 euros")
    posts = [seen for seen in b1.requests if seen.method == "POST"]
    assert len(posts) == 1, (
        f"the backend received the POST {len(posts)} times: a connection closed before any "
        "response byte does not say the backend did nothing; retry only idempotent methods"
    )
    assert response.status == 502, f"expected 502, got {response.status}"


@pytest.mark.stage(6)
def test_a_backend_that_refuses_gets_502_and_one_that_cannot_connect_504(spawn):
    """A backend that refuses connections: 502 (or 503); one that never accepts: 504, not 408."""
    with (
        socket.socket() as closed,  # bound, not listening: a connect is refused at once
        socket.socket() as full,  # listening, queue of one connection, never accepting
        contextlib.ExitStack() as stack,
    ):
        closed.bind(("127.0.0.1", 0))
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        # Linux drops SYNs to a listener whose accept queue is full, so connects stall.
        stack.enter_context(socket.create_connection(full.getsockname(), timeout=TIMEOUT))
        # Noise budget: the reference answered 504 after 1.01-1.16 s over 10 runs at a load
        # average of 19 on 2 cores (BACKEND_TIMEOUT is 1 s); raw() waits 3 s, so a busy
        # machine has ~1.8 s, and a proxy that waits for the connect without a limit (Linux
        # retries the SYN for over a minute) still fails.
        for backend, expected in ((closed, (502, 503)), (full, (504,))):
            program = spawn("--port", "0", "--backend", f"127.0.0.1:{backend.getsockname()[1]}")
            address = ("127.0.0.1", int(program.wait_for(READY)[1]))
            got, _ = raw(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            what = "refuses connections" if backend is closed else "never completes a connect"
            assert status_of(got) in expected, (
                f"a backend that {what}: expected {' or '.join(map(str, expected))}, "
                f"got {got[:80]!r}"
            )


@pytest.mark.stage(6)
def test_hop_by_hop_headers_stop_at_the_proxy(proxy):
    """Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded, in either direction."""
    address, (b1,) = proxy(1)
    headers = {
        "Connection": "X-Secret",
        "X-Secret": "for the proxy only",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic dXNlcjpwYXNz",
        "X-Kept": "yes",
    }
    response = call(address, "GET", "/hop", headers)
    seen = b1.requests[-1]
    leaked = [name for name in HOP if seen.header(name) is not None and name != "connection"]
    assert not leaked, f"the backend received hop-by-hop headers: {leaked}"
    # The proxy may send its own Connection header upstream, never the client's.
    upstream = (seen.header("connection") or "").lower()
    assert "x-secret" not in upstream, f"the client's Connection header leaked: {upstream!r}"
    assert seen.header("x-kept") == "yes", "an end-to-end header (X-Kept) was dropped"
    leaked_back = [n for n in ("x-internal", "keep-alive") if response.getheader(n)]
    assert not leaked_back, f"the client received the backend's hop-by-hop headers: {leaked_back}"


@pytest.mark.stage(6)
def test_via_names_the_proxy(proxy):
    """Via (RFC 9110 §7.6.3, a MUST for a gateway): `1.1 <name>` appended to what came in."""
    address, (b1,) = proxy(1)
    call(address, "GET", "/")
    via = b1.requests[-1].header("via")
    assert via and re.fullmatch(r"(HTTP/)?1\.1 [^\s,]+( .*)?", via), (
        f"the backend received Via: {via!r}; expected '1.1 <your proxy's name>'"
    )
    call(address, "GET", "/", {"Via": "1.0 fred"})
    via = b1.requests[-1].header("via") or ""
    assert re.fullmatch(r"1\.0 fred, ?(HTTP/)?1\.1 [^\s,]+( .*)?", via), (
        f"sent Via: 1.0 fred; the backend received {via!r} (expected '1.0 fred, 1.1 <name>')"
    )


@pytest.mark.stage(6)
def test_x_forwarded_for_is_appended(proxy):
    """X-Forwarded-For: the client's address appended to what came in, never replacing it."""
    address, (b1,) = proxy(1)
    call(address, "GET", "/")
    assert b1.requests[-1].header("x-forwarded-for") == "127.0.0.1", b1.requests[-1].headers
    call(address, "GET", "/", {"X-Forwarded-For": "203.0.113.9"})
    got = b1.requests[-1].header("x-forwarded-for")
    assert got == "203.0.113.9, 127.0.0.1", (
        f"sent X-Forwarded-For: 203.0.113.9; the backend received {got!r} "
        "(expected '203.0.113.9, 127.0.0.1')"
    )
