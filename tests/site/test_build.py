"""The site builds strictly, and nothing in it loads from another origin."""

from __future__ import annotations

import re

from material.plugins.search.plugin import Parser

from hooks.search_index import HELD, PRE, hold_back_code, put_back_code
from tests.site.conftest import Build

LOADS = re.compile(
    r"<(?:script|img|iframe|source|video|audio)\b[^>]*\bsrc=\"(?P<src>[^\"]+)\""
    r"|<link\b(?=[^>]*\brel=\"(?:stylesheet|preload|modulepreload|icon|manifest)\")"
    r"[^>]*\bhref=\"(?P<href>[^\"]+)\""
)


def test_strict_build_passes_without_warnings(built_site: Build):
    assert built_site.returncode == 0, built_site.log
    assert "WARNING" not in built_site.log, built_site.log


def test_every_page_loads_its_assets_from_the_site_itself(built_site: Build):
    pages = sorted(built_site.directory.rglob("*.html"))
    assert len(pages) > 5
    for page in pages:
        for match in LOADS.finditer(page.read_text(encoding="utf-8")):
            url = match["src"] or match["href"]
            assert not re.match(r"(https?:)?//", url), f"{page.name} loads {url}"


def test_no_page_carries_mermaid_and_every_diagram_image_exists(built_site: Build):
    """Diagrams reach the reader as SVG files (make diagrams), never as a script."""
    assert not list(built_site.directory.rglob("*mermaid*")), "Mermaid is in the site"
    shown = 0
    for page in built_site.directory.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert 'class="mermaid"' not in html and "mermaid.js" not in html, page
        for src in re.findall(r'<img [^>]*src="([^"#]*diagrams/[^"#]+\.svg)#only-', html):
            assert (page.parent / src).resolve().is_file(), f"{page}: {src}"
            shown += 1
    assert shown >= 40


def test_notebook_pages_link_one_cached_stylesheet_and_their_ipynb(built_site: Build):
    """hooks/notebooks.py: no inline CSS, no dormant script, one shared stylesheet; the
    download button's .ipynb is there."""
    notebooks = sorted(p.parent for p in built_site.directory.rglob("*.ipynb"))
    assert len(notebooks) >= 3
    sheets = set()
    for folder in notebooks:
        html = (folder / "index.html").read_text(encoding="utf-8")
        assert "<style" not in html and '<script src="">' not in html, folder
        assert "mathjax" not in html.lower() and "jp-Mermaid" not in html, folder
        sheets |= set(re.findall(r'href="((?:\.\./)+assets/stylesheets/jupyter\.\w+\.css)"', html))
        download = re.search(r'<a href="([\w-]+\.ipynb)" download', html)
        assert download and (folder / download[1]).is_file(), folder
    assert len(sheets) == 1, sheets  # the same file on every notebook page: cached once
    sheet = (notebooks[0] / sheets.pop()).resolve()
    assert sheet.stat().st_size > 100_000 and ".jupyter-wrapper" in sheet.read_text("utf-8")


def search_sections(html: str) -> list[tuple]:
    """What Material's search plugin indexes of a page: its sections' ids, titles, text."""
    parser = Parser()
    parser.feed(html)
    parser.close()
    return [(s.id, s.title, s.text, s.is_excluded()) for s in parser.data]


def test_holding_code_back_from_the_search_parser_changes_nothing_it_indexes(built_site: Build):
    """hooks/search_index.py empties each <pre> while the search plugin reads the page and
    puts it back after. On the page with the most code, a notebook and synthetic edge
    cases (a <pre> before any heading, deep nesting, a heading inside a <pre> — left as it
    is), the plugin's parser indexes exactly what it indexes of the whole page; on every
    page the insides come back byte for byte and no placeholder is left in the site.
    (Both builds were compared whole once: every file, search_index.json included, was
    byte-identical.)"""
    pages = {p: PRE.sub("<pre data-search-exclude", p.read_text("utf-8"))
             for p in sorted(built_site.directory.rglob("*.html"))}  # fmt: skip
    held = {}
    for page, html in pages.items():
        assert HELD not in html, page
        emptied, held[page] = hold_back_code(html)
        assert put_back_code(emptied, held[page]) == html, page
    assert sum(map(len, held.values())) > 300  # code blocks held back over the site
    most_code = sorted(pages, key=lambda p: -sum(map(len, held[p])))[:1]
    notebook = next(p for p in pages if "highlight-ipynb" in pages[p])
    synthetic = [
        '<pre data-search-exclude class="x"><span>a</span></pre><h1 id="t">T</h1><p>b</p>',
        '<div><div><h2 id="d">D</h2></div></div><pre data-search-exclude><b><i>c</i></b></pre>'
        '<p>after</p><h3 id="e">E</h3><pre data-search-exclude><h4 id="in">I</h4></pre><p>f</p>',
    ]
    for html in [pages[p] for p in (*most_code, notebook)] + synthetic:
        emptied, insides = hold_back_code(html)
        assert len(emptied) < len(html) or "<h4" in html
        assert search_sections(emptied) == search_sections(html)
    assert "<h4" in hold_back_code(synthetic[1])[0]  # a <pre> with a heading stays whole
