"""The flake hunt: run `make test`'s parallel phase N times and print what failed.

    make flakes N=10            # or: .venv/bin/python -m tests.flake_hunt --runs 10

Every run uses a new random test order (pytest-randomly; its seed is printed, and
`--randomly-seed=SEED` replays it). Runs use `make test`'s workers (one more than the
cores, tests/workers.py), and every third run twice as many, which is what a busy CI
machine looks like. After each run it
looks for processes the run left behind: the hunt is the subreaper of everything the
run starts, so a server that outlived its fixture is among its descendants even when it
left pytest's process group and rewrote its environment (and other work on the machine
is not counted). The table at the end is Markdown: run, seed, workers, wall
time, passed, failed, the failing test ids, leftover processes. It exits 1 if any run
failed or left a process behind. It is not part of `make test` (ten runs take ~30 min).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from tests.snippet_output import ROOT, marked_processes
from tests.workers import default_workers

# The parallel phase of `make test`, without `-p no:randomly`: order is what we vary.
PARALLEL_PHASE = ["--codeblocks", "tests", "docs", "-m", "not exclusive", "--dist", "load"]


@dataclass
class Result:
    run: int
    seed: int
    workers: int
    seconds: float
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    leftover: list[str] = field(default_factory=list)
    exit_code: int = 0
    report: Path | None = None


def outcomes(junit: Path) -> tuple[int, list[str], list[str]]:
    """(passed, ids of failed or errored tests, their messages) from a JUnit XML report."""
    passed, failed, messages = 0, [], []
    if not junit.exists():
        return 0, ["<no report: pytest crashed>"], []
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            failed.append(test_id)
            messages.append(f"{test_id}: {problem.get('message', '')[:300]}")
        elif case.find("skipped") is None:
            passed += 1
    return passed, failed, messages


def become_subreaper() -> bool:
    """Make this process the subreaper of everything the run starts (Linux prctl
    PR_SET_CHILD_SUBREAPER): a process whose parent exits is re-parented to us instead of
    to init, so whatever a run leaves behind — a daemon, a server's orphaned children
    that rewrote their environment — is among our descendants afterwards, and the servers
    of other work on the same machine are not."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: the run's mark alone finds leftovers
        return False


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def descendants(root: int) -> set[int]:
    """Live descendants of `root`; zombies re-parented to us are reaped on the way."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            pid = int(stat.parent.name)
            if state in ("Z", "X"):
                if int(ppid) == os.getpid():
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                continue
            children.setdefault(int(ppid), []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def leftovers(mark: str, grace: float = 5.0) -> list[str]:
    """Processes still carrying the run's mark, or still descended from this (subreaper)
    process, once pytest has exited and been reaped (a killed server may take a moment to
    exit, so wait up to `grace` seconds for them to go)."""
    deadline = time.monotonic() + grace

    def left() -> set[int]:
        return set(marked_processes(mark)) | descendants(os.getpid())

    while (pids := left()) and time.monotonic() < deadline:
        time.sleep(0.2)
    names = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            names.append(f"{pid} {cmd.strip()[:80]}")
            os.kill(pid, 9)  # the hunt never leaves them either
    return names


def interrupt(proc: subprocess.Popen[str]) -> None:
    """Stop a run as Ctrl-C would: pytest and its workers run their finalizers (servers
    stopped); SIGKILL to the group only if that takes more than a minute. Killing the
    workers outright would leave their servers, which run in sessions of their own."""
    os.killpg(proc.pid, signal.SIGINT)  # the leader is not reaped yet: its group id is ours
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def hunt_once(run: int, seed: int, workers: int, extra: list[str]) -> Result:
    mark = f"FLAKE_HUNT_RUN={uuid.uuid4().hex}"
    # The report is kept (in a new private directory): a diagnosis starts from it.
    junit = Path(tempfile.mkdtemp(prefix="flake-hunt-")) / f"run{run}-seed{seed}-{workers}w.xml"
    command = [
        sys.executable, "-m", "pytest", "-q", f"--randomly-seed={seed}",
        "-n", str(workers), *PARALLEL_PHASE, f"--junitxml={junit}", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **dict([mark.split("=")])},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # on a timeout, its whole group (the xdist workers) goes
    )
    try:
        output, _ = proc.communicate(timeout=3600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        output, _ = proc.communicate()
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) reaches the hunt, not the run's session
        interrupt(proc)
        print(f"interrupted; stopped what the run left: {leftovers(mark) or 'nothing'}")
        raise
    result = Result(run, seed, workers, time.perf_counter() - start, exit_code=proc.returncode)
    result.report = junit
    result.passed, result.failed, messages = outcomes(junit)
    for message in messages:
        print("  " + message.replace("\n", " "), flush=True)
    if proc.returncode not in (0, 1) and not result.failed:  # a usage error, a crash
        result.failed = [f"<pytest exit {proc.returncode}>"]
        print(output[-3000:])
    result.leftover = leftovers(mark)
    return result


def table(results: list[Result]) -> str:
    rows = [
        "| run | seed | workers | wall s | passed | failed | failing tests | left running |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.run} | {r.seed} | {r.workers} | {r.seconds:.0f} | {r.passed} "
            f"| {len(r.failed)} | {'<br>'.join(r.failed) or '–'} "
            f"| {'<br>'.join(r.leftover) or '0'} |"
        )
    failed = sum(1 for r in results if r.failed)
    left = sum(len(r.leftover) for r in results)
    rows.append(f"\n{len(results)} runs: {failed} with failures, {left} processes left running")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--busy-every", type=int, default=3, help="every Nth run: 2x workers")
    parser.add_argument("--seed", type=int, help="seed of the first run (then +1 each)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(10**8)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped like Ctrl-C
    # Started in the background by a shell (`make flakes &`), a process inherits SIGINT
    # *ignored*: Python then installs no handler, Ctrl-C/`kill -INT` did nothing, and the
    # pytest runs (which inherit the disposition) ignored interrupt()'s SIGINT too, so
    # their servers were never stopped cleanly. A handler here resets it for the children.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not become_subreaper():
        print("(not Linux: leftovers are found by the run's environment mark only)")
    results = []
    for run in range(1, args.runs + 1):
        busy = args.busy_every > 0 and run % args.busy_every == 0
        workers = 2 * args.workers if busy else args.workers
        seed = first + run - 1
        print(f"run {run}/{args.runs}: seed {seed}, {workers} workers ...", flush=True)
        try:
            result = hunt_once(run, seed, workers, args.pytest_args)
        except KeyboardInterrupt:
            print(table(results))
            return 130
        results.append(result)
        print(
            f"  {result.passed} passed, {len(result.failed)} failed, "
            f"{len(result.leftover)} left running, {result.seconds:.0f} s; report {result.report}",
            flush=True,
        )
    print()
    print(table(results))
    return 1 if any(r.failed or r.leftover for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
