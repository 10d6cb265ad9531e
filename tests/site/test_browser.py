"""The site's shared behaviour in a real browser (Debian's Chromium via Playwright):
search works, diagrams show as SVG images (also after instant navigation),
the copy button copies, dark mode toggles — with no off-origin request and no console
error. Every page's own checks are in test_pages.py."""

from __future__ import annotations

import json

from playwright.sync_api import Locator

from tests.site.conftest import Visit
from tests.site.test_pages import clean

DIAGRAM_SHOWN = """() => [...document.querySelectorAll(".diagram img")]
  .some(i => i.getClientRects().length && i.complete && i.naturalWidth > 0)"""


SEARCH_READY = (
    "() => !/Initializing/.test(document.querySelector('.md-search-result__meta').textContent)"
)


def open_search(visit: Visit) -> Locator:
    """Click the search box (the reader's intent) and wait until search is ready."""
    box = visit.page.locator("input.md-search__input")
    box.click()
    visit.page.wait_for_function(SEARCH_READY)
    return box


def search(visit: Visit, term: str, *, home: bool = True) -> list[str]:
    """Type a term into the site's search (on the home page, or on the page the tab is
    on); the result links, best first."""
    if home:
        visit.page.goto(visit.base, wait_until="networkidle")
    box = open_search(visit)
    # One query for the whole term (typing it key by key ran one per key, and the results
    # of a shorter query could be read before the last one replaced them).
    box.fill(term)
    box.dispatch_event("keyup")  # search reacts to key events
    results = visit.page.locator(".md-search-result__item > a")
    results.first.wait_for()
    return results.evaluate_all("links => links.map(a => a.getAttribute('href'))")


def test_search_finds_handshake(visit: Visit):
    hrefs = search(visit, "handshake")
    assert any("protocols/tcp-udp/" in href for href in hrefs), hrefs
    assert visit.page.locator(".md-search-result mark", has_text="handshake").count() > 0
    clean(visit)


def test_search_puts_the_pages_that_explain_a_term_first_and_previews_prose(visit: Visit):
    """The index holds prose, headings and questions, not code (hooks/search_index.py),
    and a page's front-matter `tags` (the terms it explains) outrank a word that is merely
    frequent: Material's search splits a query at hyphens, so "TIME-WAIT" is "time" or
    "wait", and without the tag a page that says "time" often came first."""
    hol = search(visit, "head-of-line")
    assert any(f"protocols/{page}/" in hol[0] for page in ("http1", "http2", "http3")), hol
    assert visit.page.locator(".md-search-result pre").count() == 0
    time_wait = search(visit, "TIME-WAIT")
    assert "protocols/tcp-udp/" in time_wait[0], time_wait
    clean(visit)


def search_requests(visit: Visit) -> tuple[list[str], list[str]]:
    """The requests for the search index and for the search worker's script so far."""
    index = [u for u in visit.requests if u.endswith("search/search_index.json")]
    worker = [u for u in visit.requests if "/javascripts/workers/search." in u]
    return index, worker


