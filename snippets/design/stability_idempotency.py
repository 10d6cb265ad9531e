"""An Idempotency-Key on POST /orders, stored in PostgreSQL: a client that timed out after the
server committed retries and gets the first answer, not a second order -- and two requests
with the same key at the same time make one order.

Run: python snippets/design/stability_idempotency.py
Needs: DATABASE_URL
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from psycopg_pool import ConnectionPool

TIMEOUTS = "-c statement_timeout=10s -c lock_timeout=5s"  # every wait on the server is bounded
MAX_BODY = 4096
REQUEST_LIMIT = 2.0  # seconds a client has to send its whole request, head and body
# The draft: Idempotency-Key is an sf-string (RFC 8941 §3.3.3): printable ASCII in double
# quotes, with only \" and \\ escaped. We also cap its length (the draft leaves that to us).
SF_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}"')
MODES = ("no key", "check-then-insert", "unique key")

SCHEMA = """
CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, sku text NOT NULL,
                     quantity int NOT NULL CHECK (quantity BETWEEN 1 AND 100));
-- the right way: the key is unique, and its row holds the answer to replay
CREATE TABLE idempotency_keys (key text PRIMARY KEY, request_hash text NOT NULL,
                               status int NOT NULL, body text NOT NULL,
                               created_at timestamptz NOT NULL DEFAULT now());
-- the naive way: the same columns, but nothing stops two rows with one key
CREATE TABLE naive_keys (key text NOT NULL, request_hash text NOT NULL,
                         status int NOT NULL, body text NOT NULL);
"""

Hook = Callable[[str], None]  # called at named points so a test can force an interleaving


# --8<-- [start:handler]
def create_order(conn: psycopg.Connection, order: dict) -> tuple[int, str]:
    (order_id,) = conn.execute(
        "INSERT INTO orders (customer, sku, quantity) VALUES (%s, %s, %s) RETURNING id",
        (order["customer"], order["sku"], order["quantity"]),
    ).fetchone()
    return 201, json.dumps({"id": order_id, **order})


def post_order(conn: psycopg.Connection, key: str, body: bytes, order: dict,
               hook: Hook) -> tuple[int, str]:  # fmt: skip
    """Create the order at most once per key, in ONE transaction with the key's row."""
    digest = hashlib.sha256(body).hexdigest()  # the draft's "fingerprint" of the request
    with conn.transaction():
        # Another request with this key still running? The draft says answer 409 at once.
        # (The lock is held until COMMIT; it only makes the answer fast -- the primary key
        # below is what makes a second order impossible.)
        (mine,) = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)
        ).fetchone()
        if not mine:
            return 409, json.dumps({"error": "a request with this key is in progress"})
        claimed = conn.execute(
            "INSERT INTO idempotency_keys (key, request_hash, status, body)"
            " VALUES (%s, %s, 0, '') ON CONFLICT (key) DO NOTHING RETURNING key",
            (key, digest),
        ).fetchone()
        if not claimed:  # seen before and committed: replay its answer
            stored_hash, status, stored = conn.execute(
                "SELECT request_hash, status, body FROM idempotency_keys WHERE key = %s",
                (key,),
            ).fetchone()
            if stored_hash != digest:
                return 422, json.dumps({"error": "key reused with a different request"})
            return status, stored
        status, answer = create_order(conn, order)
        conn.execute(
            "UPDATE idempotency_keys SET status = %s, body = %s WHERE key = %s",
            (status, answer, key),
        )
        hook("before commit")
    hook("after commit")
    return status, answer


# --8<-- [end:handler]


# --8<-- [start:naive]
def post_order_naive(conn: psycopg.Connection, key: str, body: bytes, order: dict,
                     hook: Hook) -> tuple[int, str]:  # fmt: skip
    """Look the key up, and if it is new, create the order and remember the key."""
    digest = hashlib.sha256(body).hexdigest()
    with conn.transaction():
        row = conn.execute(
            "SELECT request_hash, status, body FROM naive_keys WHERE key = %s", (key,)
        ).fetchone()
        if row:
            if row[0] != digest:
                return 422, json.dumps({"error": "key reused with a different request"})
            return row[1], row[2]
        hook("after check")  # another request with this key can get here too
        status, answer = create_order(conn, order)
        conn.execute(
            "INSERT INTO naive_keys VALUES (%s, %s, %s, %s)", (key, digest, status, answer)
        )
    hook("after commit")
    return status, answer


# --8<-- [end:naive]


