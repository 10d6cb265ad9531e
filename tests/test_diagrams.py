"""Every diagram is a committed SVG, fresh from its Mermaid source (DESIGN.md §4): no
page draws a diagram with JavaScript, none is missing or stale, and each has alt text.
The check is by fingerprint (tests/diagrams.py), so it needs no browser; `make diagrams`
fixes what it finds."""

from __future__ import annotations

import re

from tests import diagrams
from tests.snippet_output import ROOT

PAGES = sorted(diagrams.DOCS.rglob("*.md"))
SOURCES = sorted(diagrams.DOCS.rglob("*.mmd"))


def rel(path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_page_has_a_mermaid_fence_left():
    fences = [rel(p) for p in PAGES if diagrams.FENCE.search(p.read_text("utf-8"))]
    assert fences == [], "run `make diagrams`: it moves each fence beside its page as SVG"


def test_every_diagram_has_both_svgs_rendered_from_its_current_source():
    assert len(SOURCES) >= 20
    stale = {rel(m): diagrams.stale(m) for m in SOURCES if diagrams.stale(m)}
    assert stale == {}, "run `make diagrams` (missing or stale SVGs)"


def test_every_diagram_is_on_its_page_in_both_schemes_with_its_alt_text():
    for mmd in SOURCES:
        page = mmd.parent.parent / f"{mmd.stem.rsplit('-', 1)[0]}.md"
        alt = diagrams.alt_text(mmd.read_text("utf-8"))
        assert alt, f"{rel(mmd)} needs an `accTitle:` line (the images' alt text)"
        text = page.read_text("utf-8")
        for scheme in diagrams.THEMES:
            svg = diagrams.svg_path(mmd, scheme)
            width, height = diagrams.size(svg.read_text("utf-8"))
            image = diagrams.image_lines(f"diagrams/{mmd.stem}", alt, width, height)
            line = next(ln for ln in image.splitlines() if f".{scheme}.svg" in ln)
            assert line in text, f"{rel(page)} does not show {rel(svg)}: run `make diagrams`"


def test_no_svg_without_its_source_and_no_statement_separator_in_a_label():
    """In Mermaid, ";" ends a statement: "Note over A: busy; waiting" breaks the diagram."""
    for svg in diagrams.DOCS.rglob("diagrams/*.svg"):
        assert svg.with_name(svg.name.split(".")[0] + ".mmd").exists(), rel(svg)
    for mmd in SOURCES:
        for line in mmd.read_text("utf-8").splitlines():
            assert ";" not in line, f"{rel(mmd)}: ';' in Mermaid line {line.strip()!r}"


def test_the_fingerprint_changes_with_the_source_the_scheme_and_the_name():
    base = diagrams.fingerprint("flowchart LR\n A --> B\n", "x-1", "light")
    assert base == diagrams.fingerprint("flowchart LR\n A --> B\n", "x-1", "light")
    assert base != diagrams.fingerprint("flowchart LR\n A --> C\n", "x-1", "light")
    assert base != diagrams.fingerprint("flowchart LR\n A --> B\n", "x-1", "dark")
    assert base != diagrams.fingerprint("flowchart LR\n A --> B\n", "x-2", "light")
    assert re.fullmatch(r"[0-9a-f]{64}", base)
