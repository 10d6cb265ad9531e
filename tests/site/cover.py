"""The colour cover: a few pages that together use every styled element of the site.

axe-core's colour rules (contrast, links told apart from text) depend only on the theme's
CSS for the element classes a page uses, in each colour scheme; code blocks are markup the
highlighter generates, the same kinds of element on every page. So those rules, and every
rule on code blocks, run in light and dark on the pages of the cover (test_pages.py, in the
same visit as each page's own checks), and every other rule runs on every page outside
its code blocks.

A colour comes from the theme's CSS for an element's tag and classes, in the context of
its nearest classed ancestor (a link inside an admonition, a token inside a notebook
cell), in one of two schemes: the same CSS on every page. The cover is a greedy set cover
of the built site's pages over those keys: complete over them by construction;
test_accessibility.py checks the key model itself (contexts told apart, script text left
out), that every page's keys are in the cover, and that each half of axe still catches
what it is for. What the keys do not see — attributes other than class, states such as an
open tab, elements added by script — is a known limit of the cover. Notebook pages are
styled by mkdocs-jupyter's own CSS, so their keys count as keys of their own. Diagrams are
SVG images (`make diagrams`): axe sees an image and its alt text, not the drawing. On each
cover page, axe's colour rules see one element of each kind (ONE_OF_EACH_KIND): the same
key model, applied in the page, and a test that a faded code token is still caught after it.
"""

from __future__ import annotations

import html.parser
from dataclasses import dataclass
from pathlib import Path

SCHEMES = (("light", "default"), ("dark", "slate"))  # media scheme -> Material's palette
COLOUR_RULES = ("color-contrast", "link-in-text-block")  # the WCAG AA ones axe runs
ALL_BUT_COLOUR = {
    "resultTypes": ["violations"],
    "rules": {rule: {"enabled": False} for rule in COLOUR_RULES},
}
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


@dataclass
class SiteStyles:
    cover: list[str]  # pages (URL paths) that together use every key, greedy order
    keys: dict[str, set[str]]  # every page's keys


def site_styles_of(site: Path) -> SiteStyles:
    """Every page's keys, and a greedy set cover of the pages over them."""
    used = {}
    for page in site.rglob("*.html"):
        path = page.parent.relative_to(site).as_posix()
        if (site / "404.html") != page:
            used["" if path == "." else path + "/"] = styled_keys(page.read_text("utf-8"))
    chosen, covered = [], set()
    while left := {page: keys - covered for page, keys in used.items() if keys - covered}:
        page = max(left, key=lambda p: len(left[p]))
        chosen.append(page)
        covered |= used[page]
    return SiteStyles(chosen, used)


# The colour rules see one element of each kind per page: every other element whose kind
# — the same key as above, in the live DOM — is already on the page is replaced by its own
# text, unless it holds an element of a kind not seen before. Under the key model the
# replaced elements are coloured exactly like the one kept; the text stays, so a code
# block keeps its width (monospace) and still scrolls; and a 2,000-token listing costs axe
# a few dozen elements instead of thousands. With `within` ("pre"), only elements inside
# code blocks are replaced: the rest of the page is left whole for the rules that depend
# on content. The palette's form stays whole: Material switches the scheme through its
# inputs when the system's preference changes, and the colour rules run in both. Returns
# the kinds before and after (they must be the same).
ONE_OF_EACH_KIND = """(within) => {
  const kind = (el) => {
    let context = "";
    for (let a = el.parentElement; a; a = a.parentElement)
      if (a.classList.length) { context = [...a.classList].sort().join("."); break; }
    return `${context}>${el.tagName.toLowerCase()}.${[...el.classList].sort().join(".")}`;
  };
  const styled = () => [...document.body.querySelectorAll("*")]
    .filter((el) => !el.closest("svg, script, style, noscript, template"));
  const kinds = () => new Set(styled().map(kind));
  const before = kinds(), seen = new Set(), all = styled();
  const replaceable = new Set(all.filter((el) => !el.closest("[data-md-component=palette]")
    && (!within || el.parentElement.closest(within))));
  const keep = new Set([document.body, ...all.filter((el) => !replaceable.has(el))]);
  for (const el of all) {
    const k = kind(el);
    if (seen.has(k)) continue;
    seen.add(k);
    for (let a = el; a && !keep.has(a); a = a.parentElement) keep.add(a);
  }
  let removed = 0;
  for (const el of replaceable)
    if (!keep.has(el) && keep.has(el.parentElement)) {
      el.replaceWith(document.createTextNode(el.textContent));
      removed += 1;
    }
  return { before: [...before].sort(), after: [...kinds()].sort(), removed };
}"""