def test_the_search_index_and_worker_load_only_when_the_reader_starts_a_search(visit: Visit):
    """search-on-demand.js holds back the index (128 KB gzip) and Material's search worker
    until the search box takes focus; a page opened from a result (?h=) gets the index at
    once, for its highlights, and the worker still only on intent. Search then works (the
    other search tests type a query), also when the page that held them back was left by
    instant navigation first (the script runs once; Material keeps its worker)."""
    page = visit.page
    page.goto(visit.base + "protocols/tcp-udp/", wait_until="networkidle")
    assert search_requests(visit) == ([], [])
    open_search(visit)
    assert tuple(map(len, search_requests(visit))) == (1, 1), visit.requests
    visit.requests.clear()

    page.goto(visit.base + "protocols/tcp-udp/?h=handshake", wait_until="networkidle")
    # The highlights need the index, so they show it has arrived (on a busy machine it was
    # asked for later than the network's first 500 ms of quiet: 2 of 8 runs at load ~8).
    page.locator("article mark", has_text="handshake").first.wait_for()
    assert tuple(map(len, search_requests(visit))) == (1, 0), visit.requests
    visit.requests.clear()

    page.goto(visit.base + "paths/broad/", wait_until="networkidle")
    page.evaluate("() => { window.samePage = true; }")  # gone if a full load happens
    page.locator("article a[href*='tcp-udp']").first.click()
    page.wait_for_function("() => document.title.startsWith('TCP')")
    assert page.evaluate("() => window.samePage === true"), "not instant navigation"
    assert search_requests(visit) == ([], [])
    hrefs = search(visit, "handshake", home=False)
    assert any("tcp-udp" in href for href in hrefs), hrefs
    assert tuple(map(len, search_requests(visit))) == (1, 1), visit.requests
    clean(visit)


def test_the_search_index_has_prose_and_questions_but_no_code(built_site):
    index = json.loads((built_site.directory / "search/search_index.json").read_text())
    text = " ".join(doc["text"] for doc in index["docs"])
    assert "three-way handshake" in text and "How many <code>recv()</code> calls" in text
    assert "class EchoHandler" not in text  # a snippet's code, on the TCP page
    assert "<pre" not in text


def test_the_sequence_diagram_is_an_svg_image_with_the_handshake_in_it(visit: Visit):
    visit.page.goto(visit.base + "protocols/tcp-udp/", wait_until="networkidle")
    diagram = visit.page.locator(".diagram img").first
    diagram.scroll_into_view_if_needed()  # it loads lazily
    visit.page.wait_for_function(DIAGRAM_SHOWN)
    src = diagram.evaluate("i => i.currentSrc")
    svg = visit.page.request.get(src)
    assert svg.ok and svg.headers["content-type"].startswith("image/svg+xml")
    assert "SYN" in svg.text() and "FIN" in svg.text() and "<script" not in svg.text()
    assert not [u for u in visit.requests if u.endswith(".js") and "mermaid" in u]
    clean(visit)


def test_a_diagram_shows_after_instant_navigation_from_a_page_without_diagrams(visit: Visit):
    visit.page.goto(visit.base + "paths/broad/", wait_until="networkidle")
    visit.page.evaluate("() => { window.samePage = true; }")  # gone if a full load happens
    visit.page.locator("article a[href*='tcp-udp']").first.click()
    visit.page.wait_for_url("**/protocols/tcp-udp/")
    visit.page.wait_for_function("() => document.title.startsWith('TCP')")
    assert visit.page.evaluate("() => window.samePage === true"), "not instant navigation"
    visit.page.locator(".diagram img").first.scroll_into_view_if_needed()
    visit.page.wait_for_function(DIAGRAM_SHOWN)
    clean(visit)


def copy(visit: Visit, block) -> str:
    """Hover a code block (which scrolls it into view: with content.lazy, Material adds the
    copy button only then), press its copy button, and read the clipboard."""
    visit.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    block.hover()
    block.locator("button[title='Copy to clipboard']").click()
    return visit.page.evaluate("() => navigator.clipboard.readText()")


def test_copy_button_copies_the_code_block(visit: Visit):
    visit.page.goto(visit.base + "protocols/tcp-udp/", wait_until="networkidle")
    block = visit.page.locator("div.highlight").filter(has_text="class EchoHandler").first
    assert "class EchoHandler(socketserver.BaseRequestHandler):" in copy(visit, block)
    clean(visit)


