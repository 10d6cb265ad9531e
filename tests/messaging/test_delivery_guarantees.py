"""Delivery guarantees under crash injection (docs/messaging/delivery-guarantees.md): a
consumer SIGKILLed between its effect and its ack, on a real RabbitMQ. Each mode is the
others' control: the same crash loses a message (ack first), duplicates it (ack after the
effect) or neither (idempotent); the Break it (dedupe key committed apart from the effect)
duplicates again."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

crash = load_snippet("messaging/delivery_crash")

EXPECTED = {  # per crash: what the page's table says
    "ack first": {"killed": 1, "redelivered": 0, "lost": 1, "charged twice": 0},
    "ack after effect": {"killed": 1, "redelivered": 1, "lost": 0, "charged twice": 1},
    "idempotent": {"killed": 1, "redelivered": 1, "lost": 0, "charged twice": 0},
    "key after effect": {"killed": 1, "redelivered": 1, "lost": 0, "charged twice": 1},
}


@pytest.mark.parametrize("mode", crash.MODES)
@pytest.mark.parametrize("crash_at", [1, 7, crash.N])  # first, middle and last delivery
def test_one_crash_loses_duplicates_or_neither_by_mode(amqp_url, mode, crash_at):
    assert crash.crash_run(amqp_url, mode, crash_at) == EXPECTED[mode]


def test_every_mode_is_in_the_expected_table():
    assert set(EXPECTED) == set(crash.MODES)
