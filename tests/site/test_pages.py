"""Every page, one navigation each, every check that depends on its content: it renders
from the local server only (no request leaves the origin, no console error), every
diagram draws, and axe-core finds no violation of any rule but the colour rules, outside
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
ALL_MERMAID_SVG = """() => {
  const fences = document.querySelectorAll("pre.mermaid").length;  // not yet drawn
  const drawn = [...document.querySelectorAll("div.mermaid")];
  return fences === 0 && drawn.every(d => d.shadowRoot && d.shadowRoot.querySelector("svg"));
}"""


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


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_draws_its_diagrams_and_passes_axe_outside_code(visit: Visit, path: str):
    response = visit.page.goto(visit.base + path, wait_until="networkidle")
    assert response and response.status == 200
    assert visit.page.locator("article h1").first.is_visible()
    assert visit.page.title().endswith("Backend Fundamentals")
    visit.page.wait_for_function(ALL_MERMAID_SVG)  # every diagram on the page is drawn
    results = AXE.run(visit.page, context=CODE, options=ALL_BUT_COLOUR)
    assert results.violations_count == 0, results.generate_report()
    clean(visit)