def test_copy_button_copies_a_block_folded_in_an_example(visit: Visit):
    """A block in a closed `??? example` is never in view until opened: Material must set it
    up when the reader opens it (content.lazy)."""
    visit.page.goto(visit.base + "protocols/tcp-udp/", wait_until="networkidle")
    folded = visit.page.locator("details").filter(has_text="The lossy relay").first
    assert folded.get_attribute("open") is None
    block = folded.locator("div.highlight").first
    assert block.locator("nav.md-code__nav").count() == 0  # not set up while folded
    folded.locator("summary").click()
    assert "class LossyRelay" in copy(visit, block)
    assert block.locator("nav.md-code__nav[role=none]").count() == 1  # a11y.js saw it too
    clean(visit)


def test_copy_button_copies_a_block_in_a_content_tab(visit: Visit):
    """A block in a tab that is not selected is hidden until its tab is chosen."""
    visit.page.goto(visit.base + "databases/acid/", wait_until="networkidle")
    tabs = visit.page.locator(".tabbed-set").first
    tabs.locator("label", has_text="PostgreSQL").click()
    block = tabs.locator("div.highlight").filter(has_text="conn.transaction()").first
    assert "with conn.transaction():" in copy(visit, block)
    clean(visit)


def test_dark_mode_toggles_and_follows_the_system(visit: Visit, browser, site_url: str):
    page = visit.page
    page.goto(visit.base, wait_until="networkidle")
    scheme = "() => document.body.getAttribute('data-md-color-scheme')"
    assert page.evaluate(scheme) == "default"  # the system prefers light
    for _ in range(2):  # auto -> light -> dark
        page.locator("form[data-md-component='palette'] label:visible").first.click()
    assert page.evaluate(scheme) == "slate"
    clean(visit)

    dark = browser.new_context(color_scheme="dark")  # a system that prefers dark
    try:
        tab = dark.new_page()
        tab.goto(site_url, wait_until="networkidle")
        assert tab.evaluate(scheme) == "slate"
    finally:
        dark.close()


# A code block wider than a 390 px screen, below the fold, scrolled into view: with
# content.lazy, Material sets the block up only now (copy button, size watch) and on a device
# without hover it takes tabindex off the block (components/content/code: `scrollable && hover`).
WIDE_BELOW_FOLD = """() => [...document.querySelectorAll(".md-typeset pre > code")].findIndex(c =>
  c.getBoundingClientRect().top > 2 * innerHeight && c.scrollWidth > c.clientWidth)"""
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
SET_UP = """i => document.querySelectorAll(".md-typeset pre > code")[i]
  .parentElement.querySelector("nav.md-code__nav") !== null"""


def test_a_wide_code_block_keeps_keyboard_focus_on_a_touch_screen(browser, site_url: str):
    """WCAG 2.1.1 (scrollable-region-focusable) on a phone: a wide block stays focusable
    after Material's lazy set-up (a11y.js item 2). The desktop tests have hover, where
    Material keeps the tabindex itself, and Lighthouse disables this axe rule."""
    phone = browser.new_context(
        has_touch=True, is_mobile=True, viewport={"width": 390, "height": 844}
    )
    try:
        page = phone.new_page()
        page.goto(site_url + "protocols/tcp-udp/", wait_until="load")
        assert not page.evaluate("() => matchMedia('(hover)').matches")  # a touch device
        index = page.evaluate(WIDE_BELOW_FOLD)
        assert index >= 0, "no wide code block below the fold"
        code = page.locator(".md-typeset pre > code").nth(index)
        assert page.evaluate(f"i => !({SET_UP[5:]})", index), "set up before it was seen"
        code.page.wait_for_function(  # a11y.js marks it once laid out
            "i => document.querySelectorAll('.md-typeset pre > code')[i].tabIndex === 0", arg=index
        )
        code.scroll_into_view_if_needed()
        page.wait_for_function(SET_UP, arg=index)
        # Material's size watch reports after the set-up; let two frames pass so its
        # tabindex removal (and any fix of a11y.js) has run before looking.
        page.evaluate(TWO_FRAMES)
        # Unfixed a11y.js failed here (tabindex None): Material had taken it off.
        assert code.get_attribute("tabindex") == "0"
    finally:
        phone.close()
