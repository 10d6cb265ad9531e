"""Real servers for tests: found on the system, started on loopback, never mocked.

The servers themselves are started by the top-level `services` package — the same code
that `make run` and `make services` use for learners (one implementation). This package
turns them into pytest fixtures:

- fixtures.py makes, for every module of `services`, a session fixture per variable it
  provides, named after the variable in lower case: DATABASE_URL -> `database_url`,
  REDIS_URL -> `redis_url`, NGINX_BIN -> `nginx_bin`. A new service module gets its
  fixtures without a line here.
- a service's extra fixtures live in a module named after it (postgresql.py: a fresh
  database per test module, a crashable server; redis.py: a flushed client), and
  chromium.py holds the browser the site tests drive.

When a binary is missing, the fixture *skips* with the install command, so `make test`
passes on a fresh laptop; unless REQUIRE_SERVICES=1 (CI sets it): then it *fails*, so
CI can never silently skip the real thing.

Snippets that need a server declare it in their docstring with a line
`Needs: DATABASE_URL`; tests/test_snippets.py runs them with that fixture's value set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services import Install, Missing, find_binary, modules, services_required

SERVICES_DIR = Path(__file__).parent


def service_modules() -> list[str]:
    names = [p.stem for p in SERVICES_DIR.glob("*.py") if p.stem != "__init__"]
    return sorted(f"tests.services.{name}" for name in names)


def env_fixtures() -> dict[str, str]:
    """Every environment variable a service can provide -> its fixture name."""
    return {var: var.lower() for module in modules().values() for var in module.PROVIDES}


def missing(error: Missing) -> None:
    """Skip with the install command; fail under REQUIRE_SERVICES=1."""
    if services_required():
        pytest.fail(f"REQUIRE_SERVICES=1 but {error}", pytrace=False)
    pytest.skip(str(error).replace("\n", " "))


def require_binary(name: str, apt: str, candidates: tuple[str, ...] = (), brew: str = "") -> Path:
    """Return the path of a binary, or skip (fail under REQUIRE_SERVICES=1)."""
    try:
        return find_binary(name, Install(apt=apt, brew=brew or apt), candidates)
    except Missing as error:
        missing(error)
        raise
