"""Code stays out of the search index (mkdocs.yml `hooks:`), and the search plugin does
not walk it.

A reader searches for "TIME-WAIT" or "head-of-line", not for a variable name, and code
was most of the index (and of the result previews). Material's search plugin skips any
element marked `data-search-exclude`, but Markdown has no setting that marks every code
block: pymdownx.highlight takes `data-` attributes only fence by fence. So this hook marks
every <pre> (code blocks, recorded output, notebook cells and their outputs) before the
search plugin reads the page. Prose, headings, inline `code` and the "Check yourself"
questions stay indexed. The attribute changes nothing a reader sees.

Skipped is not free: the plugin parses the whole page with html.parser and still walks
every element inside a skipped one — in this site ~100,000 start tags a build, nearly
all of them the highlighter's token spans, about a quarter of the build's time. So the
inside of each marked <pre> is held back while the plugin reads the page (the <pre> is
left, empty but for a placeholder, which it skips) and put back right after it, before
the page is rendered into its template. The plugin's parser drops everything inside a
skipped element except headings with an id, and a <pre> holds no heading; a <pre> that
did (or a nested <pre>) is left as it is. tests/site/test_build.py checks the index and
the pages come out the same as without the holding back.
"""

from __future__ import annotations

import re

from mkdocs.plugins import event_priority

PRE = re.compile(r"<pre(?=[\s>])(?![^>]*\bdata-search-exclude\b)")
# A marked <pre>'s start tag, its inside (no nested <pre>) and its end tag.
MARKED = re.compile(r"(<pre data-search-exclude\b[^>]*>)((?:(?!<pre\b).)*?)(</pre>)", re.S)
HEADING = re.compile(r"<h[1-6]\b")
HELD = "\ue000"  # a private-use character: placeholder i is HELD + str(i) + HELD
PLACEHOLDER = re.compile(f"{HELD}(\\d+){HELD}")
# What the search plugin removes from the page after reading it (material/plugins/search):
# the held-back insides are put back after that, so they get the same treatment.
SEARCH_ATTRIBUTE = re.compile(r"\s?data-search-\w+=\"[^\"]+\"")

held: dict[str, list[str]] = {}  # page source path -> the insides of its marked <pre>s


def hold_back_code(html: str) -> tuple[str, list[str]]:
    """The page with each marked <pre> emptied to a placeholder, and the insides."""
    if HELD in html:  # cannot happen in practice; then nothing is held back
        return html, []
    insides: list[str] = []

    def hold(match: re.Match[str]) -> str:
        if HEADING.search(match[2]):
            return match[0]
        insides.append(match[2])
        return f"{match[1]}{HELD}{len(insides) - 1}{HELD}{match[3]}"

    return MARKED.sub(hold, html), insides


def put_back_code(html: str, insides: list[str]) -> str:
    return PLACEHOLDER.sub(lambda m: SEARCH_ATTRIBUTE.sub("", insides[int(m[1])]), html)


def on_page_content(html: str, page, **kwargs: object) -> str:
    html, held[page.file.src_uri] = hold_back_code(PRE.sub("<pre data-search-exclude", html))
    return html


@event_priority(-100)  # after the search plugin (priority 0) has read the page
def on_page_context(context, page, **kwargs: object):
    insides = held.pop(page.file.src_uri, None)
    if insides:
        page.content = put_back_code(page.content, insides)
    return context
