"""Structure invariants (DESIGN.md §5.6): the repository reads like the table of contents
and nothing is orphaned — every snippet is on a page and under a test, every include
resolves, every page is in the nav, every chapter is on a learning path."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import is_include_only, is_snippet_command
from tests.snippet_output import ROOT, all_snippets, output_file
from tests.topic import topic_filter, topic_paths

CHAPTERS = [
    "protocols",
    "servers",
    "databases",
    "proxies",
    "messaging",
    "formats",
    "security",
    "design",
    "operations",
]
INCLUDE = re.compile(r'--8<--\s+"([^":]+)(?::([\w-]+))?"')
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
NOTEBOOKS = sorted(DOCS.rglob("*.ipynb"))
SNIPPETS = all_snippets()
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", flags=re.S | re.M)
INCLUDE_LINE = re.compile(r'\s*--8<-- "[^":]+(:[A-Za-z_][\w-]*)?"\s*')
EXPOSURE = {
    # (0.0.0.0/0 is a CIDR block, "every IPv4 address", in a policy, not a bind address)
    r"0\.0\.0\.0(?!/\d)|\(\(\s*[\"']{2}\s*,|[\"']::[\"']": "bind 127.0.0.1, never every interface",
    r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False": "TLS verification stays on",
}
# The firewall page binds every interface on purpose, but only inside network namespaces
# the snippet creates (a veth pair between two of them, nothing of the host's):
# tests/security/test_firewalls.py checks the host's listeners, links and ruleset are
# unchanged while it runs. Only the bind rule is waived, only for that file.
EXPOSURE_WAIVED = {"snippets/security/firewall_netns.py": {"bind 127.0.0.1, never every interface"}}
TOPIC_SECTIONS = [
    "What you will learn",
    "Run it",
    "What to notice",
    "Break it",
    "Check yourself",
    "Further reading",
]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def includes() -> list[tuple[Path, str, str | None]]:
    return [
        (page, m[1], m[2] or None)
        for page in PAGES
        for m in INCLUDE.finditer(page.read_text(encoding="utf-8"))
    ]


def load_mkdocs() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in nav_files(value)]
    return []


def topic_pages() -> list[Path]:
    return [p for p in PAGES if p.parent.name in CHAPTERS and p.name != "index.md"]


def test_chapters_use_the_same_slug_in_docs_snippets_and_tests():
    not_chapters = {
        "docs": {"paths", "assets"},
        "snippets": set(),
        "tests": {"site", "services", "labs"},
    }
    for top, others in not_chapters.items():
        for folder in (ROOT / top).iterdir():
            if folder.is_dir() and folder.name not in others | {"__pycache__"}:
                assert folder.name in CHAPTERS, f"{rel(folder)} is not a chapter slug"
    for snippet in SNIPPETS:
        chapter = snippet.parent.name
        assert (DOCS / chapter / "index.md").exists(), f"{chapter} has no docs/{chapter}/index.md"
        assert (ROOT / "tests" / chapter).is_dir(), f"{chapter} has no tests/{chapter}/"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=rel)
def test_snippet_is_included_by_a_page_and_named_by_a_behaviour_test(snippet):
    name = snippet.relative_to(ROOT / "snippets").as_posix()
    assert any(target == name for _, target, _ in includes()), f"no page includes {name}"
    out = output_file(snippet).relative_to(ROOT / "snippets").as_posix()
    assert any(target == out for _, target, _ in includes()), f"no page shows its output {out}"
    tests_dir = ROOT / "tests" / snippet.parent.name
    chapter_tests = "\n".join(p.read_text(encoding="utf-8") for p in tests_dir.glob("test_*.py"))
    assert re.search(rf"\b{snippet.stem}\b", chapter_tests), (
        f"no test in tests/{snippet.parent.name}/ names {snippet.stem}"
    )


@pytest.mark.parametrize("snippet", SNIPPETS, ids=rel)
def test_snippet_follows_the_contract(snippet):
    text = snippet.read_text(encoding="utf-8")
    assert text.startswith('"""'), "a snippet starts with its docstring"
    assert f"Run: python {rel(snippet)}" in text, "the docstring says how to run it"
    assert 'if __name__ == "__main__":' in text
    for pattern, rule in EXPOSURE.items():  # DESIGN.md §7
        if rule not in EXPOSURE_WAIVED.get(rel(snippet), set()):
            assert not re.search(pattern, text), rule
    # A snippet must not shadow a module a reader has installed (its folder is on sys.path).
    assert snippet.stem not in sys.stdlib_module_names, f"{snippet.stem} shadows the stdlib"
    assert importlib.util.find_spec(snippet.stem) is None, f"{snippet.stem} shadows a package"
    assert len({s.stem for s in SNIPPETS}) == len(SNIPPETS), "snippet names are unique"


