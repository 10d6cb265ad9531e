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


def test_mermaid_is_vendored_and_served_locally(built_site: Build):
    vendored = built_site.directory / "assets/javascripts/vendor/mermaid-11.12.0.min.js"
    assert vendored.stat().st_size > 1_000_000
    loader = (built_site.directory / "assets/javascripts/mermaid-local.js").read_text()
    code = re.sub(r"/\*.*?\*/", "", loader, flags=re.S)  # the comment explains the CDN it avoids
    assert "vendor/mermaid-11.12.0.min.js" in code and "//" not in code.replace("://", "")
    assert not re.search(r"https?://", code)
