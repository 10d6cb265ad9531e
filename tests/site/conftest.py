"""The built site, served on loopback, and Chromium driving it.

The site is built once per test run (about 10 s of CPU): the first pytest-xdist worker
that needs it builds it into the run's shared temp dir while holding a lock, and every
other worker waits for that lock and reuses the result; the colour cover of its pages
(tests/site/cover.py) is worked out once the same way. Each worker serves it and drives its own
Chromium, so the browser tests spread over every worker.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services.chromium import CHROMIUM_FLAGS
from tests.site.cover import SiteStyles, site_styles_of
from tests.snippet_output import ROOT
from tests.topic import partial_site_config

# Hang guards, not budgets. The first browser test in each worker waits for the site to
# be built (by whichever worker got there first) and for Chromium to start: on a loaded
# machine (a flake hunt with four helpers at work, load 15) that alone passed the suite's
# 120 s per-test timeout, and the session fixture's error failed all 65 page tests.
BUILD_TIMEOUT = 600
SITE_TEST_TIMEOUT = BUILD_TIMEOUT + 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests get a timeout that covers the shared site build they may wait for."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SITE_TEST_TIMEOUT))


@dataclass
class Build:
    directory: Path
    returncode: int
    log: str
    seconds: float


def build(out: Path, topic: str | None = None, config_text: str | None = None) -> Build:
    """`mkdocs build --strict` into `out`, exactly as the Pages workflow runs it; or for
    `make test T=<page>`, that page alone (tests/topic.py: partial_site_config); or with
    the config `config_text` (read from stdin, so paths stay relative to the repository)."""
    start = time.perf_counter()
    if topic is not None:
        config_text = partial_site_config(topic)
    config = ["--strict"] if config_text is None else ["--config-file", "-"]  # "-": stdin
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", *config, "--site-dir", str(out)],
        cwd=ROOT,
        input=config_text,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    return Build(out, proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start)


def once_per_run(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], dict]) -> dict:
    """`make(shared dir)`, run by the first xdist worker that asks while it holds a lock;
    every other worker waits for that lock and reads the saved result (JSON)."""
    base = factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = base.parent if worker else base  # xdist workers' temp dirs sit in the run's
    record = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker makes it; the others wait here
        try:
            if not record.exists():
                record.write_text(json.dumps(make(shared)))
            return json.loads(record.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Build:
    """The site, built once per test run and shared by every xdist worker (with T=, only
    the page: its browser checks need nothing else)."""

    def make(shared: Path) -> dict:
        done = build(shared / "site", pytestconfig.getoption("--topic"))
        return {**done.__dict__, "directory": str(done.directory)}

    saved = once_per_run(tmp_path_factory, "site-build", make)
    return Build(Path(saved["directory"]), saved["returncode"], saved["log"], saved["seconds"])


@pytest.fixture(scope="session")
def site_styles(tmp_path_factory: pytest.TempPathFactory, built_site: Build) -> SiteStyles:
    """Every page's styled-element keys and the colour cover (tests/site/cover.py): the
    whole site parsed once per test run, not once per worker and module."""
    assert built_site.returncode == 0, built_site.log

    def make(shared: Path) -> dict:
        styles = site_styles_of(built_site.directory)
        return {"cover": styles.cover, "keys": {p: sorted(k) for p, k in styles.keys.items()}}

    saved = once_per_run(tmp_path_factory, "site-styles", make)
    return SiteStyles(saved["cover"], {page: set(keys) for page, keys in saved["keys"].items()})


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site_url(built_site: Build) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1 (an ephemeral port), like GitHub Pages serves it."""
    assert built_site.returncode == 0, built_site.log
    handler = functools.partial(QuietHandler, directory=str(built_site.directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


@pytest.fixture(scope="module")
def browser(site_chromium: Path) -> Iterator[object]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an
    asyncio event loop running in this thread while it is open, so every later test on
    the same worker that calls asyncio.run() failed with "cannot be called from a running
    event loop" — which random test order found (make flakes). A module's tests run
    together, so the browser starts once per module and worker."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(site_chromium), args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """A browser tab that records every request and every console error."""

    page: object
    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def off_origin(self) -> list[str]:
        local = ("data:", "blob:", "about:")
        return [u for u in self.requests if not u.startswith(self.base) and not u.startswith(local)]


# Material draws Mermaid diagrams into a *closed* shadow root; open it so tests can look.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attach.call(this, {...init, mode: "open"});
};
"""


@contextmanager
def open_tab(browser, site_url: str, *init_scripts: str) -> Iterator[Visit]:
    """A tab in a fresh browser context (light scheme) that records requests and errors."""
    context = browser.new_context(color_scheme="light")
    for script in (OPEN_SHADOW_ROOTS, *init_scripts):
        context.add_init_script(script)

    def sitemap_of_this_server(route) -> None:
        """Material's instant navigation swaps in only pages listed in sitemap.xml, whose
        URLs come from site_url, and it compares scheme and host, not port: on the test
        server's port every click loaded a full page, so no test saw instant navigation.
        Served with this server's origin, as a site deployed at its site_url has it."""
        body = route.fetch().text()
        route.fulfill(body=re.sub(r"<loc>https?://[^/]+/", f"<loc>{site_url}", body))

    context.route("**/sitemap.xml", sitemap_of_this_server)
    page = context.new_page()
    # A hang guard, not a measurement: at load 26 (flake hunt, 4 workers) a `goto` waiting for
    # networkidle on protocols/http2/ took over 10 s and failed a colour-rule test.
    page.set_default_timeout(30_000)
    tab = Visit(page, site_url)
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("console", lambda msg: tab.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def visit(browser, site_url: str) -> Iterator[Visit]:
    with open_tab(browser, site_url) as tab:
        yield tab
