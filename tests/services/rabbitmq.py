"""RabbitMQ fixtures beyond `amqp_url` (made by fixtures.py from services/rabbitmq.py).

rabbitmq_server      session: the running broker (.url, .port)
crashable_rabbitmq   function: a broker of its own that a test may SIGKILL and restart
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services import Missing, Started
from services.rabbitmq import RabbitMQ, running_rabbitmq
from tests.services import missing


@pytest.fixture(scope="session")
def rabbitmq_server(service_rabbitmq: Started) -> RabbitMQ:
    return service_rabbitmq.handle


@pytest.fixture
def crashable_rabbitmq() -> Iterator[RabbitMQ]:
    """A broker only this test uses: killing it disturbs no other test."""
    try:
        with running_rabbitmq() as server:
            yield server
    except Missing as error:
        missing(error)
