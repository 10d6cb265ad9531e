"""axe-core finds no accessibility violations on any page, in light or dark mode.

Code blocks are most of the cost: axe's colour-contrast rule looks at every token of
every block, and each token's colour comes from its highlighting class — the same CSS on
every page. So every page is checked with its code blocks left out, and the code blocks
are checked on a few pages that, together, use every token class any page uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.site.conftest import Build, Visit
from tests.site.test_browser import PAGES

AXE = Axe()
SCHEMES = ("light", "dark")  # the palette follows the system's preference
CODE = [["pre"]]  # code blocks and notebook cells (and their outputs)

PRE = re.compile(r"<pre\b.*?</pre>", re.S)
TOKEN = re.compile(r'<span class="([\w -]+)"')


def code_token_classes(html: str) -> set[str]:
    """The highlighting classes used inside a page's code blocks; notebook cells, styled
    by mkdocs-jupyter's own CSS, count as classes of their own."""
    classes = set()
    for block in PRE.findall(html):
        classes |= {c for span in TOKEN.findall(block) for c in span.split()}
    if "highlight-ipynb" in html:
        classes = {f"ipynb:{c}" for c in classes}
    return classes


def pages_covering_every_code_token(site: Path) -> tuple[list[str], set[str], set[str]]:
    """A greedy set cover: pages (as URL paths) whose code blocks, together, use every
    token class that the site's code blocks use. Returns (pages, covered, all classes)."""
    used = {}
    for html in site.rglob("*.html"):
        path = html.parent.relative_to(site).as_posix()
        used[("" if path == "." else path + "/")] = code_token_classes(html.read_text("utf-8"))
    everything = set().union(*used.values())
    chosen, covered = [], set()
    while left := {page: classes - covered for page, classes in used.items() if classes - covered}:
        page = max(left, key=lambda p: len(left[p]))
        chosen.append(page)
        covered |= used[page]
    return chosen, covered, everything


@pytest.mark.parametrize("path", PAGES)
def test_no_axe_violations_outside_code_blocks_in_light_or_dark_mode(visit: Visit, path: str):
    visit.page.goto(visit.base + path, wait_until="load")
    for scheme in SCHEMES:
        visit.page.emulate_media(color_scheme=scheme)
        results = AXE.run(visit.page, context={"exclude": CODE})
        assert results.violations_count == 0, f"{scheme} mode:\n{results.generate_report()}"


def test_code_blocks_have_no_axe_violations_in_light_or_dark_mode(visit: Visit, built_site: Build):
    pages, covered, everything = pages_covering_every_code_token(built_site.directory)
    assert covered == everything and len(everything) > 20, (covered, everything)
    assert len(pages) < len(PAGES) / 2, pages  # the point: a few pages, not all of them
    for path in pages:
        visit.page.goto(visit.base + path, wait_until="load")
        for scheme in SCHEMES:
            visit.page.emulate_media(color_scheme=scheme)
            results = AXE.run(visit.page, context={"include": CODE})
            assert results.violations_count == 0, (
                f"{path}, {scheme} mode:\n{results.generate_report()}"
            )


def test_code_token_classes_are_read_from_inside_code_blocks_only():
    html = '<pre><code><span class="k">def</span> <span class="rare">x</span></code></pre>'
    assert code_token_classes(html) == {"k", "rare"}
    assert code_token_classes("<p>no code</p>") == set()
