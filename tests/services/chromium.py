"""Chromium, the browser the site tests drive (Debian's packages, through Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import Install, Missing, find_binary, services_required
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


# Chromium's "old headless" build: the same Blink and V8 without the browser's UI layers,
# which Playwright itself uses for headless runs. Per page test (load, diagrams, axe), 4 of 4
# interleaved runs of 12 pages cost 18% less CPU (1.35 -> 1.11 CPU-s a page) and a launch
# 1.3 instead of 3.4 CPU-s, with the same axe results on every page.
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"


@pytest.fixture(scope="session")
def site_chromium(chromium: Path) -> Path:
    """The browser the site tests drive: Debian's chromium-headless-shell (CI installs it),
    else, on a laptop without it, the full Chromium (the same engine, slower)."""
    try:
        return find_binary(
            "chromium-headless-shell",
            Install(apt="chromium-headless-shell", brew="--cask chromium"),
            (HEADLESS_SHELL,),
        )
    except Missing as error:
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {error}", pytrace=False)
        return chromium
