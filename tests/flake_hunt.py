"""The flake hunt: run `make test`'s parallel phase N times and print what failed.

    make flakes N=10            # or: .venv/bin/python -m tests.flake_hunt --runs 10

Every run uses a new random test order (pytest-randomly; its seed is printed, and
`--randomly-seed=SEED` replays it), and every third run uses twice as many workers as
the machine has cores, which is what a busy CI machine looks like. After each run it
looks for processes the run left behind: every process pytest starts inherits an
environment mark, so a server that outlived its fixture is found even when it left
pytest's process group. The table at the end is Markdown: run, seed, workers, wall
time, passed, failed, the failing test ids, leftover processes. It exits 1 if any run
failed or left a process behind. It is not part of `make test` (ten runs take ~30 min).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from tests.snippet_output import ROOT, marked_processes

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


SERVERS = ("postgres", "redis-server", "nginx", "apache2", "chromium", "chrome", "haproxy")


def server_processes() -> set[int]:
    """Live processes of a server binary. Redis, NGINX and PostgreSQL's children rewrite
    their process title over their environment, so the run's mark cannot find them;
    the binary they run (/proc/PID/exe) they cannot change."""
    found = set()
    for exe in Path("/proc").glob("[0-9]*/exe"):
        with contextlib.suppress(OSError):
            if os.readlink(exe).split("/")[-1].removesuffix(" (deleted)") in SERVERS:
                found.add(int(exe.parent.name))
    return found


def leftovers(mark: str, before: set[int], grace: float = 5.0) -> list[str]:
    """Processes still carrying the run's mark, or server processes that were not running
    before it, once pytest has exited (a killed server may take a moment to be reaped, so
    wait up to `grace` seconds for them to go)."""
    deadline = time.monotonic() + grace

    def left() -> set[int]:
        return set(marked_processes(mark)) | (server_processes() - before)

    while (pids := left()) and time.monotonic() < deadline:
        time.sleep(0.2)
    names = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            names.append(f"{pid} {cmd.strip()[:80]}")
            os.kill(pid, 9)  # the hunt never leaves them either
    return names


def hunt_once(run: int, seed: int, workers: int, extra: list[str]) -> Result:
    mark = f"FLAKE_HUNT_RUN={uuid.uuid4().hex}"
    # The report is kept (in a new private directory): a diagnosis starts from it.
    junit = Path(tempfile.mkdtemp(prefix="flake-hunt-")) / f"run{run}-seed{seed}-{workers}w.xml"
    before = server_processes()
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
    result = Result(run, seed, workers, time.perf_counter() - start, exit_code=proc.returncode)
    result.report = junit
    result.passed, result.failed, messages = outcomes(junit)
    for message in messages:
        print("  " + message.replace("\n", " "), flush=True)
    if proc.returncode not in (0, 1) and not result.failed:  # a usage error, a crash
        result.failed = [f"<pytest exit {proc.returncode}>"]
        print(output[-3000:])
    result.leftover = leftovers(mark, before)
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
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--busy-every", type=int, default=3, help="every Nth run: 2x workers")
    parser.add_argument("--seed", type=int, help="seed of the first run (then +1 each)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(10**8)
    results = []
    for run in range(1, args.runs + 1):
        busy = args.busy_every > 0 and run % args.busy_every == 0
        workers = 2 * args.workers if busy else args.workers
        seed = first + run - 1
        print(f"run {run}/{args.runs}: seed {seed}, {workers} workers ...", flush=True)
        result = hunt_once(run, seed, workers, args.pytest_args)
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
