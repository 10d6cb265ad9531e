"""axe-core finds no accessibility violations on any page, in light or dark mode."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.site.conftest import Visit
from tests.site.test_browser import PAGES

AXE = Axe()


@pytest.mark.parametrize("path", PAGES)
def test_no_axe_violations_in_light_or_dark_mode(visit: Visit, path: str):
    visit.page.goto(visit.base + path, wait_until="load")
    for scheme in ("light", "dark"):
        visit.page.emulate_media(color_scheme=scheme)  # the palette follows the system
        results = AXE.run(visit.page)
        assert results.violations_count == 0, f"{scheme} mode:\n{results.generate_report()}"
