"""Progress in the browser (docs/assets/javascripts/progress.js, issue 18): "Mark as done"
on topic pages, progress and the next topic on chapter indexes and paths, "Continue where
you left off" on the home page, self-checks answered before the reveal, and export,
import and reset on the "Your progress" page — across Material's instant navigation and
reloads, in localStorage only, keyboard-operable, with no axe violation in either scheme.

Each test does several steps in one tab: the browser suite's time is mostly navigations.
"""

from __future__ import annotations

import gzip
import json
import re

from playwright.sync_api import expect

from tests.site.conftest import Visit
from tests.site.test_pages import AXE, FLATTEN_CODE, PAGES, clean
from tests.snippet_output import ROOT
from tests.test_structure import CHAPTERS

DOCS = ROOT / "docs"
KEY = "bf-progress-v1"
TOPIC = "databases/acid/"
STORED = f"() => JSON.parse(localStorage.getItem('{KEY}'))"
# Set on the window of the first page: still there after a navigation only if Material
# swapped the page in place (instant navigation) instead of loading a new document.
MARK = "() => { window.bfSamePage = true; }"
SAME = "() => window.bfSamePage === true"
SCRIPT = DOCS / "assets" / "javascripts" / "progress.js"
CSS = DOCS / "assets" / "stylesheets" / "extra.css"
LINK = re.compile(r"\]\(\.\./([\w-]+/[\w-]+)\.(?:md|ipynb)\)")


def linked_topics(markdown: str) -> list[str]:
    """The topic pages a path page links to, in order, as URL paths (what progress.js counts)."""
    topics = []
    for page in LINK.findall(markdown):
        if not page.endswith("/index") and f"{page}/" not in topics:
            topics.append(f"{page}/")
    return topics


def chapter_topics(chapter: str) -> list[str]:
    """A chapter's topic pages, labs and notebooks, as URL paths."""
    files = [*(DOCS / chapter).glob("*.md"), *(DOCS / chapter).glob("*.ipynb")]
    return sorted(f"{chapter}/{f.stem}/" for f in files if f.name != "index.md")


def navigate(visit: Visit, path: str) -> None:
    """Follow a link to `path` the way a reader's click does, and wait for the new page."""
    visit.page.evaluate(
        "href => document.querySelector(`a[href='${href}']`).click()", visit.base + path
    )
    visit.page.wait_for_url(visit.base + path)
    visit.page.wait_for_function(
        "h => document.querySelector('article h1').textContent.length && location.href === h",
        arg=visit.base + path,
    )


def open_with_instant_navigation(visit: Visit, path: str) -> None:
    """Load a page with Material's instant navigation working (the visit fixture serves a
    sitemap with this server's origin). It is ready once the sitemap is parsed after the
    page loads (no event says so; "networkidle" is 500 ms after it arrived)."""
    visit.page.goto(visit.base + path, wait_until="networkidle")
    visit.page.evaluate(MARK)


def test_the_page_kinds_progress_js_tells_apart_by_url_match_the_docs():
    """progress.js knows a topic page by its URL alone: "<chapter>/<page>/", not under
    paths/. Every topic, lab and notebook page of the docs is one, and no index, path,
    home or progress page is."""
    in_js = re.search(r"var PAGE = /(.+)/;", SCRIPT.read_text())[1].replace("\\/", "/")
    assert in_js == r"^[\w.-]+/[\w.-]+/$", in_js
    assert 'p.indexOf("paths/") !== 0' in SCRIPT.read_text()
    topics = {p for p in PAGES if re.match(in_js, p) and not p.startswith("paths/")}
    chapters = [chapter for chapter in CHAPTERS if (DOCS / chapter).is_dir()]
    expected = {page for chapter in chapters for page in chapter_topics(chapter)}
    assert topics == expected and len(expected) > 40


def test_the_progress_features_add_at_most_10_kb_gzip_to_a_page():
    css = CSS.read_text()
    ours = css[css.index("/* Progress and self-checks") :]
    size = len(gzip.compress(SCRIPT.read_bytes() + ours.encode(), compresslevel=9))
    assert size <= 10 * 1024, size


