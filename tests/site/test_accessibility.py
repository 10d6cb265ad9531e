"""axe-core's colour rules pass in light and dark mode, and every rule passes on code
blocks, on a set of pages that together use every styled element the site has; every
other rule runs on every page outside its code blocks (test_pages.py).

A colour comes from the theme's CSS for an element's tag and classes, in the context of
its nearest classed ancestor (a link inside an admonition, a token inside a notebook
cell), in one of two schemes: the same CSS on every page. So the colour rules run, in
both schemes, on a greedy set cover of the built site's pages over those keys — a few
pages instead of all of them. The cover is complete over those keys by construction;
what the tests check is the key model itself (contexts told apart, script text left
out) and that each half of axe still catches what it is for. What the keys do not see
— attributes other than class, states such as an open tab, elements added by script —
is a known limit of the cover. Notebook pages are styled by mkdocs-jupyter's own CSS,
so their keys count as keys of their own. Diagrams are SVG images (`make diagrams`): axe
sees an image and its alt text, not the drawing. On each cover page, axe sees one element
of each kind (ONE_OF_EACH_KIND): the same key model, applied in the page, and a test that a
faded code token is still caught after it.
"""

from __future__ import annotations

import html.parser
from pathlib import Path

import pytest

from tests.site.conftest import Build, Visit
from tests.site.test_pages import ALL_BUT_COLOUR, AXE, COLOUR_RULES, PAGES

SCHEMES = ("light", "dark")  # the palette follows the system's preference
ONLY_COLOUR = {"resultTypes": ["violations"], "runOnly": {"type": "rule", "values": COLOUR_RULES}}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip
UNSTYLED = {"script", "style", "noscript", "svg", "template"}  # no text axe would check


