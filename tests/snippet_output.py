"""Run snippets the way a learner does, and keep the output shown on pages honest.

Each snippet's real output is recorded in snippets/<chapter>/output/<name>.txt and
included into its page. tests/test_snippets.py re-runs every snippet and fails when
the output no longer matches. Before comparing, what legitimately changes from run to
run is normalised (see normalise()):
  - ports:   127.0.0.1:54321 -> 127.0.0.1:<port>
  - timings: any number with a decimal point (12.3 ms, 4.5x) -> #.#
  - "~N":    an integer the snippet itself marks as run-dependent with "~" -> ~N
Integers without "~" (counts from seeded runs) must match exactly.

Re-record after changing a snippet:  make outputs            (all)
                                     make outputs S=protocols/tcp_echo   (one)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "snippets"
BUDGET_SECONDS = 5.0  # DESIGN.md §6: one snippet < 5 s


def all_snippets() -> list[Path]:
    return sorted(p for p in SNIPPETS.glob("*/*.py") if p.name != "__init__.py")


def output_file(snippet: Path) -> Path:
    return snippet.parent / "output" / f"{snippet.stem}.txt"


def normalise(text: str) -> str:
    text = re.sub(r"(127\.0\.0\.1|localhost|\[::1\]):\d+", r"\1:<port>", text)
    text = re.sub(r"(?<![\d.])\d+\.\d+(?![\d.])", "#.#", text)
    text = re.sub(r"~\d+", "~N", text)
    return text


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    leftover: bool  # did any process of the snippet's session outlive it?


def run_snippet(snippet: Path, timeout: float = 30.0, env: dict[str, str] | None = None) -> Run:
    """Run `python snippets/<chapter>/<name>.py` from the repo root in its own session."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(snippet.relative_to(ROOT))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: children are findable afterwards
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        leftover = _group_alive(proc.pid)
        if leftover or proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()
    return Run(proc.returncode, stdout, stderr, time.perf_counter() - start, leftover)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, 9)
    except ProcessLookupError:
        pass


def record(names: list[str]) -> None:
    chosen = [SNIPPETS / f"{n}.py" for n in names] if names else all_snippets()
    for snippet in chosen:
        run = run_snippet(snippet)
        if run.returncode != 0:
            sys.exit(f"{snippet.relative_to(ROOT)} failed:\n{run.stderr}")
        out = output_file(snippet)
        out.parent.mkdir(exist_ok=True)
        out.write_text(run.stdout, encoding="utf-8")
        print(f"recorded {out.relative_to(ROOT)} ({run.seconds:.2f} s)")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--record"]:
        sys.exit("usage: python -m tests.snippet_output --record [chapter/name ...]")
    record([a for a in sys.argv[2:] if a])
