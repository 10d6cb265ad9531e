"""A consumer that is down: the synchronous call fails at once, while a RabbitMQ queue holds
the messages until the consumer comes back.

Run: python snippets/messaging/reqresp_consumer_down.py
Needs: AMQP_URL
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika

ORDERS = [1, 2, 3, 4, 5]


def amqp_url() -> str:
    url = os.environ.get("AMQP_URL")
    if not url:
        sys.exit(
            "set AMQP_URL to a RabbitMQ server, e.g. amqp://guest:guest@127.0.0.1:5672/%2F,"
            " or run `make run S=messaging/reqresp_consumer_down`, which starts one"
        )
    return url


def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


# --8<-- [start:sync]
class Billing(http.server.BaseHTTPRequestHandler):
    """The billing service: POST /charge records an order and answers 200."""

    charged: list[int] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.charged.append(json.loads(body)["order"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def billing_service() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Billing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def charge(port: int, order: int) -> str:
    """The order service calls billing and waits for the answer (request/response)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("POST", "/charge", body=json.dumps({"order": order}))
        return f"HTTP {conn.getresponse().status}"
    except OSError as error:
        return f"failed ({type(error).__name__})"
    finally:
        conn.close()


# --8<-- [end:sync]


# --8<-- [start:queue]
def publish_while_consumer_down(url: str, queue: str, declare_first: bool = True) -> int:
    """The order service publishes to a queue; nobody consumes. Returns how many the broker
    confirmed. declare_first=False: the queue is declared only when the consumer starts."""
    with connect(url) as conn:
        channel = conn.channel()
        channel.confirm_delivery()  # basic.publish now waits for the broker's ack
        if declare_first:
            channel.queue_declare(queue, durable=True)
        confirmed = 0
        for order in ORDERS:
            channel.basic_publish(
                exchange="",  # the default exchange routes by queue name
                routing_key=queue,
                body=json.dumps({"order": order}),
                properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
            confirmed += 1  # no exception: the broker confirmed it
        return confirmed


def depth(url: str, queue: str) -> int:
    with connect(url) as conn:
        return conn.channel().queue_declare(queue, passive=True).method.message_count


def consumer_comes_back(url: str, queue: str) -> list[int]:
    """The billing consumer starts, takes every waiting message and acks each one."""
    received = []
    with connect(url) as conn:
        channel = conn.channel()
        channel.queue_declare(queue, durable=True)
        while True:
            method, _props, body = channel.basic_get(queue)
            if method is None:  # the queue is empty
                return received
            received.append(json.loads(body)["order"])
            channel.basic_ack(method.delivery_tag)


# --8<-- [end:queue]


def delete(url: str, queue: str) -> None:
    with connect(url) as conn:
        conn.channel().queue_delete(queue)


def main() -> None:
    url = amqp_url()
    print("synchronous call to the billing service:")
    with billing_service() as port:
        answers = [charge(port, order) for order in ORDERS]
        print(f"  service up:   {answers.count('HTTP 200')} of {len(ORDERS)} calls answered 200")
    answers = [charge(port, order) for order in ORDERS]  # the service has stopped
    failed = [a for a in answers if a.startswith("failed")]
    print(f"  service down: {len(failed)} of {len(ORDERS)} calls {failed[0]}; nothing kept them")

    for declare_first in (True, False):
        queue = f"billing-{uuid.uuid4().hex[:8]}"
        title = "declared by the producer" if declare_first else "not declared yet (Break it)"
        print(f"through a RabbitMQ queue {title}, consumer down:")
        try:
            confirmed = publish_while_consumer_down(url, queue, declare_first)
            print(f"  published {len(ORDERS)} orders, {confirmed} confirmed by the broker")
            if declare_first:
                print(f"  queue depth while the consumer is down: {depth(url, queue)}")
            received = consumer_comes_back(url, queue)
            print(f"  consumer back: received {len(received)} of {len(ORDERS)}: {received}")
            print(f"  queue depth after it acked them: {depth(url, queue)}")
        finally:
            delete(url, queue)


if __name__ == "__main__":
    main()