class StyledElements(html.parser.HTMLParser):
    """Collects one key per kind of element: `<ancestor classes>><tag>.<classes>`."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, tuple[str, ...]]] = []
        self.keys: set[str] = set()
        self.hidden = 0  # depth inside an element whose text is not drawn as text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.hidden or tag in UNSTYLED:
            self.hidden += tag not in VOID
            return
        classes = tuple(sorted((dict(attrs).get("class") or "").split()))
        context = next((".".join(c) for _, c in reversed(self.stack) if c), "")
        self.keys.add(f"{context}>{tag}.{'.'.join(classes)}")
        if tag not in VOID:
            self.stack.append((tag, classes))

    def handle_endtag(self, tag: str) -> None:
        if self.hidden:
            self.hidden -= 1
        elif tag not in VOID:
            while self.stack and self.stack.pop()[0] != tag:
                pass


def styled_keys(html: str) -> set[str]:
    parser = StyledElements()
    parser.feed(html)
    keys = parser.keys
    if "highlight-ipynb" in html:
        keys = {f"ipynb:{key}" for key in keys}
    return keys


def colour_cover(site: Path) -> tuple[list[str], set[str], set[str]]:
    """A greedy set cover: pages (as URL paths) that together use every styled-element
    key of the site. Returns (pages, keys covered, all keys)."""
    used = {}
    for page in site.rglob("*.html"):
        path = page.parent.relative_to(site).as_posix()
        if (site / "404.html") != page:
            used["" if path == "." else path + "/"] = styled_keys(page.read_text("utf-8"))
    everything = set().union(*used.values())
    chosen, covered = [], set()
    while left := {page: keys - covered for page, keys in used.items() if keys - covered}:
        page = max(left, key=lambda p: len(left[p]))
        chosen.append(page)
        covered |= used[page]
    return chosen, covered, everything


@pytest.fixture(scope="module")
def cover(built_site: Build) -> list[str]:
    pages, covered, everything = colour_cover(built_site.directory)
    assert covered == everything and len(everything) > 100, everything - covered
    assert PARTS <= len(pages) < len(PAGES) / 2, pages  # a few pages, not all of them
    return pages


def test_every_page_is_built_and_its_styled_elements_are_in_the_cover(cover, built_site: Build):
    every_page = [p for p in PAGES if (built_site.directory / p / "index.html").exists()]
    assert len(every_page) == len(PAGES)
    keys = set().union(*(styled_keys((built_site.directory / p / "index.html").read_text())
                         for p in cover))  # fmt: skip
    for path in every_page:
        page_keys = styled_keys((built_site.directory / path / "index.html").read_text())
        assert page_keys <= keys, (path, page_keys - keys)


# The cover is checked in parts, so they spread over the workers and each stays well
# inside the per-test timeout on a loaded machine (3 parts of ~4 pages hit 120 s at a
# load average of 19 in a flake hunt).
PARTS = 6


# The cover's checks see one element of each kind per page: every other element whose
# kind — the same key as above, in the live DOM — is already on the page is replaced by
# its own text, unless it holds an element of a kind not seen before. Under the key model
# the replaced elements are coloured exactly like the one kept; the text stays, so a code
# block keeps its width (monospace) and still scrolls; and a 2,000-token listing costs axe
# a few dozen elements instead of thousands. Returns the kinds before and after.
ONE_OF_EACH_KIND = """() => {
  const kind = (el) => {
    let context = "";
    for (let a = el.parentElement; a; a = a.parentElement)
      if (a.classList.length) { context = [...a.classList].sort().join("."); break; }
    return `${context}>${el.tagName.toLowerCase()}.${[...el.classList].sort().join(".")}`;
  };
  const kinds = () => new Set([...document.body.querySelectorAll("*")]
    .filter((el) => !el.closest("svg, script, style, noscript, template")).map(kind));
  const before = kinds(), seen = new Set(), keep = new Set([document.body]);
  const all = [...document.body.querySelectorAll("*")]
    .filter((el) => !el.closest("svg, script, style, noscript, template"));
  for (const el of all) {
    const k = kind(el);
    if (seen.has(k)) continue;
    seen.add(k);
    for (let a = el; a && !keep.has(a); a = a.parentElement) keep.add(a);
  }
  let removed = 0;
  for (const el of all)
    if (!keep.has(el) && keep.has(el.parentElement)) {
      el.replaceWith(document.createTextNode(el.textContent));
      removed += 1;
    }
  return { before: [...before].sort(), after: [...kinds()].sort(), removed };
}"""


@pytest.mark.parametrize("part", range(PARTS))
def test_colour_rules_in_light_and_dark_and_every_rule_on_code(visit, cover: list[str], part: int):
    for path in cover[part::PARTS]:
        visit.page.goto(visit.base + path, wait_until="networkidle")
        pruned = visit.page.evaluate(ONE_OF_EACH_KIND)
        assert pruned["after"] == pruned["before"], f"{path}: a kind of element was lost"
        if visit.page.locator("pre").count():  # axe refuses an include that matches nothing
            code = AXE.run(visit.page, context={"include": [["pre"]]}, options=ALL_BUT_COLOUR)
            assert code.violations_count == 0, f"{path}, code:\n{code.generate_report()}"
        for scheme in SCHEMES:
            visit.page.emulate_media(color_scheme=scheme)
            results = AXE.run(visit.page, options=ONLY_COLOUR)
            assert results.violations_count == 0, f"{path}, {scheme}:\n{results.generate_report()}"


def test_styled_keys_tell_contexts_apart_and_skip_what_is_not_text():
    plain = styled_keys('<p>a <a href="#">link</a></p>')
    boxed = styled_keys('<div class="admonition note"><p>a <a href="#">link</a></p></div>')
    assert ">a." in plain and "admonition.note>a." in boxed and not plain & boxed - {">p."}
    assert styled_keys("<script>var x = '<b>';</script><br><i>x</i>") == {">br.", ">i."}
    notebook = styled_keys('<div class="highlight-ipynb"><span class="k">def</span></div>')
    assert all(key.startswith("ipynb:") for key in notebook)


def test_the_split_rule_sets_still_catch_what_they_are_for(visit: Visit):
    """The colour rules catch grey-on-white text, and the per-page rules catch an image
    without a text alternative while ignoring the colour: each half of axe still bites."""
    visit.page.goto(visit.base, wait_until="networkidle")
    visit.page.add_style_tag(content="article p { color: #d0d0d0 !important; }")
    faded = AXE.run(visit.page, options=ONLY_COLOUR)
    assert "color-contrast" in faded.generate_report()
    assert AXE.run(visit.page, options=ALL_BUT_COLOUR).violations_count == 0
    visit.page.evaluate("document.querySelector('article').append(document.createElement('img'))")
    assert "image-alt" in AXE.run(visit.page, options=ALL_BUT_COLOUR).generate_report()


def test_one_of_each_kind_still_shows_the_colour_rules_a_faded_code_token(visit: Visit):
    """After the pruning, a code token whose colour fails contrast is still caught: the
    kept token of each kind carries the same CSS as the ones replaced by text."""
    visit.page.goto(visit.base + "protocols/tcp-udp/", wait_until="networkidle")  # Python
    assert visit.page.locator(".highlight .n").count() > 100
    visit.page.add_style_tag(content=".highlight .n { color: #d0d0d0 !important; }")
    pruned = visit.page.evaluate(ONE_OF_EACH_KIND)
    assert pruned["removed"] > 100 and pruned["after"] == pruned["before"]
    faded = AXE.run(visit.page, options=ONLY_COLOUR)
    targets = [str(node["target"]) for rule in faded.response["violations"]
               for node in rule["nodes"] if rule["id"] == "color-contrast"]  # fmt: skip
    assert targets and all(".n" in target for target in targets), targets
