"""`make cpu-map`: where the CPU of a whole `make test` goes, by kind of process (root only).

    make cpu-map                                  # or: .venv/bin/python -m tests.cpu_map
    .venv/bin/python -m tests.cpu_map -- make test T=protocols/tcp-udp

`make test`'s own table counts a process's CPU when its parent reaps it, so it misses what
is never reaped by a test worker (a daemon that detaches, each worker's start-up and
collection, the xdist controller) and files a worker's whole session of servers and
browsers under "session end". This runs the command in a Linux control group (cgroup v1
cpuacct, or v2 with the cpu controller), where the kernel charges every process's CPU to
its group from the moment it exists, and moves each process into a group of its kind by
its command line every 0.2 s (its children are born in that group; a process spends at
most one sweep in its parent's group before it is moved). It prints CPU seconds per kind
and the total, and the command's exit status is its own.

Needs root and a writable cgroup hierarchy (CI machines, this project's VMs); elsewhere it
says so and exits 2. Not part of `make test`: it runs `make test` (about 10 minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

KINDS = [  # (kind, pattern on the command line); the first match wins
    ("PostgreSQL", r"(^|/)postgres( |$)|^postgres:"),
    ("RabbitMQ (Erlang)", r"beam\.smp|(^|/)epmd|erl_child_setup|inet_gethost"),
    ("Redis", r"redis-server"),
    ("NATS", r"nats-server"),
    ("NGINX, Apache, HAProxy, proxies", r"nginx|apache2|haproxy|tinyproxy|squid|unbound"),
    ("Chromium and Playwright's driver", r"chrom|(^|/)node "),
    ("notebook kernels", r"ipykernel|jupyter"),
    ("pytest workers (tests, site build)", r"-c import sys;exec\(eval\(sys\.stdin"),
    ("pytest controller", r"-m pytest"),
    ("snippets", r"snippets/"),
    ("labs", r"(^|[ /])labs/|forkserver"),
    ("ruff and make", r"(^|/)(ruff|make) "),
    ("other Python processes", r"python"),
]
OTHER = "everything else"
SWEEP = 0.2  # seconds between moves


def kind_of(command_line: str) -> str:
    """The kind a process belongs to, from its command line (arguments joined by spaces)."""
    return next((kind for kind, pattern in KINDS if re.search(pattern, command_line)), OTHER)


class Groups:
    """One control group per kind under a fresh parent; usage in seconds per kind."""

    def __init__(self) -> None:
        v1 = Path("/sys/fs/cgroup/cpuacct")
        self.v2 = not v1.is_dir()
        root = Path("/sys/fs/cgroup") if self.v2 else v1
        self.parent = root / f"cpu-map-{os.getpid()}"
        self.parent.mkdir()
        if self.v2:  # cpu.stat needs the cpu controller enabled for the children
            (self.parent / "cgroup.subtree_control").write_text("+cpu")
        self.dirs = {}
        for number, kind in enumerate([k for k, _ in KINDS] + [OTHER]):
            path = self.parent / f"kind{number}"
            path.mkdir()
            self.dirs[kind] = path

    def move(self, pid: int, kind: str) -> None:
        (self.dirs[kind] / "cgroup.procs").write_text(str(pid))

    def members(self, kind: str) -> list[int]:
        text = (self.dirs[kind] / "cgroup.procs").read_text()
        return [int(pid) for pid in text.split()]

    def seconds(self, kind: str) -> float:
        if self.v2:
            for line in (self.dirs[kind] / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
            return 0.0
        return int((self.dirs[kind] / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        """Empty groups only can go: called after the command and its children ended."""
        for path in self.dirs.values():
            for pid in (path / "cgroup.procs").read_text().split():  # stragglers: back up
                (self.parent.parent / "cgroup.procs").write_text(pid)
            path.rmdir()
        self.parent.rmdir()


def command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None  # gone already
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


def sort_processes(groups: Groups, placed: dict[int, str]) -> None:
    """Move every process not yet in its kind's group there. Kernel threads and processes
    that exited meanwhile are skipped."""
    for kind in groups.dirs:
        for pid in groups.members(kind):
            line = command_line(pid)
            if line is None:
                continue
            wanted = kind_of(line)
            if placed.get(pid) != wanted and wanted != kind:
                try:
                    groups.move(pid, wanted)
                    placed[pid] = wanted
                except OSError:
                    pass  # exited between reading and moving


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="*", default=["make", "test"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("cpu-map needs root (it creates control groups); run it on CI or as root")
        return 2
    try:
        groups = Groups()
    except OSError as error:
        print(f"cpu-map needs a writable cgroup hierarchy with cpuacct or cpu: {error}")
        return 2
    placed: dict[int, str] = {}
    started = time.monotonic()
    try:
        # the child joins a group before it runs the command: every descendant is counted
        child = subprocess.Popen(args.command, preexec_fn=lambda: groups.move(os.getpid(), OTHER))
        while child.poll() is None:
            sort_processes(groups, placed)
            time.sleep(SWEEP)
        wall = time.monotonic() - started
        used = {kind: groups.seconds(kind) for kind in groups.dirs}
    finally:
        deadline = time.monotonic() + 30  # a process left running is reported by make test
        while time.monotonic() < deadline and any(groups.members(k) for k in groups.dirs):
            time.sleep(SWEEP)
        groups.remove()
    total = sum(used.values())
    print(f"\nCPU of `{' '.join(args.command)}` by kind of process (cgroup accounting):")
    for kind, seconds in sorted(used.items(), key=lambda item: -item[1]):
        if seconds >= 0.05:
            print(f"  {kind:<36} {seconds:7.1f} s CPU  {seconds / total:5.1%}")
    cores = os.cpu_count() or 1
    print(f"  {'total':<36} {total:7.1f} s CPU in {wall:.1f} s of wall time")
    print(f"  the CPU kept {total / (wall * cores):.0%} of {cores} cores busy")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
