"""The graded-lab harness: what every labs/<lab>/stages.py can rely on.

A lab's stages are pytest tests marked with their stage, `@pytest.mark.stage(1)`, in a
module that names its stages (`STAGES = {1: "responds 200", ...}`) and its page
(`PAGE = "docs/protocols/lab-http-server.md"`). This file

- orders the tests by stage (file order within a stage) and, once a stage has a failure,
  skips every later stage: a learner sees the first thing to fix, never a wall of red;
- gives the tests the learner's file (`--lab-file`), a seed for randomised inputs
  (`--lab-seed`, printed by the runner so a failure can be replayed) and two ways to
  exercise the file: `spawn` runs it as a program (servers, over real sockets) and
  `lab_module` imports it (libraries).

Learners run it through labs/run.py (`make lab LAB=<lab>`), which prints one line per
test instead of pytest's report. Contributors can run pytest directly:
    .venv/bin/python -m pytest -c labs/pytest.ini labs/http-server/stages.py \
        --lab-file labs/http-server/solution.py
"""

from __future__ import annotations

import importlib.util
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from services.processes import exit_status, stop_group, wait_for_exit

READY_TIMEOUT = 10.0  # a Python program on a loaded 2-core machine may take a while to start
FAILED_STAGE = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lab")
    group.addoption("--lab-file", help="the learner's program or module to test")
    group.addoption("--lab-seed", type=int, help="seed of the randomised inputs")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stage(n): the lab stage a test belongs to (1 first)")
    if config.option.lab_seed is None:
        config.option.lab_seed = random.SystemRandom().randrange(1, 1_000_000)


def stage_of(item: pytest.Item) -> int:
    marker = item.get_closest_marker("stage")
    if marker is None:
        raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.stage(n)")
    return int(marker.args[0])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=stage_of)  # stable: tests keep their file order within a stage


def pytest_runtest_setup(item: pytest.Item) -> None:
    failed = item.config.stash.get(FAILED_STAGE, None)
    if failed is not None and stage_of(item) > failed:
        pytest.skip(f"stage {failed} failed; later stages run once it passes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if report.failed:
        stash = item.config.stash
        stash[FAILED_STAGE] = min(stash.get(FAILED_STAGE, stage_of(item)), stage_of(item))
    return report


@pytest.fixture
def lab_file(request: pytest.FixtureRequest) -> Path:
    value = request.config.option.lab_file
    if not value:
        pytest.fail("no --lab-file: run the lab with `make lab LAB=<lab> FILE=<your file>`")
    return Path(value).resolve()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Randomised inputs, reproducible: the run's seed combined with the test's name."""
    return random.Random(f"{request.config.option.lab_seed}:{request.node.name}")


@pytest.fixture
def lab_module(lab_file: Path) -> ModuleType:
    """The learner's file imported as a module (for labs that build a library)."""
    spec = importlib.util.spec_from_file_location(f"lab_{lab_file.stem}", lab_file)
    assert spec and spec.loader, f"cannot import {lab_file}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


class Program:
    """The learner's file running as a process; its output is drained in the background
    (a program that logs every request must never block on a full pipe)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stopped with all its children
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        assert self.proc.stdout and self.proc.stderr
        threading.Thread(target=self._drain, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, False), daemon=True).start()

    def _drain(self, pipe, to_queue: bool) -> None:  # noqa: ANN001 - a binary pipe
        for raw in pipe:
            line = raw.decode("utf-8", "replace")
            (self.lines.put if to_queue else self.stderr.append)(line)
        if to_queue:
            self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = READY_TIMEOUT) -> re.Match[str]:
        """Wait until the program prints a line matching pattern (its readiness signal)."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:  # stdout closed: the program exited (or closed it)
                wait_for_exit(self.proc, timeout=5)
                break
            seen.append(line)
            if match := re.search(pattern, line):
                return match
        code = exit_status(self.proc)
        what = (
            f"exited with code {code}"
            if code is not None
            else f"did not print it within {timeout:.0f} s"
        )
        printed = "".join(seen[-5:]).strip() or "(nothing)"
        raise AssertionError(
            f"waited for your program to print a line matching {pattern!r}; it {what}.\n"
            f"It printed: {printed}\n{self.stderr_tail()}"
        )

    def stderr_tail(self, lines: int = 12) -> str:
        tail = "".join(self.stderr[-lines:]).rstrip()
        return f"Its stderr ends with:\n{tail}" if tail else "Its stderr is empty."

    def assert_alive(self) -> None:
        if (code := exit_status(self.proc)) is not None:
            raise AssertionError(
                f"your program exited (code {code}) during the test.\n" + self.stderr_tail()
            )

    def exit_code(self) -> int | None:
        """Its exit code once it has exited, else None (it is not reaped: see stop())."""
        return exit_status(self.proc)

    def kill(self) -> int:
        """SIGKILL it and its group at once: no handler runs, nothing is flushed."""
        return stop_group(self.proc)

    def stop(self) -> None:
        """SIGTERM and a chance to shut down cleanly; then whatever is left of its group
        (children that ignore SIGTERM, or that it left behind) gets SIGKILL. The program is
        reaped only after that, so its group id can never be someone else's
        (services/processes.py)."""
        stop_group(self.proc, grace=2)


@pytest.fixture
def spawn(lab_file: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Program]]:
    """Start the learner's file: spawn("--port", "0") runs `python <file> --port 0`.
    Every program started is stopped when the test ends; one that crashed fails it."""
    started: list[Program] = []
    request.node.lab_programs = started  # the runner shows their stderr next to a failure

    def start(*args: str) -> Program:
        program = Program([sys.executable, str(lab_file), *args])
        started.append(program)
        return program

    yield start
    crashed = [p for p in started if p.exit_code() not in (None, 0)]
    for program in started:
        program.stop()
    for program in crashed:
        program.assert_alive()
