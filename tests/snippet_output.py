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
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.processes import group_members, stop_group, wait_for_exit
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
    # Read both pipes in the background and wait for the exit without reaping it: its
    # group is killed while its id cannot belong to anyone else (services/processes.py).
    printed: dict[str, str] = {}
    readers = [
        threading.Thread(target=_read_all, args=(pipe, name, printed), daemon=True)
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        timed_out = wait_for_exit(proc, timeout) is None
        in_group = [pid for pid in group_members(proc.pid) if pid != proc.pid]
        strays = [pid for pid in marked_processes(mark) if pid != proc.pid]
    finally:
        stop_group(proc)  # SIGKILL to the group, then reap
    for pid in strays:  # they left the group: found by the mark
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    for reader in readers:
        reader.join(timeout=10)  # EOF once every process holding the pipes is gone
    seconds = time.perf_counter() - start
    leftover = bool(in_group or strays)
    return Run(
        proc.returncode,
        printed.get("stdout", ""),
        printed.get("stderr", ""),
        seconds,
        leftover,
        timed_out,
    )


def _read_all(pipe: IO[str], name: str, into: dict[str, str]) -> None:
    with pipe:
        into[name] = pipe.read()


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment holds `mark` (NAME=value)."""
    found, needle = [], mark.encode() + b"\0"
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if needle in environ.read_bytes() + b"\0":
                found.append(int(environ.parent.name))
    return found
