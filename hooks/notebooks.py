"""Notebook pages carry their CSS once, in a cached stylesheet (mkdocs.yml `hooks:`).

mkdocs-jupyter inlines JupyterLab's stylesheets into every notebook page (five <style>
blocks, ~595 KB, ~89 KB gzip, the same on every notebook page and never cached) and adds
a MathJax loader with an empty `<script src="">`, its config, and a module that imports
Mermaid from a CDN when a cell has a diagram: none of it configurable. This hook moves the
styles to one file, `assets/stylesheets/jupyter.<hash>.css`, linked from each notebook page
(cached after the first), and drops the three dormant scripts (the notebooks have no math
and no diagrams: tests/test_structure.py and tests/site/test_build.py check). It changes
nothing on a Markdown page.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STYLE = re.compile(r"\s*<style[^>]*>.*?</style>", re.S)
DORMANT = [
    # nbconvert's MathJax block: an empty <script src=""> (no URL configured) and its config
    re.compile(r"\s*<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S),
    # a module that imports Mermaid from a CDN when a cell has a diagram
    re.compile(
        r'\s*<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?'
        r"\.jp-Mermaid.*?</script>",
        re.S,
    ),
]
STYLESHEETS: dict[str, str] = {}  # file name -> CSS, written after the build


def on_page_content(html: str, page, **kwargs: object) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    css = "\n".join(match.group(0).strip() for match in STYLE.finditer(html))
    css = re.sub(r"</?style[^>]*>", "", css)
    name = f"jupyter.{hashlib.sha256(css.encode()).hexdigest()[:8]}.css"
    STYLESHEETS[name] = css
    html = STYLE.sub("", html)
    for script in DORMANT:
        html = script.sub("", html)
    depth = page.url.count("/")  # protocols/nagle-lab/ -> ../../
    link = f'<link rel="stylesheet" href="{"../" * depth}assets/stylesheets/{name}">'
    return link + html


def on_post_build(config, **kwargs: object) -> None:
    folder = Path(config["site_dir"]) / "assets" / "stylesheets"
    folder.mkdir(parents=True, exist_ok=True)
    for name, css in STYLESHEETS.items():
        (folder / name).write_text(css, "utf-8")
