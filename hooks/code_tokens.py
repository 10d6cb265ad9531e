"""Code blocks without the token spans that change nothing on screen (mkdocs.yml `hooks:`).

Pygments wraps every token of a code block in a `<span class="…">`, and on a topic page
those spans were ~2,600 of ~3,500 elements. The browser restyles and lays out every element
several times while Material's scripts start (each time the theme reads a size after it
changed the page), so the element count is paid again and again in main-thread blocking
time (issue 11: Lighthouse's mobile emulation on this host, not a real phone). Two kinds
of span draw nothing of their own, in either colour scheme:

- `n` (a plain name): Material colours it `--md-code-hl-name-color`, which both palettes
  define as `var(--md-code-fg-color)`, the colour of the code block's own text;
- `w` (whitespace): no rule styles it, and a space shows no colour.

Their text stays where it was, so the page looks, copies (the copy button copies the
block's text) and searches the same; about a quarter of the spans go. Notebook pages are
left alone: JupyterLab's stylesheet colours `.n` itself. tests/site/test_build.py checks
all three (same code text with and without this hook, the palettes, notebook pages).
"""

from __future__ import annotations

import re

# Pygments' own output: a token's text is escaped, so it never contains "<".
PLAIN_TOKEN = re.compile(r'<span class="(?:n|w)">([^<]*)</span>')


def on_page_content(html: str, page, **kwargs: object) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        return html
    return PLAIN_TOKEN.sub(r"\1", html)
