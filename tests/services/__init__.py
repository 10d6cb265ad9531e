"""Real servers for tests: found on the system, started on loopback, never mocked.

One module per service in this package (chromium.py, postgresql.py, …). Each defines
pytest fixtures and is loaded automatically by tests/conftest.py. The pattern:

- the binary comes from a Debian package that `.ci/run` installs;
  `require_binary("nginx", apt="nginx-light")` returns its path, or
- when it is missing, *skips* the test with the command that installs it, so
  `make test` passes on a fresh laptop;
- unless REQUIRE_SERVICES=1 (CI sets it): then a missing binary *fails*, so CI can
  never silently skip the real thing.

Fixtures that start a server bind 127.0.0.1 with an ephemeral port, keep their files
in a temp dir, wait on a readiness signal (never a sleep) and stop the process at the
end of the session. Prefer maintained fixtures (pytest-postgresql, pytest-redis,
mirakuru) over hand-written process code.

Snippets that need a server read its address from an environment variable, and say
so in their docstring with a line `Needs: DATABASE_URL`. A service module maps each
variable it can provide to the session fixture that returns its value:

    ENV = {"DATABASE_URL": "database_url"}

and tests/test_snippets.py runs such a snippet with that variable set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SERVICES_DIR = Path(__file__).parent


def service_modules() -> list[str]:
    modules = [p.stem for p in SERVICES_DIR.glob("*.py") if p.stem != "__init__"]
    return sorted(f"tests.services.{name}" for name in modules)


def env_fixtures() -> dict[str, str]:
    """Every environment variable a service module can provide -> its fixture name."""
    import importlib

    mapping: dict[str, str] = {}
    for name in service_modules():
        mapping.update(getattr(importlib.import_module(name), "ENV", {}))
    return mapping


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def require_binary(name: str, apt: str, candidates: tuple[str, ...] = ()) -> Path:
    """Return the path of a server binary, or skip (fail under REQUIRE_SERVICES=1)."""
    for candidate in (*candidates, name):
        found = shutil.which(candidate)
        if found:
            return Path(found)
    message = f"{name} is not installed: sudo apt-get install {apt}  (or run .ci/run)"
    if services_required():
        pytest.fail(f"REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(message)
