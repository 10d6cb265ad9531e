"""Every page, one visit each, every check that depends on its content: it renders from
the local server only (no request leaves the origin, no console error), every diagram
has one image per colour scheme, both load and have alt text, and the light one is the one
shown (no page asks for Mermaid's script), and axe-core finds no violation of any rule but
the colour rules, outside its code blocks. On the pages of the colour cover
(tests/site/cover.py), the same visit also runs every rule on the code blocks and the
colour rules on the whole page, in light and dark, and checks that each scheme shows its
own diagram images: those depend only on the theme's CSS for the kinds of element a page
uses (for diagrams, Material's `#only-light` / `#only-dark` rules), and the cover uses
every kind the site has (test_accessibility.py checks that).

The pages share one browser tab per worker (a fresh context per page cost more than the
checks of a small page), which loads axe-core once per document as an init script
instead of sending its 560 KB over the wire for every run; each test starts in the light
scheme with the tab's request and error logs emptied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from axe_playwright_python.base import AxeResults
from axe_playwright_python.sync_playwright import Axe

from tests.site.conftest import SiteStyles, Visit, open_tab
from tests.site.cover import ALL_BUT_COLOUR, ONE_OF_EACH_KIND, ONLY_COLOUR, SCHEMES
from tests.snippet_output import ROOT

AXE = Axe()
CODE = {"exclude": [["pre"]]}  # code blocks and notebook cells, with their outputs
FLATTEN_CODE = """() => document.querySelectorAll("pre code")
  .forEach(c => { c.textContent = c.textContent })"""
# Diagram images load lazily; asked to load now, each must arrive and decode as an image.
DIAGRAMS = ".diagram img"
LOAD_ALL = f"""() => document.querySelectorAll("{DIAGRAMS}").forEach(i => i.loading = "eager")"""
ALL_LOADED = f"""() => [...document.querySelectorAll("{DIAGRAMS}")]
  .every(i => i.complete && i.naturalWidth > 0)"""
# With content.lazy, Material sets a code block up (its copy button, in a <nav> inside the
# <pre>) only when the block first scrolls into view, and axe runs without scrolling: scroll
# each block into view, a frame pair each, and wait until every shown block has its button
# with a11y.js's role="none" (blocks folded in `??? example` or in a hidden tab stay as
# they are: test_browser.py opens one of each and copies). The buttons sit inside `pre`, which
# only the cover pages' code run includes, so only those pages pay for it: 0.01-0.49 s a
# page, 3.9 s over the 16 cover pages in one run on a busy machine (0.4-1.0 s on pages with
# 9-25 blocks, which is why the other pages skip it).
SET_UP_CODE = """async () => {
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  for (const pre of document.querySelectorAll(".md-typeset pre")) {
    pre.scrollIntoView();
    await frame();
  }
  window.scrollTo(0, 0);
}"""
CODE_SET_UP = """() => [...document.querySelectorAll(".highlight pre > code")]
  .filter(c => c.checkVisibility())
  .every(c => c.parentElement.querySelector("nav.md-code__nav[role=none]"))"""
SHOWN = f"""() => [...document.querySelectorAll("{DIAGRAMS}")]
  .filter(i => i.getClientRects().length).map(i => i.getAttribute("src"))"""


def page_urls() -> list[str]:
    """Every page of the site, as its path under the site root (index.md -> its folder)."""
    docs = ROOT / "docs"
    urls = []
    for source in sorted([*docs.rglob("*.md"), *docs.rglob("*.ipynb")]):
        path = source.relative_to(docs).with_suffix("").as_posix()
        urls.append(
            ""
            if path == "index"
            else path.removesuffix("index")
            if path.endswith("/index")
            else f"{path}/"
        )
    return urls


PAGES = page_urls()


def clean(visit: Visit) -> None:
    assert visit.off_origin() == [], "requests left the origin"
    assert visit.errors == [], "console errors"


def run_axe(visit: Visit, context: dict | None, options: dict) -> AxeResults:
    """axe-core, already in the page (the tab's init script), on `context` (or all)."""
    return AxeResults(
        visit.page.evaluate("([c, o]) => axe.run(c || document, o)", [context, options])
    )


def switch_scheme(visit: Visit, scheme: str, palette: str) -> None:
    """The system's colour scheme; Material's palette follows it on the next event."""
    visit.page.emulate_media(color_scheme=scheme)
    visit.page.wait_for_function(f"() => document.body.dataset.mdColorScheme === '{palette}'")


def check_diagrams(visit: Visit) -> None:
    """Every diagram: one image per scheme, marked for Material's `#only-<scheme>` rules,
    both load, each has alt text, and in the light scheme (the page's) the light one is
    shown; no page draws diagrams with a script. Which image each scheme shows is the
    theme's CSS for those marks, the same on every page: check_shown_diagrams runs in
    both schemes on the cover pages (a kind of element like any other: `diagram>img.`),
    where the colour checks switch schemes anyway. The two switches cost 0.2-0.7 CPU-s a
    page (Chromium's processes, 8 pages, 2 runs)."""
    page = visit.page
    images = page.locator(DIAGRAMS)
    count = images.count()
    assert count % 2 == 0 and page.locator(".diagram").count() == count // 2
    assert all(images.evaluate_all("is => is.map(i => i.alt.trim())")), "a diagram without alt"
    assert page.locator(".mermaid").count() == 0
    assert not [u for u in visit.requests if "mermaid" in u.lower()], "a page loads Mermaid"
    if not count:
        return
    pairs = page.locator(".diagram").evaluate_all(
        "ds => ds.map(d => [...d.querySelectorAll('img')].map(i => i.getAttribute('src')))"
    )
    for pair in pairs:  # one diagram's two images: x.light.svg#only-light, x.dark.svg#only-dark
        assert len(pair) == 2 and len({src.rsplit(".", 2)[0] for src in pair}) == 1, pair
        assert [s.rsplit(".", 2)[-2:] for s in pair] == [
            [scheme, f"svg#only-{scheme}"] for scheme, _ in SCHEMES
        ], pair
    # Nothing of the page's own may change which image shows (the cover's keys see only
    # tags and classes): no attribute but these on the images (no inline style, no hidden),
    # and no stylesheet in the article. (Inline style on an ancestor applies to both
    # images alike, and Material's script sets some on tabs.)
    attributes = images.evaluate_all("is => is.map(i => i.getAttributeNames().sort().join())")
    assert set(attributes) == {"alt,height,loading,src,width"}, attributes
    assert page.locator("article style, article link[rel=stylesheet]").count() == 0
    page.evaluate(LOAD_ALL)
    page.wait_for_function(ALL_LOADED)
    check_shown_diagrams(visit, SCHEMES[0][0], count)


def check_shown_diagrams(visit: Visit, scheme: str, count: int) -> None:
    """In `scheme`, each diagram shows exactly one image: the one for that scheme."""
    shown = visit.page.evaluate(SHOWN)
    assert len(shown) == count // 2, (scheme, shown)
    assert all(src.endswith(f".{scheme}.svg#only-{scheme}") for src in shown), shown


# axe-core in every document the tab opens, as an init script; as a string evaluated only
# on a page of the site, so about:blank (where each test leaves the tab) does not parse its
# 560 KB: 0.12 CPU-s less per page (3 of 3 interleaved pairs, 12 pages each, 4-5% lower).
AXE_ON_SITE_PAGES = f"if (location.href !== 'about:blank') (0, eval)({json.dumps(AXE.axe_script)});"


@pytest.fixture(scope="module")
def tab(browser, site_url: str) -> Iterator[Visit]:
    with open_tab(browser, site_url, AXE_ON_SITE_PAGES) as tab:
        yield tab


@pytest.fixture
def one_tab(tab: Visit) -> Iterator[Visit]:
    """The shared tab, in the light scheme, with nothing logged yet; left on a blank
    page after the test, so nothing the last page does is logged for the next."""
    tab.page.emulate_media(color_scheme="light")
    tab.requests.clear()
    tab.errors.clear()
    yield tab
    tab.page.goto("about:blank")


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_shows_its_diagrams_and_passes_axe(
    one_tab: Visit, site_styles: SiteStyles, path: str
):
    visit = one_tab
    # "load", not "networkidle" (which waits 500 ms of quiet on every page): a request the
    # page makes later is still seen by clean() at the end, after axe has run.
    response = visit.page.goto(visit.base + path, wait_until="load")
    assert response and response.status == 200
    assert visit.page.locator("article h1").first.is_visible()
    assert visit.page.title().endswith("Backend Fundamentals")
    check_diagrams(visit)
    # axe builds its tree of the whole document, excluded parts too, and three quarters of
    # a topic page's elements are the highlighter's token spans inside code blocks. Their
    # text stays; the spans go (or, on a cover page, all but one span of each kind, for
    # the checks below). Code blocks are excluded here. (tcp-udp: 4,090 elements -> 884;
    # axe about 2x faster.)
    in_cover = path in site_styles.cover
    if in_cover:
        visit.page.evaluate(SET_UP_CODE)
        visit.page.wait_for_function(CODE_SET_UP)
        pruned = visit.page.evaluate(ONE_OF_EACH_KIND, "pre")
        assert pruned["after"] == pruned["before"], "a kind of element was lost"
    else:
        visit.page.evaluate(FLATTEN_CODE)
    results = run_axe(visit, CODE, ALL_BUT_COLOUR)
    assert results.violations_count == 0, results.generate_report()
    if in_cover:
        check_code_and_colours(visit)
    clean(visit)


def check_code_and_colours(visit: Visit) -> None:
    """Every rule on the code blocks; the colour rules on the whole page in light and
    dark, seeing one element of each kind (cover.ONE_OF_EACH_KIND); and, before that
    pruning leaves one image of the two per diagram, the images the dark scheme shows
    (check_diagrams has checked the light scheme's, on every page)."""
    diagrams = visit.page.locator(DIAGRAMS).count()
    if diagrams:
        switch_scheme(visit, *SCHEMES[1])
        check_shown_diagrams(visit, SCHEMES[1][0], diagrams)
    pruned = visit.page.evaluate(ONE_OF_EACH_KIND, None)
    assert pruned["after"] == pruned["before"], "a kind of element was lost"
    if visit.page.locator("pre").count():  # axe refuses an include that matches nothing
        code = run_axe(visit, {"include": [["pre"]]}, ALL_BUT_COLOUR)
        assert code.violations_count == 0, f"code:\n{code.generate_report()}"
    for scheme, palette in SCHEMES[::-1] if diagrams else SCHEMES:  # from the one it is in
        switch_scheme(visit, scheme, palette)
        results = run_axe(visit, None, ONLY_COLOUR)
        assert results.violations_count == 0, f"{scheme}:\n{results.generate_report()}"
