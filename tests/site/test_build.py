"""The site builds strictly, and nothing in it loads from another origin."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from material.plugins.search.plugin import Parser

from hooks.search_index import HELD, PRE, hold_back_code, put_back_code
from tests.site.conftest import Build, build
from tests.snippet_output import ROOT

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


def test_notebook_pages_link_one_cached_stylesheet_and_their_ipynb(built_site: Build):
    """hooks/notebooks.py: no inline CSS, no dormant script, one shared stylesheet; the
    download button's .ipynb is there."""
    notebooks = sorted(p.parent for p in built_site.directory.rglob("*.ipynb"))
    assert len(notebooks) >= 3
    sheets = set()
    for folder in notebooks:
        html = (folder / "index.html").read_text(encoding="utf-8")
        assert "<style" not in html and '<script src="">' not in html, folder
        assert "mathjax" not in html.lower() and "jp-Mermaid" not in html, folder
        sheets |= set(re.findall(r'href="((?:\.\./)+assets/stylesheets/jupyter\.\w+\.css)"', html))
        download = re.search(r'<a href="([\w-]+\.ipynb)" download', html)
        assert download and (folder / download[1]).is_file(), folder
    assert len(sheets) == 1, sheets  # the same file on every notebook page: cached once
    sheet = (notebooks[0] / sheets.pop()).resolve()
    assert sheet.stat().st_size > 100_000 and ".jupyter-wrapper" in sheet.read_text("utf-8")


def search_sections(html: str) -> list[tuple]:
    """What Material's search plugin indexes of a page: its sections' ids, titles, text."""
    parser = Parser()
    parser.feed(html)
    parser.close()
    return [(s.id, s.title, s.text, s.is_excluded()) for s in parser.data]


def test_holding_code_back_from_the_search_parser_changes_nothing_it_indexes(built_site: Build):
    """hooks/search_index.py empties each <pre> while the search plugin reads the page and
    puts it back after. On the page with the most code, a notebook and synthetic edge
    cases (a <pre> before any heading, deep nesting, a heading inside a <pre> — left as it
    is), the plugin's parser indexes exactly what it indexes of the whole page; on every
    page the insides come back byte for byte and no placeholder is left in the site.
    (Both builds were compared whole once: every file, search_index.json included, was
    byte-identical.)"""
    pages = {p: PRE.sub("<pre data-search-exclude", p.read_text("utf-8"))
             for p in sorted(built_site.directory.rglob("*.html"))}  # fmt: skip
    held = {}
    for page, html in pages.items():
        assert HELD not in html, page
        emptied, held[page] = hold_back_code(html)
        assert put_back_code(emptied, held[page]) == html, page
    assert sum(map(len, held.values())) > 300  # code blocks held back over the site
    most_code = sorted(pages, key=lambda p: -sum(map(len, held[p])))[:1]
    notebook = next(p for p in pages if "highlight-ipynb" in pages[p])
    synthetic = [
        '<pre data-search-exclude class="x"><span>a</span></pre><h1 id="t">T</h1><p>b</p>',
        '<div><div><h2 id="d">D</h2></div></div><pre data-search-exclude><b><i>c</i></b></pre>'
        '<p>after</p><h3 id="e">E</h3><pre data-search-exclude><h4 id="in">I</h4></pre><p>f</p>',
    ]
    for html in [pages[p] for p in (*most_code, notebook)] + synthetic:
        emptied, insides = hold_back_code(html)
        assert len(emptied) < len(html) or "<h4" in html
        assert search_sections(emptied) == search_sections(html)
    assert "<h4" in hold_back_code(synthetic[1])[0]  # a <pre> with a heading stays whole


# hooks/code_tokens.py drops Pygments' `n` and `w` spans because they draw nothing of their
# own; these tests fail if that stops being true (a Material upgrade giving names a colour, a
# rule for `.w`) or if the hook changes the code's text.
CODE_TEXT = re.compile(r"<pre\b[^>]*>(?:<span></span>)?\s*<code\b[^>]*>(.*?)</code>", re.S)
HOOK_PAGES = ["protocols/tcp-udp", "formats/xml-entities", "databases/data-models"]  # entities


