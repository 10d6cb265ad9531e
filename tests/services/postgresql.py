"""PostgreSQL fixtures beyond `database_url` (made by fixtures.py from services/postgresql.py).

  postgresql_server    session: the running server (host, port, socket dir, data dir)
  module_database_url  module:  libpq URL of a fresh, empty database for one test module
A test that crashes a server and restarts it on the same data directory (the durability
lesson) uses `crashable_postgresql()`; one that needs its own settings,
`running_postgresql(settings=…)` (both context managers, from services.postgresql).
Snippets get `DATABASE_URL`, the database `backend` on the session server; each creates
its own uniquely named schema and drops it in `finally`, so they can share one database.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from services import Started
from services.postgresql import (  # noqa: F401  (re-exported for the tests)
    CrashablePostgreSQL,
    PostgreSQL,
    crashable_postgresql,
    running_postgresql,
)

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgresql_server(service_postgresql: Started) -> PostgreSQL:
    return service_postgresql.handle


@pytest.fixture(scope="module")
def module_database_url(postgresql_server: PostgreSQL) -> Iterator[str]:
    """A fresh, empty database for one test module, dropped afterwards."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgresql_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    yield postgresql_server.url(name)
    with psycopg.connect(postgresql_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
