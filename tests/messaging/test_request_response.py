"""Request/response vs messaging (docs/messaging/request-response.md): a consumer that is
down fails every synchronous call, while a RabbitMQ queue keeps what was published for it —
and keeps nothing when the queue did not exist yet (the Break it)."""

from __future__ import annotations

import uuid

from tests.conftest import load_snippet

reqresp = load_snippet("messaging/reqresp_consumer_down")


def test_the_synchronous_call_succeeds_when_up_and_fails_when_down():
    with reqresp.billing_service() as port:
        before = len(reqresp.Billing.charged)
        up = [reqresp.charge(port, order) for order in reqresp.ORDERS]
        assert up == ["HTTP 200"] * len(reqresp.ORDERS)  # the control: the call works
        assert reqresp.Billing.charged[before:] == reqresp.ORDERS
    down = [reqresp.charge(port, order) for order in reqresp.ORDERS]
    assert all(answer.startswith("failed (") for answer in down), down
    assert len(reqresp.Billing.charged) == before + len(reqresp.ORDERS)  # none recorded


def test_the_queue_holds_every_message_until_the_consumer_is_back(amqp_url):
    queue = f"test-{uuid.uuid4().hex}"
    try:
        assert reqresp.publish_while_consumer_down(amqp_url, queue) == len(reqresp.ORDERS)
        assert reqresp.depth(amqp_url, queue) == len(reqresp.ORDERS)
        assert reqresp.consumer_comes_back(amqp_url, queue) == reqresp.ORDERS  # all, in order
        assert reqresp.depth(amqp_url, queue) == 0  # acked: gone from the queue
    finally:
        reqresp.delete(amqp_url, queue)


def test_break_it_a_queue_declared_only_by_the_consumer_loses_what_came_before(amqp_url):
    """The broker confirms all five (it routed them: to no queue) and the consumer that
    declares the queue afterwards gets none."""
    queue = f"test-{uuid.uuid4().hex}"
    try:
        confirmed = reqresp.publish_while_consumer_down(amqp_url, queue, declare_first=False)
        assert confirmed == len(reqresp.ORDERS)
        assert reqresp.consumer_comes_back(amqp_url, queue) == []
    finally:
        reqresp.delete(amqp_url, queue)