def test_mark_done_navigate_to_index_and_path_reload_resume_and_self_check(visit: Visit):
    page = visit.page
    open_with_instant_navigation(visit, TOPIC)
    toggle = page.locator(".bf-done").first
    assert toggle.get_attribute("aria-pressed") == "false"

    # Keyboard: the toggle is next in tab order after the heading, and Enter and Space
    # operate it; the live region says what happened.
    page.locator("article h1 a.headerlink").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.classList.contains('bf-done')")
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-pressed") == "true"
    assert page.locator(".bf-live").text_content().strip() == "Marked as done"
    page.keyboard.press("Space")
    assert toggle.get_attribute("aria-pressed") == "false"
    assert page.locator(".bf-live").text_content().strip() == "Marked as not done"
    page.keyboard.press("Space")
    assert page.locator(".bf-done[aria-pressed='true']").count() == 2  # top and bottom
    assert TOPIC in page.evaluate(STORED)["done"]

    # A self-check: the grading buttons appear only once the answer is shown.
    questions = page.locator("details.question").count()
    check = page.locator(".bf-check").first
    assert page.locator(".bf-check").count() == questions >= 3
    assert check.get_by_role("button", name="I got it right").is_hidden()
    check.get_by_role("textbox", name="Your answer").fill("The check races with a transfer.")
    check.get_by_role("button", name="Show the answer").click()
    assert page.locator("details.question").first.evaluate("d => d.open")
    right = check.get_by_role("button", name="I got it right")
    right.click()
    assert right.get_attribute("aria-pressed") == "true"
    score = f"Self-checks: 1 right of 1 answered ({questions} on this page)"
    assert page.locator(".bf-score").text_content() == score
    assert list(page.evaluate(STORED)["checks"][TOPIC].values()) == ["right"]

    # Instant navigation to the chapter index: 1 of its pages, the next one not done.
    navigate(visit, "databases/")
    assert page.evaluate(SAME), "the chapter index was loaded in full, not swapped in"
    topics = chapter_topics("databases")
    summary = page.locator(".bf-summary")
    # progress.js redraws after Material swaps the page in: wait for the redraw (the
    # previous page's summary can still be there for a moment — CI read "1 of 13" here).
    expect(summary.locator("span").first).to_have_text(f"1 of {len(topics)} pages done")
    meter = summary.locator("progress")
    assert (meter.get_attribute("value"), meter.get_attribute("max")) == ("1", str(len(topics)))
    assert "Self-checks: 1 right of 1 answered" in summary.text_content()
    assert page.locator(".bf-done").count() == 0

    # …and to the broad path: 1 of its pages, and its first topic is next.
    navigate(visit, "paths/broad/")
    assert page.evaluate(SAME)
    broad = linked_topics((DOCS / "paths" / "broad.md").read_text())
    assert TOPIC in broad
    summary = page.locator(".bf-summary")
    expect(summary.locator("span").first).to_have_text(f"1 of {len(broad)} pages done")
    assert summary.get_by_role("link").get_attribute("href").endswith("/" + broad[0])

    # A reload keeps it; the home page offers the last topic read.
    page.reload(wait_until="load")
    expect(page.locator(".bf-summary span").first).to_have_text(f"1 of {len(broad)} pages done")
    page.evaluate(MARK)
    navigate(visit, "")
    resume = page.locator(".bf-resume")
    assert resume.text_content() == "Continue where you left off: Transactions and ACID"
    assert resume.get_by_role("link").get_attribute("href") == "/" + TOPIC
    assert page.locator(".bf-done").count() == 0
    clean(visit)


