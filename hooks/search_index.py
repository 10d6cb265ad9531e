"""Code stays out of the search index (mkdocs.yml `hooks:`).

A reader searches for "TIME-WAIT" or "head-of-line", not for a variable name, and code
was most of the index (and of the result previews). Material's search plugin skips any
element marked `data-search-exclude`, but Markdown has no setting that marks every code
block: pymdownx.highlight takes `data-` attributes only fence by fence. So this hook marks
every <pre> (code blocks, recorded output, notebook cells and their outputs) before the
search plugin reads the page. Prose, headings, inline `code` and the "Check yourself"
questions stay indexed. The attribute changes nothing a reader sees.
"""

from __future__ import annotations

import re

PRE = re.compile(r"<pre(?=[\s>])(?![^>]*\bdata-search-exclude\b)")


def on_page_content(html: str, **kwargs: object) -> str:
    return PRE.sub("<pre data-search-exclude", html)
