"""Chromium, the browser the site tests drive (Debian's package, through Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import require_binary

# Playwright starts it; these flags keep it off the network (the machine has none).
CHROMIUM_FLAGS = [
    "--no-sandbox",  # we run as root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium (browser downloads do not work here, so never Playwright's own)."""
    return require_binary(
        "chromium", apt="chromium", candidates=("/usr/bin/chromium",), brew="--cask chromium"
    )
