"""A cgroup memory limit, as a container runtime sets it: a process that allocates past the
limit is killed by the kernel with SIGKILL (no handler runs, a `except MemoryError` does not
help); under a higher limit the same program finishes; an address-space rlimit instead makes
the allocation fail inside the program, where it can be caught.

Run: python snippets/operations/containers_memory_limit.py   (as root, on Linux)
Needs: UNSHARE_BIN
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
V2, V1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")

# --8<-- [start:program]
# The program under the limit: allocate 8 MiB at a time, write to every page (memory is
# charged when touched, not when reserved), and report the total after each step.
PROGRAM = """
import resource, sys
chunks, target, rlimit_mib = [], int(sys.argv[1]), int(sys.argv[2])
if rlimit_mib:  # cap the address space instead: its size now + rlimit_mib
    size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + rlimit_mib * 2**20,) * 2)
try:
    while len(chunks) * 8 < target:
        chunk = bytearray(8 * 1024 * 1024)
        chunk[::4096] = b"x" * (len(chunk) // 4096)  # touch every page
        chunks.append(chunk)
        print(len(chunks) * 8, flush=True)
except MemoryError:
    print("MemoryError", flush=True)  # raised by a failed allocation, inside the program
"""
# --8<-- [end:program]


# --8<-- [start:cgroup]
@dataclass(frozen=True)
class Cgroup:
    """A child memory cgroup: v2 (`memory.max`, most current distributions) or v1
    (`memory.limit_in_bytes`, where the v1 memory controller is mounted)."""

    path: Path
    version: int

    def limit(self, limit_bytes: int) -> None:
        if self.version == 2:
            (self.path / "memory.max").write_text(str(limit_bytes))
            swap = self.path / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")  # no swapping instead of being killed
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            swap = self.path / "memory.memsw.limit_in_bytes"  # memory + swap, v1
            if swap.exists():
                swap.write_text(str(limit_bytes))

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer killed in this cgroup."""
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self.path / events).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise RuntimeError(f"no oom_kill line in {events}")


def parent() -> tuple[Path, int]:
    controllers = V2 / "cgroup.subtree_control"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return V2, 2  # the v2 root: children may have processes and a memory limit
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if "memory" in names.split(",") and (V1 / "memory.limit_in_bytes").exists():
            return V1 / path.lstrip("/"), 1
    raise RuntimeError("no memory cgroup controller (v2 or v1) found in /sys/fs/cgroup")


@contextlib.contextmanager
def cgroup(name: str, limit_bytes: int) -> Iterator[Cgroup]:
    base, version = parent()
    group = Cgroup(base / f"{name}-{os.getpid()}", version)
    group.path.mkdir()
    try:
        group.limit(limit_bytes)
        yield group
    finally:
        group.path.rmdir()  # only once its processes have exited


# --8<-- [end:cgroup]


@dataclass(frozen=True)
class Run:
    reached_mib: int  # the last total the program reported
    exit_status: int  # negative: killed by that signal
    said_memory_error: bool
    oom_kills: int


# --8<-- [start:run]
def run_in_cgroup(limit_mib: int, target_mib: int) -> Run:
    """Start the program inside a new memory cgroup (it joins before it allocates)."""
    with cgroup("containers-memory", limit_mib * MIB) as group:
        procs = group.path / "cgroup.procs"

        def join() -> None:  # runs in the child between fork and exec
            procs.write_text(str(os.getpid()))

        lines = run_program(target_mib, preexec_fn=join)
        return Run(*lines, oom_kills=group.oom_kills())


def run_with_rlimit(rlimit_mib: int, target_mib: int) -> Run:
    """No cgroup: the program caps its own address space (RLIMIT_AS), which the kernel
    checks when memory is asked for, so the allocation fails with ENOMEM and Python raises
    MemoryError, which the program catches."""
    return Run(*run_program(target_mib, rlimit_mib=rlimit_mib), oom_kills=None)


# --8<-- [end:run]


def run_program(
    target_mib: int, preexec_fn: Callable[[], None] | None = None, rlimit_mib: int = 0
) -> tuple[int, int, bool]:
    child = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(target_mib), str(rlimit_mib)],
        preexec_fn=preexec_fn,  # noqa: PLW1509 (this process starts no threads)
        capture_output=True,
        text=True,
        timeout=30,
    )
    reports = child.stdout.split()
    totals = [int(r) for r in reports if r.isdigit()]
    return (totals[-1] if totals else 0), child.returncode, "MemoryError" in reports


def describe(run: Run) -> str:
    if run.exit_status < 0:
        how = f"killed by {signal.Signals(-run.exit_status).name}"
    else:
        how = f"exited {run.exit_status}"
    caught = ", caught MemoryError" if run.said_memory_error else ""
    kills = "" if run.oom_kills is None else f"; OOM kills in its cgroup: {run.oom_kills}"
    return f"reached ~{run.reached_mib} MiB{caught}, {how}{kills}"


def main() -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        sys.exit("cgroups are Linux's, and making one needs root: sudo python " + __file__)
    print(f"cgroup v{parent()[1]}", file=sys.stderr)  # which interface this machine has
    print("The program allocates 8 MiB at a time (writing every page), up to 128 MiB.")
    print(f"limit  64 MiB: {describe(run_in_cgroup(64, 128))}")
    print(f"limit 256 MiB: {describe(run_in_cgroup(256, 128))}")
    print(f"no cgroup, RLIMIT_AS +64 MiB: {describe(run_with_rlimit(64, 128))}")


if __name__ == "__main__":
    main()