def code_texts(html: str) -> list[str]:
    """Each code block's text, as a browser's textContent gives it."""
    return [unescape(re.sub(r"<[^>]*>", "", body)) for body in CODE_TEXT.findall(html)]


def test_the_token_hook_keeps_every_code_blocks_text(built_site: Build, tmp_path: Path):
    """The same pages built without hooks/code_tokens.py: same text in every `pre code`,
    and the hook did take spans out (the comparison can fail)."""
    listed = re.search(r"^hooks:\n((?:  - .*\n)+)", (ROOT / "mkdocs.yml").read_text(), re.M)[1]
    every = re.findall(r"  - (\S+)", listed)
    hooks = [hook for hook in every if "code_tokens" not in hook]
    assert len(hooks) == len(every) - 1
    keep = "".join(f"  !/{page}.md\n" for page in HOOK_PAGES)
    without = build(
        tmp_path / "site",
        config_text="INHERIT: mkdocs.yml\nstrict: false\nexclude_docs: |\n  *.mmd\n"
        f"  /*.md\n  /*/*.md\n  /*/*.ipynb\n{keep}plugins:\n  - search\n"
        f"hooks: {json.dumps(hooks)}\n",
    )
    assert without.returncode == 0, without.log
    for page in HOOK_PAGES:
        hooked = (built_site.directory / page / "index.html").read_text(encoding="utf-8")
        plain = (without.directory / page / "index.html").read_text(encoding="utf-8")
        assert plain.count('<span class="n">') > hooked.count('<span class="n">') == 0, page
        texts = code_texts(hooked)
        assert texts and texts == code_texts(plain), page
    assert any("&" in text or "<" in text for text in code_texts(hooked))  # entities checked


def css_rules(text: str) -> list[tuple[str, str]]:
    """(selector, declarations) of each innermost rule of a stylesheet (@media bodies
    included), split at braces: no regex over the whole minified file."""
    rules = []
    for chunk in text.split("}"):
        selector, _, body = chunk.rpartition("{")
        rules.append((re.split(r"[;{]", selector)[-1].strip(), body))
    return rules


def test_the_spans_the_hook_drops_draw_nothing_in_either_palette(built_site: Build):
    """Names are drawn in the code's own colour in both schemes, and no stylesheet the
    Markdown pages load styles `.w` (JupyterLab's does; the hook leaves notebooks alone)."""
    sheets = built_site.directory / "assets/stylesheets"
    css = {path.name: css_rules(path.read_text(encoding="utf-8")) for path in sheets.glob("*.css")}
    names = {}
    for rules in css.values():
        for selector, body in rules:
            if match := re.search(r"--md-code-hl-name-color:([^;]*)", body):
                names[selector] = match[1]
    assert names == {
        ":root,[data-md-color-scheme=default]": "var(--md-code-fg-color)",
        "[data-md-color-scheme=slate]": "var(--md-code-fg-color)",
    }
    jupyter = [rule for name, rules in css.items() if name.startswith("jupyter") for rule in rules]
    pages = [
        rule for name, rules in css.items() if not name.startswith("jupyter") for rule in rules
    ]
    n = [body for selector, body in pages if ".highlight .n" in selector.split(",")]
    assert n == ["color:var(--md-code-hl-name-color)"], n
    whitespace = re.compile(r"\.w(?![\w-])")
    assert not [selector for selector, _ in pages if whitespace.search(selector)]
    assert [selector for selector, _ in jupyter if whitespace.search(selector)]  # can fail


def test_the_token_hook_leaves_notebook_pages_alone(built_site: Build):
    notebooks = sorted((ROOT / "docs").rglob("*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        page = notebook.relative_to(ROOT / "docs").with_suffix("")
        html = (built_site.directory / page / "index.html").read_text(encoding="utf-8")
        assert '<span class="n">' in html, page
