"""Run snippets the way a learner does, and keep the output shown on pages honest.

Each snippet's real output is recorded in snippets/<chapter>/output/<name>.txt and
included into its page. tests/test_snippets.py re-runs every snippet and fails when
the output no longer matches. Before comparing, what legitimately changes from run to
run is normalised (see normalise()):
  - ports:   127.0.0.1:54321 -> 127.0.0.1:<port>
  - timings: any number with a decimal point (12.3 ms, 4.5x) -> #.#
  - "~N":    an integer the snippet itself marks as run-dependent with "~" -> ~N
  - spacing: runs of spaces collapse to one (a padded number may gain a digit)
Integers without "~" (counts from seeded runs) must match exactly.

Re-record after changing a snippet:  make outputs                        (all)
                                     make outputs S=protocols/tcp_echo   (one)
(`make outputs` runs tests/test_snippets.py with --record-outputs, so snippets that need
a real server get it from the same fixtures as in the tests.)
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.snippets import all_snippets, needs  # noqa: F401  (the tests use them from here)

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "snippets"
BUDGET_SECONDS = 5.0  # DESIGN.md §6: one snippet < 5 s, run alone (make bench-snippets)
MEDIAN_TARGET_SECONDS = 1.0  # DESIGN.md §6: the median snippet < 1 s
# In the test suite a snippet shares 2 cores with other workers, so its wall time says
# nothing about its budget; the suite only guards against a hang.
HANG_GUARD_SECONDS = 60.0


def output_file(snippet: Path) -> Path:
    return snippet.parent / "output" / f"{snippet.stem}.txt"


def normalise(text: str) -> str:
    text = re.sub(r"(127\.0\.0\.1|localhost|\[::1\]):\d+", r"\1:<port>", text)
    text = re.sub(r"(?<![\d.])\d+\.\d+(?![\d.])", "#.#", text)
    text = re.sub(r"~\d+", "~N", text)
    return re.sub(r"[ \t]+", " ", text)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    leftover: bool  # did any process of the snippet's session outlive it?
    timed_out: bool = False  # killed after the timeout


def run_snippet(
    snippet: Path, timeout: float = HANG_GUARD_SECONDS, env: dict[str, str] | None = None
) -> Run:
    """Run `python snippets/<chapter>/<name>.py` from the repo root in its own session."""
    start = time.perf_counter()
    # Every process it starts inherits this mark, even one that leaves its process group
    # (a daemon, `process_group=0`): afterwards, anything still carrying it is a leftover.
    mark = f"SNIPPET_RUN={uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(snippet.relative_to(ROOT) if snippet.is_relative_to(ROOT) else snippet),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: children are findable afterwards
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {}), **dict([mark.split("=")])},
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
    finally:
        leftover = _group_alive(proc.pid)
        if leftover or proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()
        strays = marked_processes(mark)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    seconds = time.perf_counter() - start
    return Run(proc.returncode, stdout, stderr, seconds, leftover or bool(strays), timed_out)


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment holds `mark` (NAME=value)."""
    found, needle = [], mark.encode() + b"\0"
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if needle in environ.read_bytes() + b"\0":
                found.append(int(environ.parent.name))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, 9)
