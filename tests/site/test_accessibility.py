"""The colour cover and the split of axe's rules hold (tests/site/cover.py says why they
exist): every page's styled elements are in the cover the page tests check in light and
dark, the key model tells contexts apart, and each half of axe still catches what it is
for — also after ONE_OF_EACH_KIND has pruned the page.

The colour rules and every rule on code blocks used to run here, in six tests that
visited the cover pages again; they run in test_pages.py now, in each cover page's own
visit (test_page_renders_shows_its_diagrams_and_passes_axe, on the cover's pages).
"""

from __future__ import annotations

import re

import pytest

from tests.site.conftest import Build, SiteStyles, Visit
from tests.site.cover import ALL_BUT_COLOUR, ONE_OF_EACH_KIND, ONLY_COLOUR, SCHEMES, styled_keys
from tests.site.test_pages import AXE, DIAGRAMS, PAGES, check_shown_diagrams, switch_scheme


def test_every_page_is_built_and_its_styled_elements_are_in_the_cover(
    site_styles: SiteStyles, built_site: Build
):
    """The pages test_pages.py checks in both schemes use every kind of styled element
    that any page uses (and the cover is a few pages, not all of them)."""
    assert sorted(site_styles.keys) == sorted(PAGES)
    assert all((built_site.directory / p / "index.html").exists() for p in PAGES)
    keys = set().union(*(site_styles.keys[p] for p in site_styles.cover))
    everything = set().union(*site_styles.keys.values())
    missing = {p: k - keys for p, k in site_styles.keys.items() if k - keys}
    assert not missing, f"styled elements no cover page has: {missing}"
    assert len(everything) > 100
    cover = len(site_styles.cover)
    assert cover > 1 and cover < len(PAGES) / 2, site_styles.cover
    # Code tokens, admonitions, tables, notebook cells and diagram images (whose scheme
    # the cover pages check) are kinds in the cover.
    kinds = ("highlight.language-python>span.k", "div.admonition.", ">table.", "ipynb:")
    for kind in kinds:
        assert any(kind in key for key in keys), kind
    assert any(re.search(r"(^|[.:])diagram>img\.", key) for key in keys), "no diagram"


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
    visit.page.goto(visit.base, wait_until="load")
    visit.page.add_style_tag(content="article p { color: #d0d0d0 !important; }")
    faded = AXE.run(visit.page, options=ONLY_COLOUR)
    assert "color-contrast" in faded.generate_report()
    assert AXE.run(visit.page, options=ALL_BUT_COLOUR).violations_count == 0
    visit.page.evaluate("document.querySelector('article').append(document.createElement('img'))")
    assert "image-alt" in AXE.run(visit.page, options=ALL_BUT_COLOUR).generate_report()


def test_one_of_each_kind_still_shows_the_colour_rules_a_faded_code_token(visit: Visit):
    """After the pruning, a code token whose colour fails contrast is still caught, in
    light and in dark: the kept token of each kind carries the same CSS as the ones
    replaced by text, and the palette still switches (the first pruning replaced its
    inputs, and the "dark" checks ran in the light palette)."""
    visit.page.goto(visit.base + "protocols/tcp-udp/", wait_until="load")  # Python
    # Keywords: names were the probe, but they are plain text since hooks/code_tokens.py
    # (drawn in the code's own colour), and axe skips text that is only punctuation.
    assert visit.page.locator(".highlight .k").count() > 100
    # mid grey: too faint on the light code background and on the dark one
    visit.page.add_style_tag(content=".highlight .k { color: #808080 !important; }")
    pruned = visit.page.evaluate(ONE_OF_EACH_KIND, None)
    assert pruned["removed"] > 100 and pruned["after"] == pruned["before"]
    for scheme, palette in SCHEMES:  # the palette still follows the system after pruning
        switch_scheme(visit, scheme, palette)
        faded = AXE.run(visit.page, options=ONLY_COLOUR)
        targets = [str(node["target"]) for rule in faded.response["violations"]
                   for node in rule["nodes"] if rule["id"] == "color-contrast"]  # fmt: skip
        assert targets and all(re.search(r"\.k(?![\w-])", t) for t in targets), (scheme, targets)


def test_the_scheme_check_of_diagrams_catches_an_image_shown_in_the_wrong_scheme(visit: Visit):
    """check_shown_diagrams, which the cover pages run in both schemes, fails when the
    theme's CSS shows the dark image in the light scheme (or hides the light one)."""
    visit.page.goto(visit.base + "protocols/tcp-udp/", wait_until="load")
    count = visit.page.locator(DIAGRAMS).count()
    assert count >= 2
    check_shown_diagrams(visit, "light", count)
    visit.page.add_style_tag(content='img[src$="#only-dark"] { display: inline !important; }')
    with pytest.raises(AssertionError):
        check_shown_diagrams(visit, "light", count)
    visit.page.add_style_tag(content='img[src$="#only-light"] { display: none !important; }')
    with pytest.raises(AssertionError):  # now only the dark images show, in light
        check_shown_diagrams(visit, "light", count)
