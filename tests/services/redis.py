"""Redis (Debian package redis-server): the shared cache of the servers chapter.

One server per test session (per xdist worker), started by pytest-redis's process
factory (mirakuru underneath): `redis-server` on 127.0.0.1, a port chosen free at start
(pytest-redis records it in a port file so parallel workers never pick the same one),
its files in a temp dir, ready when it answers a real connection, stopped at session end.

Fixtures:
  redis_server   session: the running server (pytest-redis's RedisExecutor: .host, .port)
  redis_url      session: redis://127.0.0.1:<port>/0, what snippets get as REDIS_URL
  redis_client   function: a redis.Redis on that server, database flushed before each test
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_redis import factories

from tests.services import require_binary

# Environment variables this module can provide to snippets (see tests/services/__init__.py).
ENV = {"REDIS_URL": "redis_url"}

CANDIDATES = ("/usr/bin/redis-server",)


@pytest.fixture(scope="session")
def redis_binary() -> Path:
    """Found, or skip with the install command (fail under REQUIRE_SERVICES=1)."""
    return require_binary("redis-server", apt="redis-server", candidates=CANDIDATES)


# port=None: any free port; host: loopback only. The binary is checked before it starts.
_redis_process = factories.redis_proc(
    executable=CANDIDATES[0], host="127.0.0.1", port=None, save="", loglevel="warning"
)


@pytest.fixture(scope="session")
def redis_server(redis_binary: Path, request: pytest.FixtureRequest):
    return request.getfixturevalue("_redis_process")


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return f"redis://{redis_server.host}:{redis_server.port}/0"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    client.flushdb()
    yield client
    client.close()
