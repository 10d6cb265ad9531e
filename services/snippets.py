"""The snippets a learner can run: finding one by name, and what it `Needs:`."""

from __future__ import annotations

import difflib
import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "snippets"
USAGE = 64  # EX_USAGE: nothing ran (unknown snippet); `make run` prints no error line for it


def all_snippets() -> list[Path]:
    return sorted(p for p in SNIPPETS.glob("*/*.py") if p.name != "__init__.py")


def needs(snippet: Path) -> list[str]:
    """Environment variables a snippet declares with a `Needs: A, B` docstring line."""
    match = re.search(r"^Needs:\s*(.+)$", snippet.read_text(encoding="utf-8"), flags=re.M)
    return [v.strip() for v in match[1].split(",")] if match else []


def name_of(snippet: Path) -> str:
    return snippet.relative_to(SNIPPETS).with_suffix("").as_posix()


def resolve(spec: str) -> Path | None:
    """protocols/tcp_nagle, protocols/tcp_nagle.py and snippets/protocols/tcp_nagle.py."""
    spec = spec.strip().removeprefix("./").removeprefix("snippets/").removesuffix(".py")
    path = SNIPPETS / f"{spec}.py"
    return path if spec and path in all_snippets() else None


def listing(spec: str) -> str:
    """What to say for an unknown snippet: close matches first, then every snippet."""
    names = [name_of(p) for p in all_snippets()]
    lines = []
    if spec:
        lines.append(f"There is no snippet {spec!r}.")
        close = difflib.get_close_matches(spec.removesuffix(".py"), names, n=3, cutoff=0.5)
        close += [n for n in names if spec and n.split("/")[-1].startswith(spec) and n not in close]
        if close:
            lines.append("Did you mean: " + ", ".join(close[:3]) + "?")
    lines.append("Usage: make run S=<chapter>/<snippet>   e.g. make run S=protocols/tcp_echo")
    chapters: dict[str, list[str]] = {}
    for name in names:
        chapter, snippet = name.split("/")
        chapters.setdefault(chapter, []).append(snippet)
    for chapter, snippets in chapters.items():
        lines += textwrap.wrap(
            " ".join(snippets), 96, initial_indent=f"  {chapter}/  ", subsequent_indent="    "
        )
    return "\n".join(lines)