def test_every_include_resolves_to_a_file_and_a_section():
    for page, target, section in includes():
        # mkdocs.yml's base_path, searched in order, as pymdownx.snippets does
        path = next((b / target for b in (ROOT / "snippets", ROOT) if (b / target).exists()), None)
        assert path, f"{rel(page)} includes missing {target}"
        if section:
            text = path.read_text(encoding="utf-8")
            assert f"[start:{section}]" in text and f"[end:{section}]" in text, (
                f"{rel(page)} includes {target}:{section}, which has no such section"
            )


def test_every_page_and_notebook_is_in_the_nav():
    listed = set(nav_files(load_mkdocs()["nav"]))
    for page in [*PAGES, *NOTEBOOKS]:
        assert page.relative_to(DOCS).as_posix() in listed, f"{rel(page)} is not in the nav"


def test_every_chapter_is_on_the_broad_path():
    broad = (DOCS / "paths" / "broad.md").read_text(encoding="utf-8")
    for chapter in sorted({p.parent.name for p in PAGES if p.parent.name in CHAPTERS}):
        assert f"../{chapter}/" in broad, f"chapter {chapter} is not on the broad path"
        for page in topic_pages():
            if page.parent.name == chapter:
                assert f"../{chapter}/{page.name}" in broad, f"{rel(page)} not on the broad path"


@pytest.mark.parametrize("page", topic_pages(), ids=rel)
def test_topic_page_follows_the_page_contract(page):
    text = page.read_text(encoding="utf-8")
    headings = re.findall(r"^##\s+(.+)$", text, flags=re.M)
    for section in TOPIC_SECTIONS:
        assert any(h.startswith(section) for h in headings), f"missing '## {section}'"
    assert 3 <= len(re.findall(r"^\?\?\? question", text, flags=re.M)) <= 5, "3-5 questions"
    assert re.search(r"RFC \d+|docs\.|documentation", text), "cites a primary source"


def test_code_on_a_page_is_either_an_included_snippet_or_tested_where_it_stands():
    """pytest-codeblocks collects bare ```python / ```bash fences only: a titled Python
    fence would ship untested, so it may only include a snippet; a shell fence that runs a
    snippet is left to test_snippets, so the snippet must exist."""
    for page in PAGES:
        for lang, attrs, body in FENCE.findall(page.read_text(encoding="utf-8")):
            where = f"{rel(page)}: ```{lang}{attrs}"
            if lang == "python" and attrs.strip():
                assert is_include_only(body), f"{where} holds code pytest-codeblocks skips"
            if lang in ("bash", "sh") and is_snippet_command(body):
                for command in body.split():
                    if command.startswith("snippets/"):
                        assert (ROOT / command).is_file(), f"{where} runs missing {command}"


def test_every_include_names_a_file_and_at_most_a_section_never_lines():
    """DESIGN.md §3: sections, not line ranges (they go stale silently)."""
    for page in PAGES:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if "--8<--" in line:
                assert INCLUDE_LINE.fullmatch(line), f"{rel(page)}:{n}: {line.strip()}"


