"""`make diagrams`: every Mermaid diagram becomes two committed SVG files, light and dark.

    make diagrams            # or: .venv/bin/python -m tests.diagrams [--check]

A page's diagram is a Mermaid file beside it, `docs/<chapter>/diagrams/<page>-<n>.mmd`,
the single source; the page shows its two renderings as images, and Material shows the
one for the reader's colour scheme (`#only-light` / `#only-dark`). No page loads Mermaid
(2.7 MB of JavaScript and a 2 s render on a phone): the SVG is drawn once, here, by the
vendored Mermaid in the Chromium the tests drive.

What it does, in order:
1. A ```mermaid fence in a page (how a new diagram is written) moves to a new `.mmd` file
   beside the page, and the fence is replaced by the images. The fence must name what the
   diagram shows on an `accTitle:` line (Mermaid's own accessible title): it becomes the
   images' alt text and the SVG's <title>.
2. Every `.mmd` whose SVGs are missing or stale is rendered. Each SVG records the SHA-256
   of what made it (the source, the Mermaid build, this file's settings), so a test
   (tests/site/test_diagrams.py) finds a stale or missing one without a browser.
3. Every page's diagram images get the alt text and the size of their SVG (no layout
   shift while they load).

Ids are deterministic (Mermaid's deterministicIds, seeded with the file's name), so the
same source renders the same SVG. Text is laid out with Liberation Sans, which has
Arial's metrics, and the SVG asks for Arial first: the boxes fit the text on a reader's
machine without a web font.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MERMAID_JS = ROOT / "tests" / "site" / "vendor" / "mermaid-11.12.0.min.js"
FONT = "Arial, 'Liberation Sans', Helvetica, sans-serif"  # Liberation Sans has Arial's metrics
THEMES = {"light": "default", "dark": "dark"}
FENCE = re.compile(r"^```mermaid[^\n]*\n(.*?)^```[ \t]*\n", re.S | re.M)
ACC_TITLE = re.compile(r"^\s*accTitle\s*:\s*(.+?)\s*$", re.M)
# One image line per scheme, as step 3 writes it.
IMAGE = re.compile(
    r"!\[[^\]]*\]\((?P<stem>diagrams/[\w.-]+)\.(?P<scheme>light|dark)\.svg#only-(?P=scheme)\)"
    r"(?:\{[^}\n]*\})?"
)
STAMP = re.compile(r"<!-- source-sha256: ([0-9a-f]{64}) -->")


def settings(name: str, scheme: str) -> dict:
    return {
        "startOnLoad": False,
        "theme": THEMES[scheme],
        "deterministicIds": True,
        "deterministicIDSeed": name,
        "fontFamily": FONT,
        "securityLevel": "strict",
        # SVG <text>, not HTML inside <foreignObject>: an <img> draws it everywhere.
        "htmlLabels": False,
        "flowchart": {"htmlLabels": False, "useMaxWidth": False},
        "sequence": {"useMaxWidth": False},
    }


def fingerprint(source: str, name: str, scheme: str) -> str:
    """What an SVG was made from: the source, the Mermaid build and the settings."""
    digest = hashlib.sha256()
    digest.update(source.encode())
    digest.update(hashlib.sha256(MERMAID_JS.read_bytes()).digest())
    digest.update(json.dumps(settings(name, scheme), sort_keys=True).encode())
    return digest.hexdigest()


def svg_path(mmd: Path, scheme: str) -> Path:
    return mmd.with_name(f"{mmd.stem}.{scheme}.svg")


def alt_text(source: str) -> str | None:
    match = ACC_TITLE.search(source)
    return match[1] if match else None


def stale(mmd: Path) -> list[str]:
    """The schemes whose SVG is missing or was rendered from something else."""
    source = mmd.read_text("utf-8")
    out = []
    for scheme in THEMES:
        svg = svg_path(mmd, scheme)
        found = STAMP.search(svg.read_text("utf-8")) if svg.exists() else None
        if not found or found[1] != fingerprint(source, mmd.stem, scheme):
            out.append(scheme)
    return out


def size(svg: str) -> tuple[int, int]:
    match = re.search(r'<svg[^>]*\bwidth="([\d.]+)"[^>]*\bheight="([\d.]+)"', svg)
    if not match:
        raise ValueError("an SVG without a width and height")
    return round(float(match[1])), round(float(match[2]))


def image_lines(stem: str, alt: str, width: int, height: int) -> str:
    attrs = f'{{ width="{width}" height="{height}" loading="lazy" }}'
    return "\n".join(
        f"![{alt}]({stem}.{scheme}.svg#only-{scheme}){attrs}" for scheme in ("light", "dark")
    )


def block(stem: str, alt: str, width: int, height: int) -> str:
    """A diagram on a page: both images in a box that scrolls sideways on a narrow screen
    (a11y.js makes it focusable when it does, so a keyboard can scroll it too)."""
    lines = image_lines(stem, alt, width, height)
    return f'<div class="diagram" markdown>\n{lines}\n</div>\n'


def extract_fences(page: Path) -> list[Path]:
    """Step 1: move a page's ```mermaid fences to .mmd files; returns the new files."""
    text = page.read_text("utf-8")
    if not FENCE.search(text):
        return []
    folder = page.parent / "diagrams"
    created = []

    def replace(match: re.Match) -> str:
        source = match[1]
        alt = alt_text(source)
        if not alt:
            line = text[: match.start()].count("\n") + 1
            sys.exit(
                f"{page.relative_to(ROOT)}:{line}: a Mermaid diagram needs an "
                "`accTitle: <what it shows>` line (its alt text)"
            )
        n = 1
        while (folder / f"{page.stem}-{n}.mmd").exists():
            n += 1
        folder.mkdir(exist_ok=True)
        mmd = folder / f"{page.stem}-{n}.mmd"
        mmd.write_text(source, "utf-8")
        created.append(mmd)
        return block(f"diagrams/{mmd.stem}", alt, 0, 0)

    page.write_text(FENCE.sub(replace, text), "utf-8")
    return created