# --8<-- [start:http]
# The same reader is in retries_deadline.py (snippets may not import each other).
class DeadlineReader(io.RawIOBase):
    """The socket, read with one deadline for the whole request: each read waits only for
    what is left of it, so a client sending a byte now and then is dropped all the same."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 (a writable buffer)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")  # http.server closes
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class Handler(BaseHTTPRequestHandler):
    server: OrderServer
    timeout = REQUEST_LIMIT  # for writes; reads share one deadline for the whole request

    def setup(self) -> None:
        # A per-read timeout alone lets a client that drips a byte every second hold this
        # thread for ever (slowloris). HTTP/1.0 here: one request per connection, so one
        # deadline per connection is one per request.
        super().setup()
        deadline = time.monotonic() + REQUEST_LIMIT
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, deadline))

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            status, answer = self.answer()
        except TimeoutError:
            raise  # the body did not arrive in time: http.server closes, as for the head
        except Exception:  # a bug, the database gone: the transaction rolled back
            traceback.print_exc()
            self.close_connection = True
            status, answer = 500, json.dumps({"error": "internal error; safe to retry"})
        self.connection.settimeout(self.timeout)  # the request is in: 2 s per write
        data = answer.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timed out) before we answered
            pass

    def answer(self) -> tuple[int, str]:
        def error(status: int, why: str) -> tuple[int, str]:
            return status, json.dumps({"error": why})

        # Framing first (RFC 9112 §6.3): where does the body end? Any doubt -> answer, close.
        lengths = self.headers.get_all("Content-Length") or []
        codings = self.headers.get_all("Transfer-Encoding") or []
        if codings:
            self.close_connection = True  # §6.1: close after answering, whatever we answer
            if lengths:  # both: the way requests are smuggled (§6.1 allows rejecting it)
                return error(400, "Content-Length together with Transfer-Encoding")
            if ",".join(codings).split(",")[-1].strip().lower() != "chunked":
                return error(400, "chunked must be the last transfer coding")  # §6.3 item 4
            return error(411, "send Content-Length; chunked bodies are not read here")
        if not lengths:
            return error(411, "Content-Length required")
        length = lengths[0]
        if len(lengths) > 1 or not length.isascii() or not length.isdigit():
            self.close_connection = True  # §6.3 item 5: an unrecoverable error, 400 and close
            return error(400, "bad Content-Length")
        if self.path != "/orders":
            return error(404, "no such resource")
        if int(length) > MAX_BODY:
            self.close_connection = True  # we do not read the body
            return error(413, f"body over {MAX_BODY} bytes")
        body = self.rfile.read(int(length))
        keys = self.headers.get_all("Idempotency-Key") or []
        mode = self.server.mode
        if mode != "no key":
            if not keys:
                return error(400, "Idempotency-Key is required")
            if len(keys) > 1 or not SF_STRING.fullmatch(keys[0]):
                return error(400, 'Idempotency-Key must be one quoted string, e.g. "a1b2"')
        try:
            order = json.loads(body)
            assert isinstance(order, dict) and set(order) == {"customer", "sku", "quantity"}
            assert all(isinstance(order[f], str) and 0 < len(order[f]) <= 100
                       and "\x00" not in order[f] for f in ("customer", "sku"))  # fmt: skip
            q = order["quantity"]
            assert isinstance(q, int) and not isinstance(q, bool) and 1 <= q <= 100
        except (ValueError, AssertionError):
            return error(400, "body must be {customer, sku, quantity 1..100}")
        with self.server.pool.connection() as conn:
            if mode == "no key":
                status, answer = create_order(conn, order)
                self.server.hook("after commit")
                return status, answer
            post = post_order if mode == "unique key" else post_order_naive
            return post(conn, keys[0], body, order, self.server.hook)

    def log_message(self, *args: object) -> None:
        pass


class OrderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode, self.hook = "unique key", no_hook  # what each scenario sets
        options = f"{TIMEOUTS} -c search_path={schema}"
        self.pool = ConnectionPool(url, min_size=2, max_size=4, timeout=5, open=True,
                                   kwargs={"autocommit": True, "options": options,
                                           "connect_timeout": 5})  # fmt: skip
        self.pool.wait(timeout=5)

    def server_close(self) -> None:
        super().server_close()
        self.pool.close()


# --8<-- [end:http]


def no_hook(point: str) -> None:
    pass


@contextmanager
def database(url: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """A uniquely named schema with the tables, dropped at the end."""
    schema = f"idem_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5, options=TIMEOUTS) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"SET search_path = {schema}")
            conn.execute(SCHEMA)
            yield conn, schema
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@dataclass
class Shop:
    """The order server on 127.0.0.1 and a connection to its schema, for counting."""

    conn: psycopg.Connection
    server: OrderServer

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def reset(self, mode: str, hook: Hook = no_hook) -> Shop:
        """Empty tables (ids from 1 again), and the server in `mode` with `hook`."""
        self.conn.execute("TRUNCATE orders, idempotency_keys, naive_keys RESTART IDENTITY")
        self.server.mode, self.server.hook = mode, hook
        return self

    def orders(self) -> int:
        return self.conn.execute("SELECT count(*) FROM orders").fetchone()[0]


@contextmanager
def serve(url: str) -> Iterator[Shop]:
    """A fresh schema and an order server; stopped and dropped at the end."""
    with database(url) as (conn, schema):
        server = OrderServer(url, schema)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield Shop(conn, server)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def post(port: int, body: bytes, key: str | None, timeout: float = 5,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:  # fmt: skip
    """POST /orders; raises TimeoutError if no answer within `timeout` seconds of sending.
    (Connecting gets 5 s whatever `timeout` is: a busy host may be slow to accept.)"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.connect()
        conn.sock.settimeout(timeout)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["Idempotency-Key"] = f'"{key}"'
        conn.request("POST", "/orders", body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


ORDER = json.dumps({"customer": "ada", "sku": "book", "quantity": 1}).encode()


# --8<-- [start:scenarios]
@dataclass
class Outcome:
    answers: list[str] = field(default_factory=list)  # what the client saw, in order
    order_ids: list[int] = field(default_factory=list)  # ids in the 201 answers
    orders: int = 0  # rows in the orders table afterwards


def timeout_then_retry(shop: Shop, mode: str) -> Outcome:
    """The client gives up after 0.1 s; the server commits the order, but its answer is
    held until the client has given up. The client retries, same key and body, once the
    first request has committed (on a busy machine its timeout may fire even earlier)."""
    gave_up, committed = threading.Event(), threading.Event()

    def hook(point: str) -> None:
        if point == "after commit" and not committed.is_set():  # only the first request
            committed.set()
            gave_up.wait(timeout=5)

    out, key = Outcome(), str(uuid.uuid4())
    shop.reset(mode, hook)
    try:
        post(shop.port, ORDER, key, timeout=0.1)
        out.answers.append("answered")  # never: the answer is held past the timeout
    except TimeoutError:
        out.answers.append("timed out")
    gave_up.set()
    if not committed.wait(timeout=5):
        raise TimeoutError("the first request never committed")
    status, answer = post(shop.port, ORDER, key)  # the retry, same key and body
    out.answers.append(str(status))
    out.order_ids.append(answer.get("id"))
    out.orders = shop.orders()
    return out


def two_at_once(shop: Shop, mode: str) -> Outcome:
    """Requests A and B, same key and body. Forced schedule: B arrives while A is between
    its key check and its commit. Then B retries once A has answered."""
    a_inside, b_answered = threading.Event(), threading.Event()
    both_checked = threading.Barrier(2, timeout=5)
    a_answer: list[tuple[int, dict]] = []

    def hook(point: str) -> None:
        if mode == "unique key" and point == "before commit" and not a_inside.is_set():
            a_inside.set()  # A holds the key's lock until B has had its answer
            b_answered.wait(timeout=5)
        if mode != "unique key" and point == "after check":
            both_checked.wait()  # both saw "no such key" before either inserted

    out, key = Outcome(), str(uuid.uuid4())
    shop.reset(mode, hook)
    a = threading.Thread(target=lambda: a_answer.append(post(shop.port, ORDER, key)))
    a.start()
    if mode == "unique key" and not a_inside.wait(timeout=5):
        raise TimeoutError("A never reached its commit")
    status, b = post(shop.port, ORDER, key)
    b_answered.set()
    a.join(timeout=10)
    for s, answer in (a_answer[0], (status, b)):
        out.answers.append(str(s))
        out.order_ids.append(answer.get("id"))
    if status == 409:  # B was told "in progress": it retries, now that A has answered
        status, b = post(shop.port, ORDER, key)
        out.answers.append(f"retry {status}")
        out.order_ids.append(b.get("id"))
    out.orders = shop.orders()
    return out


# --8<-- [end:scenarios]


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit(
            "set DATABASE_URL to a PostgreSQL server, or run"
            " `make run S=design/stability_idempotency`, which starts one and stops it afterwards"
        )
    return url


def main() -> None:
    with serve(database_url()) as shop:
        report(shop)


def report(shop: Shop) -> None:
    print("POST /orders, one order each, on PostgreSQL; orders = rows afterwards.\n")
    print(f"{'scenario':<24}{'server':<19}{'orders':>6}  answers (order id)")
    for name, scenario, modes in (
        ("timeout, then retry", timeout_then_retry, MODES),
        ("two at once, same key", two_at_once, MODES[1:]),
    ):
        for mode in modes:
            out = scenario(shop, mode)
            ids = sorted({i for i in out.order_ids if i is not None})
            answers = ", ".join(out.answers)
            print(f"{name:<24}{mode:<19}{out.orders:>6}  {answers} ({', '.join(map(str, ids))})")
            name = ""
    print()
    shop.reset("unique key")
    key = str(uuid.uuid4())
    other = json.dumps({"customer": "ada", "sku": "pen", "quantity": 9}).encode()
    for what, body, k in (
        ("first request", ORDER, key),
        ("same key, same body", ORDER, key),
        ("same key, other body", other, key),
        ("no key", ORDER, None),
    ):
        status, answer = post(shop.port, body, k)
        print(f"  {what:<22}{status}  {answer}")
    print(f"  orders stored: {shop.orders()}")


if __name__ == "__main__":
    main()