def test_notebooks_draw_no_mermaid():
    """mkdocs-jupyter would fetch Mermaid from a CDN for a notebook's diagram: draw
    diagrams on Markdown pages, where the site serves Mermaid itself."""
    for notebook in NOTEBOOKS:
        assert "```mermaid" not in notebook.read_text(encoding="utf-8"), rel(notebook)


def test_the_rules_catch_what_they_are_for():
    assert is_snippet_command("python snippets/protocols/tcp_echo.py\n")
    assert not is_snippet_command("python snippets/protocols/tcp_echo.py && rm -rf x")
    assert not INCLUDE_LINE.fullmatch('--8<-- "protocols/tcp_echo.py:10:20"')
    assert INCLUDE_LINE.fullmatch('--8<-- "protocols/tcp_echo.py:server"')
    for bad in ['bind(("", 0))', '("0.0.0.0", 0)', 'host="::"', "verify=False", "CERT_NONE"]:
        assert any(re.search(p, bad) for p in EXPOSURE), bad
    for good in ['bind(("127.0.0.1", 0))', 'for balance in ("", "least_conn;"):']:
        assert not any(re.search(p, good) for p in EXPOSURE), good


def test_lab_servers_stay_on_loopback_with_verification_on():
    for program in sorted((ROOT / "labs").glob("*/*.py")):
        text = program.read_text(encoding="utf-8")
        for pattern, rule in EXPOSURE.items():  # DESIGN.md §7
            assert not re.search(pattern, text), f"{rel(program)}: {rule}"


ROW = re.compile(
    r"^\| (?P<num>[^|]+?) \| \[[^\]]+\]\((?P<link>[^)]+)\).*\| (?P<time>[^|]+) \|$", re.M
)


def minutes(time: str) -> int:
    value, unit = time.split()
    return round(float(value) * (60 if unit == "h" else 1))


def test_path_rows_are_numbered_in_order_and_chapter_times_add_up():
    """Row numbers and time totals were kept by hand and drifted (the protocols chapter
    said 75 minutes for 5½ hours of topics): the broad path's rows are numbered
    <chapter>.1, .2, … in order, each specialized path's rows 0 or 1 upwards, and each
    chapter index's "About …" is the sum of its broad-path times, to the half hour."""
    broad = (DOCS / "paths" / "broad.md").read_text(encoding="utf-8")
    sections = re.split(r"^## (\d+)\. ", broad, flags=re.M)[1:]
    assert len(sections) >= 6, "broad.md: no '## N. <chapter>' sections found"
    for number, body in zip(sections[::2], sections[1::2], strict=True):
        rows = list(ROW.finditer(body))
        numbered = [r["num"] for r in rows if r["num"] != "lab"]
        assert numbered == [f"{number}.{i}" for i in range(1, len(numbered) + 1)], numbered
        chapter = rows[0]["link"].split("/")[1]
        graded = [r for r in rows if "/lab-" in r["link"]]
        topics = sum(minutes(r["time"]) for r in rows if r not in graded)
        index = (DOCS / chapter / "index.md").read_text(encoding="utf-8")
        stated = re.search(r"\*\*Time\.\*\* About ([\d½]+) hours", index)
        assert stated, f"{chapter}/index.md: no '**Time.** About N hours'"
        hours = float(stated[1].replace("½", ".5"))
        assert abs(hours * 60 - topics) <= 15, (
            f"{chapter}: says {hours} h, rows add up to {topics} min"
        )
    for path in sorted((DOCS / "paths").glob("*.md")):
        if path.name in ("broad.md", "index.md"):
            continue
        numbers = [r["num"] for r in ROW.finditer(path.read_text(encoding="utf-8"))]
        numbered = [n for n in numbers if n.isdigit()]
        start = int(numbered[0])
        assert numbered == [str(i) for i in range(start, start + len(numbered))], (path, numbers)


