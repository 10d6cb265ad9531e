"""What `make test T=<chapter>/<page>` runs: everything about one page, found from the
page's includes, not by name matching.

`topic_filter` picks the tests (conftest deselects the rest); `topic_paths` lists the
only files that can hold them, so that pytest collects those instead of the whole suite
(collecting everything costs each worker seconds of imports); `partial_site_config` is a
build of the page alone for its browser checks. `tests/test_structure.py` proves on the
full run that every test the filter picks for any page lives in that page's paths.

    python -m tests.topic protocols/tcp-udp    # prints the page's paths, for the Makefile
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPIC_INCLUDE = re.compile(r'--8<--\s+"([^":]+)')
LOADS = re.compile(r'load_snippet\(\s*"([\w/]+)"')
# Files whose tests are parametrized by page or snippet: every page's paths include them.
ABOUT_EVERY_PAGE = ["tests/test_snippets.py", "tests/test_structure.py", "tests/site"]


@dataclass(frozen=True)
class Topic:
    name: str  # protocols/tcp-udp
    page: str  # docs/protocols/tcp-udp.md
    url: str  # protocols/tcp-udp/ ("" for the home page)
    snippets: frozenset[str]  # snippets/protocols/tcp_echo.py, ...
    modules: frozenset[str]  # behaviour-test modules that load one of the snippets
    lab: str | None  # http-server for protocols/lab-http-server

    @property
    def notebook(self) -> bool:
        return self.page.endswith(".ipynb")


@cache
def snippets_loaded_by_module() -> dict[str, frozenset[str]]:
    return {
        test.relative_to(ROOT).as_posix(): frozenset(LOADS.findall(test.read_text("utf-8")))
        for test in (ROOT / "tests").glob("*/test_*.py")
    }


def topic(name: str) -> Topic:
    name = name.removesuffix(".md").removesuffix(".ipynb").strip("/")
    sources = [ROOT / "docs" / f"{name}{ext}" for ext in (".md", ".ipynb")]
    page = next((p for p in sources if p.exists()), None)
    if page is None:
        raise pytest.UsageError(f"no page docs/{name}.md or .ipynb (T=<chapter>/<page>)")
    text = page.read_text(encoding="utf-8")
    snippets = {f"snippets/{s}" for s in TOPIC_INCLUDE.findall(text) if s.endswith(".py")}
    loaded = {s.removeprefix("snippets/").removesuffix(".py") for s in snippets}
    modules = {m for m, loads in snippets_loaded_by_module().items() if loaded & loads}
    return Topic(
        name=name,
        page=page.relative_to(ROOT).as_posix(),
        url=name.removesuffix("index") if name.endswith("index") else f"{name}/",
        snippets=frozenset(snippets),
        modules=frozenset(modules),
        lab=name.split("/lab-", 1)[1] if "/lab-" in name else None,
    )


def topic_filter(name: str | None) -> Callable[[pytest.Item], bool]:
    """The page's snippets (output checks, contract), the behaviour-test modules that load
    one of them, the page's fences, its structure check, its browser and axe check, and —
    for a notebook or a lab page — the notebook or the lab."""
    if not name:
        return lambda item: True
    t = topic(name)
    wanted = {*t.snippets, t.page} | ({f"[{t.lab}]"} if t.lab else set())
    url = f"[{t.url}]"  # a browser test's id; "[]" for the home page, so only in tests/site

    def about(item: pytest.Item) -> bool:
        path = item.nodeid.split("::")[0]
        if path in t.modules or path == t.page:  # behaviour tests, or the page's fences
            return True
        if path == "tests/test_services.py":  # about make run and servers, not a page
            return False
        if t.lab and path.startswith("tests/labs/") and t.lab.replace("-", "_") in item.name:
            return True
        param = item.nodeid[item.nodeid.find("[") :] if "[" in item.nodeid else ""
        if path.startswith("tests/site/") and url in param:
            return True
        return any(w in param for w in wanted)

    return about


def topic_paths(name: str) -> list[str]:
    """The files pytest collects for `T=name`: a superset of where the filter's tests live."""
    t = topic(name)
    paths = [*sorted(t.modules), *ABOUT_EVERY_PAGE]
    if t.notebook:
        paths.append("tests/test_notebooks.py")
    else:
        paths.append(t.page)  # its fences (pytest-codeblocks)
    if t.lab:
        paths.append("tests/labs")
    return paths


def partial_site_config(name: str) -> str:
    """An mkdocs config (read from stdin, so paths stay relative to the repository) that
    builds this page alone, with the whole site's nav, theme and hooks: ~1 s instead of
    the full build's ~9 s. Not strict: links to the pages left out are expected. The
    strict build of the whole site is `tests/site/test_build.py`, in the full run."""
    t = topic(name)
    keep = t.page.removeprefix("docs")
    lines = ["INHERIT: mkdocs.yml", "strict: false", "exclude_docs: |", "  *.mmd"]
    lines += ["  /*.md", "  /*/*.md", "  /*/*.ipynb", f"  !{keep}"]
    if not t.notebook:  # the notebook plugin alone takes ~1.7 s to import
        lines += ["plugins:", "  - search"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        print(" ".join(topic_paths(sys.argv[1])))
    except pytest.UsageError as error:  # the Makefile's $(shell) shows this on stderr
        sys.exit(f"make test T={sys.argv[1]}: {error}")
