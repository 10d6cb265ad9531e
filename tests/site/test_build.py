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
