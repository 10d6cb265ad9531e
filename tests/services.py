"""Real servers for tests: found on the system, started on loopback, never mocked.

The pattern every service follows (see CONTRIBUTING.md, "Services"):

    path = require_binary("chromium", apt="chromium")

- the binary comes from a Debian package that `.ci/run` installs;
- when it is missing, the test is *skipped* with the command that installs it,
  so `make test` passes on a fresh laptop;
- unless REQUIRE_SERVICES=1 (CI sets it): then a missing binary *fails* the test,
  so CI can never silently skip the real thing.

Fixtures that start a service bind 127.0.0.1 with an ephemeral port, keep their
files in a temp dir, wait on a readiness signal (never a sleep) and stop the
process at the end of the session.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",  # we run as root in CI containers
    "--disable-gpu",
    "--disable-background-networking",  # no calls home: the machine has no network
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def require_binary(name: str, apt: str, candidates: tuple[str, ...] = ()) -> Path:
    """Return the path of a server binary, or skip (fail under REQUIRE_SERVICES=1)."""
    for candidate in (*candidates, name):
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return Path(found)
    message = f"{name} is not installed: sudo apt-get install {apt}  (or run .ci/run)"
    if services_required():
        pytest.fail(f"REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, driven by Playwright (browser downloads do not work here)."""
    return require_binary("chromium", apt="chromium", candidates=("/usr/bin/chromium",))