def test_export_import_round_trip_bad_files_and_reset(visit: Visit, browser):
    page = visit.page
    open_with_instant_navigation(visit, TOPIC)
    page.locator(".bf-done").first.click()
    navigate(visit, "progress/")
    total = page.locator(".bf-summary span").first.text_content()
    assert re.fullmatch(r"1 of \d+ pages done", total), total

    with page.expect_download() as download:
        page.get_by_role("button", name="Export progress (JSON file)").click()
    exported = json.loads(open(download.value.path()).read())  # noqa: SIM115
    assert exported == page.evaluate(STORED) and TOPIC in exported["done"]
    assert download.value.url.startswith("blob:")

    # The file, imported in a browser that has never seen the site, restores it all.
    fresh = browser.new_context()
    try:
        other = fresh.new_page()
        requests = []
        other.on("request", lambda r: requests.append(r.url))
        other.goto(visit.base + "progress/", wait_until="load")
        assert other.evaluate(STORED) is None
        other.locator("#bf-import").set_input_files(download.value.path())
        other.get_by_text("Imported: 1 pages done.").wait_for()
        assert other.evaluate(STORED) == exported
        expect(other.locator(".bf-summary span").first).to_have_text(total)
        assert [u for u in requests if not u.startswith(visit.base)] == []
    finally:
        fresh.close()

    # A file that is not JSON, or JSON of the wrong shape: a clear message, nothing changed.
    bad = {
        b"{not json": "Not imported: it is not valid JSON. Your progress is unchanged.",
        json.dumps({"v": 1, "done": {TOPIC: "yesterday"}, "checks": {}}).encode():
            'Not imported: "done" is not a map of pages to dates. Your progress is unchanged.',
        b"[1, 2]": "Not imported: it is not a JSON object. Your progress is unchanged.",
    }  # fmt: skip
    for content, message in bad.items():
        page.locator("#bf-import").set_input_files(
            {"name": "progress.json", "mimeType": "application/json", "buffer": content}
        )
        page.get_by_text(message).wait_for()
        assert page.evaluate(STORED) == exported

    # Reset asks first; Cancel keeps everything, "Yes, clear it" clears it.
    reset = page.get_by_role("button", name="Reset progress…")
    reset.click()
    assert page.evaluate("() => document.activeElement.textContent") == "Cancel"
    page.keyboard.press("Enter")
    assert page.evaluate(STORED) == exported and page.evaluate(
        "() => document.activeElement.classList.contains('bf-reset')"
    )
    reset.click()
    page.get_by_role("button", name="Yes, clear it").click()
    page.get_by_text("Progress cleared.").wait_for()
    assert page.evaluate(STORED) == {"v": 1, "done": {}, "last": None, "checks": {}}
    assert page.locator(".bf-summary span").first.text_content().startswith("0 of ")
    clean(visit)


# Every finite CSS transition and animation, run to its end. A click that moves the focus
# can scroll the page, and Material then hides its tabs with a 250 ms opacity transition:
# axe measured a tab link mid-way (white at ~1% opacity on the header's blue, contrast
# 1.02) in a flake-hunt run. At its end the link is either shown or hidden, not between.
SETTLED = """() => Promise.all(document.getAnimations()
  .filter(a => a.effect && a.effect.getComputedTiming().iterations !== Infinity)
  .map(a => a.finished.catch(() => null)))"""


def axe_in_both_schemes(visit: Visit, where: str, context: dict | None = None) -> None:
    """Every axe rule, the colour ones included, in light and dark (the controls are added
    by script, which the colour cover of the built HTML, tests/site/cover.py, cannot see)."""
    for scheme, palette in (("light", "default"), ("dark", "slate")):
        visit.page.emulate_media(color_scheme=scheme)
        visit.page.wait_for_function(f"() => document.body.dataset.mdColorScheme === '{palette}'")
        visit.page.evaluate(SETTLED)
        results = AXE.run(visit.page, context=context, options={"resultTypes": ["violations"]})
        assert results.violations_count == 0, f"{where}, {scheme}:\n{results.generate_report()}"
    visit.page.emulate_media(color_scheme="light")


def test_the_controls_pass_axe_in_light_and_dark(visit: Visit):
    page = visit.page
    open_with_instant_navigation(visit, TOPIC)
    page.locator(".bf-done").first.click()  # the pressed state, its date and the live region
    page.locator(".bf-check").first.get_by_role("button", name="Show the answer").click()
    page.locator(".bf-check").first.get_by_role("button", name="I got it wrong").click()
    # The rest of a topic page is checked by test_pages.py and test_accessibility.py; axe
    # builds its tree of the whole page all the same, so code blocks become plain text.
    page.evaluate(FLATTEN_CODE)
    axe_in_both_schemes(visit, TOPIC, {"include": [[".bf-bar"], [".bf-check"]]})

    navigate(visit, "progress/")  # summary, bar, next link, export, import, reset, message
    page.get_by_role("button", name="Reset progress…").click()
    page.locator("#bf-import").set_input_files(
        {"name": "x.json", "mimeType": "application/json", "buffer": b"{"}
    )
    page.get_by_text("Not imported").wait_for()
    axe_in_both_schemes(visit, "progress/")  # the whole page
    clean(visit)
