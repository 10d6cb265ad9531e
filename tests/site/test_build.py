"""The site builds strictly, and nothing in it loads from another origin."""

from __future__ import annotations

import re

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
