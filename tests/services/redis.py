"""Redis fixtures beyond `redis_url` (made by fixtures.py from services/redis.py).

redis_server   session: the running server (.host, .port)
redis_client   function: a redis.Redis on that server, database flushed before each test
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services import Started
from services.redis import Redis


@pytest.fixture(scope="session")
def redis_server(service_redis: Started) -> Redis:
    return service_redis.handle


@pytest.fixture
def redis_client(redis_url: str) -> Iterator:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    client.flushdb()
    yield client
    client.close()
