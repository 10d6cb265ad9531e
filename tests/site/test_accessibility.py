"""axe-core finds no accessibility violations on the site's pages, in light and dark mode."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.site.conftest import Visit
from tests.site.test_browser import PAGES


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", PAGES)
def test_no_axe_violations(visit: Visit, path: str, scheme: str):
    visit.page.emulate_media(color_scheme=scheme)  # the palette follows the system
    visit.page.goto(visit.base + path, wait_until="networkidle")
    results = Axe().run(visit.page)
    assert results.violations_count == 0, results.generate_report()
