"""Shared test helpers: load a snippet as a module, a slowloris client, the codeblock
rule, services."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import re
import resource
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# gRPC (imported by the gRPC tests, in the same worker as everything else) restarts its
# poller in a forked child; when Python then closes the child's fds before exec, that
# poller aborts it (SIGABRT, "epoll_wait error: Bad file descriptor"): grpc/grpc#43055,
# a regression since grpcio 1.80. A subprocess started with user= or preexec_fn forks
# rather than spawns, so a PostgreSQL started as its own user died in CI. gRPC's own
# workaround: fork support off, set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from tests.services import service_modules  # noqa: E402
from tests.topic import topic_filter  # noqa: E402

# Every module in tests/services/ is a plugin: its fixtures are available to every test.
pytest_plugins = service_modules()

ROOT = Path(__file__).resolve().parent.parent


def load_snippet(name: str) -> ModuleType:
    """Import snippets/<chapter>/<file>.py by its path, e.g. load_snippet("protocols/tcp_echo").

    Snippets are not a package (each runs alone), so tests import them by path."""
    path = ROOT / "snippets" / f"{name}.py"
    module_name = "snippet_" + name.replace("/", "_")
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader, f"no snippet at {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    spec.loader.exec_module(module)
    return module


def in_fresh_process(path: str, expression: str, timeout: float = 120) -> Any:
    """`expression` evaluated in a new interpreter, where `m` is the module at `path` (a
    snippet or a test module, relative to the repository) and `time` is imported; the
    result comes back pickled. For measurements of CPU time that need more than one
    thread (time.process_time): it counts every thread of its process, and an xdist
    worker carries threads other tests left behind — in a hunt run, keep-alive measured
    1.2x cheaper than a new connection instead of its usual 2.3x or more, with ~1.2 ms
    of CPU per request that was not its own."""
    code = (
        "import importlib.util, pickle, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(ROOT / path)!r})\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "sys.modules['m'] = m\n"
        "spec.loader.exec_module(m)\n"
        f"sys.stdout.buffer.write(pickle.dumps(eval({expression!r})))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=timeout
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    return pickle.loads(run.stdout)


SLOW_HEADER = b"X-Slow: " + b"z" * 40


def trickle(sock: socket.socket, pace: float, data: bytes = SLOW_HEADER) -> tuple[bytes, float]:
    """A slowloris client: send `data` one byte every `pace` seconds until the server
    answers or closes. Returns (its reply, b"" if it closed, b"!" if it did neither, and
    time.perf_counter() when that was seen)."""
    for byte in data:
        if select.select([sock], [], [], pace)[0]:
            with contextlib.suppress(ConnectionResetError):
                return sock.recv(4096), time.perf_counter()
            return b"", time.perf_counter()
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return b"", time.perf_counter()
    return b"!", time.perf_counter()


def is_include_only(code: str) -> bool:
    """A fence holding only `--8<--` includes is filled in at build time, not Python."""
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("--8<--") for line in lines)


SNIPPET_COMMAND = re.compile(r"python snippets/\w+/\w+\.py")


def is_snippet_command(code: str) -> bool:
    """A shell fence that only runs snippets: test_snippets runs each of them (with the
    servers it needs, a budget and a leftover-process check), so it is not run twice."""
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    return bool(lines) and all(SNIPPET_COMMAND.fullmatch(line) for line in lines)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-outputs",
        action="store_true",
        help="write each snippet's real output to snippets/<chapter>/output/ (make outputs)",
    )
    parser.addoption(
        "--topic",
        metavar="CHAPTER/PAGE",
        help="only what is about one page (make test T=protocols/tcp-udp): see topic_ids()",
    )
    parser.addoption(
        "--repeats",
        type=int,
        default=3,
        help="runs per snippet in the snippet benchmark (make bench-snippets R=…)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markdown fences that are not code to run here are not tests: an include-only fence
    is filled in at build time, and a fence that only runs snippets is what test_snippets
    does already (with their servers, a budget and a leftover check). Deselect them, by
    rule, so that a skip always means a missing server."""

    def runs_here(item: pytest.Item) -> bool:
        if type(item).__name__ != "TestBlock":
            return True
        code = getattr(getattr(item, "obj", None), "code", "")
        return not (is_include_only(code) or is_snippet_command(code))

    about = topic_filter(config.getoption("--topic"))
    keep = [item for item in items if runs_here(item) and about(item)]
    drop = [item for item in items if not (runs_here(item) and about(item))]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


