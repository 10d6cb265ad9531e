"""Every page, one navigation each, every check that depends on its content: it renders
from the local server only (no request leaves the origin, no console error), every
diagram image loads in both colour schemes with its alt text (and no page asks for
Mermaid's script), and axe-core finds no violation of any rule but the colour rules, outside
its code blocks.

The colour rules (contrast, links told apart from text) depend only on the theme's CSS
for the element classes a page uses, in each colour scheme; code blocks are markup the
highlighter generates, the same kinds of element on every page. test_accessibility.py
runs every rule on code blocks, and the colour rules in light and dark, on a set of
pages that together use every element class the site uses (complete over those keys by
construction; its docstring says what the keys cannot see). Running them on every page
in both schemes was most of the browser suite's time, and checked the same CSS and
markup again and again.
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.site.conftest import Visit
from tests.snippet_output import ROOT

AXE = Axe()
COLOUR_RULES = ("color-contrast", "link-in-text-block")  # the WCAG AA ones axe runs
ALL_BUT_COLOUR = {
    "resultTypes": ["violations"],
    "rules": {rule: {"enabled": False} for rule in COLOUR_RULES},
}
CODE = {"exclude": [["pre"]]}  # code blocks and notebook cells, with their outputs
FLATTEN_CODE = """() => document.querySelectorAll("pre code")
  .forEach(c => { c.textContent = c.textContent })"""
# Diagram images load lazily; asked to load now, each must arrive and decode as an image.
DIAGRAMS = ".diagram img"
LOAD_ALL = f"""() => document.querySelectorAll("{DIAGRAMS}").forEach(i => i.loading = "eager")"""
ALL_LOADED = f"""() => [...document.querySelectorAll("{DIAGRAMS}")]
  .every(i => i.complete && i.naturalWidth > 0)"""
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


def check_diagrams(visit: Visit) -> None:
    """Every diagram: both images load, each has alt text, and the one shown is the one
    for the colour scheme (one per diagram); no page draws diagrams with a script."""
    page = visit.page
    images = page.locator(DIAGRAMS)
    count = images.count()
    assert count % 2 == 0 and page.locator(".diagram").count() == count // 2
    assert all(images.evaluate_all("is => is.map(i => i.alt.trim())")), "a diagram without alt"
    assert page.locator(".mermaid").count() == 0
    assert not [u for u in visit.requests if "mermaid" in u.lower()], "a page loads Mermaid"
    if not count:
        return
    page.evaluate(LOAD_ALL)
    page.wait_for_function(ALL_LOADED)
    for scheme, palette in (("light", "default"), ("dark", "slate")):
        page.emulate_media(color_scheme=scheme)  # the palette follows it, on the next event
        page.wait_for_function(f"() => document.body.dataset.mdColorScheme === '{palette}'")
        shown = page.evaluate(SHOWN)
        assert len(shown) == count // 2, (scheme, shown)
        assert all(src.endswith(f".{scheme}.svg#only-{scheme}") for src in shown), shown
    page.emulate_media(color_scheme="light")


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_shows_its_diagrams_and_passes_axe_outside_code(visit: Visit, path: str):
    # "load", not "networkidle" (which waits 500 ms of quiet on every page): a request the
    # page makes later is still seen by clean() at the end, after axe has run.
    response = visit.page.goto(visit.base + path, wait_until="load")
    assert response and response.status == 200
    assert visit.page.locator("article h1").first.is_visible()
    assert visit.page.title().endswith("Backend Fundamentals")
    check_diagrams(visit)
    # axe builds its tree of the whole document, excluded parts too, and three quarters of
    # a topic page's elements are the highlighter's token spans inside code blocks. Their
    # text stays; the spans go. Code blocks are excluded here and checked with every rule
    # in test_accessibility.py. (tcp-udp: 4,090 elements -> 884; axe about 2x faster.)
    visit.page.evaluate(FLATTEN_CODE)
    results = AXE.run(visit.page, context=CODE, options=ALL_BUT_COLOUR)
    assert results.violations_count == 0, results.generate_report()
    clean(visit)