# What each planned chapter would be called in prose (CURRICULUM.md): a page that names one
# before it is in the nav promises a chapter the reader cannot find.
CHAPTER_NAMES = {
    "proxies": ["proxies", "reverse proxies"],
    "messaging": ["messaging", "message brokers", "message queues"],
    "formats": ["message formats", "serialization formats"],
    "security": ["security"],
    "design": ["application design"],
    "operations": ["production engineering", "operations"],
}


def front_matter(page: Path) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", page.read_text(encoding="utf-8"), flags=re.S)
    return yaml.safe_load(match[1]) if match else {}


def nav_chapters() -> set[str]:
    files = nav_files(load_mkdocs()["nav"])
    return {f.split("/")[0] for f in files if f.split("/")[0] in CHAPTERS}


def test_home_page_lists_every_chapter_in_the_nav_and_promises_none_that_is_not():
    """The home page's chapter list is the nav's chapters, no more, no fewer; and neither
    the home page nor the site's or any page's description names a chapter still to come."""
    home = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\]\(([\w-]+)/index\.md\)", home)) & set(CHAPTERS)
    chapters = nav_chapters()
    assert chapters - listed == set(), "chapters in the nav but not on the home page"
    assert listed - chapters == set(), "chapters on the home page but not in the nav"
    assert "(paths/broad.md){ .md-button" in home, "the home page's Start here button"
    promises = {
        "docs/index.md": home,
        "mkdocs.yml site_description": load_mkdocs()["site_description"],
    }
    for page in PAGES:
        promises[f"{rel(page)} description"] = str(front_matter(page).get("description", ""))
    for slug, names in CHAPTER_NAMES.items():
        if slug in chapters:
            continue
        for where, text in promises.items():
            for name in names:
                assert not re.search(rf"\b{name}\b", text, flags=re.I), f"{where} names {name}"


def test_no_word_ending_is_glued_to_inline_code():
    """`SIGKILL`ed renders with a gap (inline code has its own padding and background):
    the sentence says it another way ("killed with `SIGKILL`")."""
    code_then_word = re.compile(r"`[^`\n]+`(\w*)")  # code spans in order, and what follows
    found = [
        f"{rel(page)}:{number}: {line.strip()}"
        for page in PAGES
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if not line.lstrip().startswith(("--8<--", "```"))
        and any(m[1] in ("ed", "s", "d", "ing") for m in code_then_word.finditer(line))
    ]
    assert not found, "\n".join(found)


def test_every_page_has_its_own_description():
    """Search engines and link previews show it; the site-wide one is for none of them."""
    seen = {}
    for page in PAGES:
        description = front_matter(page).get("description")
        assert description and 40 <= len(description) <= 200, f"{rel(page)}: description"
        assert description not in seen, f"{rel(page)} repeats {seen.get(description)}"
        seen[description] = rel(page)


def test_the_promise_check_catches_a_planned_chapter():
    assert any(re.search(rf"\b{n}\b", "Proxies, messaging and security", re.I)
               for names in CHAPTER_NAMES.values() for n in names)  # fmt: skip


def test_make_test_T_collects_every_test_about_its_page(request: pytest.FixtureRequest):
    """`make test T=<page>` collects only the page's paths (tests/topic.py); among all the
    tests of this run, every one the page's filter picks must live in one of them, or
    T= would skip it without a word."""
    items = request.session.items
    if not any(i.nodeid.startswith("tests/site/") for i in items):
        pytest.skip("checked on a run that collects the whole suite (make test)")
    missing: dict[str, list[str]] = {}
    for page in [*PAGES, *NOTEBOOKS]:
        name = page.relative_to(DOCS).with_suffix("").as_posix()
        about, paths = topic_filter(name), topic_paths(name)
        for item in filter(about, items):
            file = item.nodeid.split("::")[0]
            if not any(file == p or file.startswith(p.rstrip("/") + "/") for p in paths):
                missing.setdefault(name, []).append(item.nodeid)
    assert not missing, f"tests the T= filter picks outside topic_paths(): {missing}"