PHASES = [  # (phase, where its tests live); the first match wins
    ("snippets", "tests/test_snippets.py"),
    ("labs", "tests/labs/"),
    ("notebooks", "tests/test_notebooks.py"),
    ("build", "tests/site/test_build.py"),
    ("services", "tests/test_services.py"),
    ("browser", "tests/site/"),
    ("structure", "tests/test_"),
    ("page fences", "docs/"),
    ("behaviour", "tests/"),
]
PHASE_SECONDS: dict[str, float] = {}
PHASE_CPU: dict[str, float] = {}
PHASE_TESTS: dict[str, int] = {}
RUN_STARTED = time.perf_counter()


def cpu_seconds() -> float:
    """CPU used by this process and by the child processes it has reaped (user + system).
    A child's CPU counts once it exits and is waited for: a server started for the session
    counts at the end of the last test that used it; a daemon that detaches from its parent
    (PostgreSQL under pg_ctl) is not counted at all."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Each report carries the CPU its step used (in user_properties, which xdist sends on
    to the controller): with the wall time it tells a step that computes from one that waits."""
    outcome = yield
    report = outcome.get_result()
    started = item.stash.get(CPU_AT_START, None)
    now = cpu_seconds()
    if started is not None:
        report.user_properties.append(("cpu_seconds", round(now - started, 3)))
    if call.when == "teardown" and item.stash.get(LAST_ON_WORKER, False):
        # The worker's session ends here: the servers, browsers and fork servers it kept
        # are reaped now, so their whole CPU lands in this step, not in this test's phase.
        report.user_properties.append(("cpu_phase", SESSION_END))
    item.stash[CPU_AT_START] = now


CPU_AT_START = pytest.StashKey[float]()
LAST_ON_WORKER = pytest.StashKey[bool]()
SESSION_END = "session end (reaped servers)"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.stash[LAST_ON_WORKER] = nextitem is None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[CPU_AT_START] = cpu_seconds()


def phase_of(nodeid: str) -> str:
    return next(name for name, prefix in PHASES if nodeid.startswith(prefix) or name == "behaviour")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up where the time went (on the xdist controller, every worker's reports)."""
    phase = phase_of(report.nodeid)
    PHASE_SECONDS[phase] = PHASE_SECONDS.get(phase, 0.0) + report.duration
    properties = dict(report.user_properties)
    cpu_phase = properties.get("cpu_phase", phase)
    PHASE_CPU[cpu_phase] = PHASE_CPU.get(cpu_phase, 0.0) + properties.get("cpu_seconds", 0.0)
    if report.when == "call" or (report.when == "setup" and report.skipped):
        PHASE_TESTS[phase] = PHASE_TESTS.get(phase, 0) + 1


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if not PHASE_SECONDS or hasattr(config, "workerinput"):
        return
    wall = time.perf_counter() - RUN_STARTED
    write = terminalreporter.write_line
    write("")
    write("where the time went (test time and CPU, summed over the workers; CPU includes the")
    write("processes each test started and reaped: far below the test time means waiting):")
    rows = sorted(PHASE_SECONDS.items(), key=lambda item: -item[1])
    lint = os.environ.get("LINT_SECONDS")
    if lint:
        write(f"  {'lint (ruff, before pytest)':<28} {float(lint):7.1f} s wall")
    for phase, seconds in rows:
        cpu, tests = PHASE_CPU.get(phase, 0.0), PHASE_TESTS.get(phase, 0)
        write(f"  {phase:<28} {seconds:7.1f} s  {cpu:7.1f} s CPU  {tests:4d} tests")
    if SESSION_END in PHASE_CPU:
        write(f"  {SESSION_END:<28} {'':7}    {PHASE_CPU[SESSION_END]:7.1f} s CPU")
    total, cpu = sum(PHASE_SECONDS.values()), sum(PHASE_CPU.values())
    cores = os.cpu_count() or 1
    write(f"  {'all tests':<28} {total:7.1f} s  {cpu:7.1f} s CPU  in {wall:.1f} s of wall time")
    write(f"  the CPU kept {cpu / (wall * cores):.0%} of {cores} cores busy")