def render(mmds: list[Path]) -> None:
    """Step 2: draw each diagram in both schemes with the vendored Mermaid in Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.services.chromium import CHROMIUM_FLAGS

    with sync_playwright() as playwright:
        chromium = "/usr/bin/chromium"
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            for mmd in mmds:
                source = mmd.read_text("utf-8")
                for scheme in stale(mmd):
                    # A fresh Mermaid for each drawing: its element counters (actor ids)
                    # then do not depend on what was drawn before.
                    page.set_content("<!doctype html><html><body></body></html>")
                    page.add_script_tag(path=str(MERMAID_JS))
                    svg = page.evaluate(
                        """async ([config, id, text]) => {
                            mermaid.initialize(config);
                            const { svg } = await mermaid.render(id, text);
                            return svg;
                        }""",
                        [settings(mmd.stem, scheme), f"d-{mmd.stem}-{scheme}", source],
                    )
                    svg_path(mmd, scheme).write_text(finish(svg, source, mmd.stem, scheme), "utf-8")
                    print(f"rendered {svg_path(mmd, scheme).relative_to(ROOT)}")
        finally:
            browser.close()


def finish(svg: str, source: str, name: str, scheme: str) -> str:
    """A standalone SVG file: its own size from the viewBox (an <img> needs one), and the
    fingerprint of what made it."""
    box = re.search(r'viewBox="([-\d.]+) ([-\d.]+) ([\d.]+) ([\d.]+)"', svg)
    if not box:
        raise ValueError(f"{name}: Mermaid returned an SVG without a viewBox")
    width, height = float(box[3]), float(box[4])
    svg = re.sub(r'(<svg[^>]*?)\swidth="[^"]*"', r"\1", svg, count=1)
    svg = re.sub(r'(<svg[^>]*?)\sheight="[^"]*"', r"\1", svg, count=1)
    svg = re.sub(r'(<svg[^>]*?)\sstyle="[^"]*"', r"\1", svg, count=1)
    svg = svg.replace("<svg", f'<svg width="{width:g}" height="{height:g}"', 1)
    stamp = fingerprint(source, name, scheme)
    return f"{svg}\n<!-- source-sha256: {stamp} -->\n"


def update_pages(pages: list[Path]) -> None:
    """Step 3: each diagram image carries its alt text and its SVG's size."""
    for page in pages:
        text = page.read_text("utf-8")

        def fix(match: re.Match, page: Path = page) -> str:
            mmd = page.parent / f"{match['stem']}.mmd"
            svg = svg_path(mmd, match["scheme"]).read_text("utf-8")
            width, height = size(svg)
            alt = alt_text(mmd.read_text("utf-8")) or ""
            attrs = f'{{ width="{width}" height="{height}" loading="lazy" }}'
            return f"![{alt}]({match['stem']}.{match['scheme']}.svg#only-{match['scheme']}){attrs}"

        new = IMAGE.sub(fix, text)
        if new != text:
            page.write_text(new, "utf-8")
            print(f"updated {page.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args()
    pages = sorted(DOCS.rglob("*.md"))
    if args.check:
        fences = [p for p in pages if FENCE.search(p.read_text("utf-8"))]
        old = [m for m in sorted(DOCS.rglob("*.mmd")) if stale(m)]
        for path in fences + old:
            print(f"needs `make diagrams`: {path.relative_to(ROOT)}")
        return 1 if fences or old else 0
    for page in pages:
        for mmd in extract_fences(page):
            print(f"moved a diagram of {page.relative_to(ROOT)} to {mmd.relative_to(ROOT)}")
    todo = [m for m in sorted(DOCS.rglob("*.mmd")) if stale(m)]
    if todo:
        render(todo)
    update_pages(pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
