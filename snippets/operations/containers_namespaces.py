"""A container is a process with its own view of the machine: `unshare` gives a shell new
PID, mount, network and hostname (UTS) namespaces, and the same commands report PID 1, a
handful of processes, only a loopback interface and a hostname of its own — while the host
still sees it as one ordinary process and keeps its own hostname and mounts.

Run: python snippets/operations/containers_namespaces.py   (as root, on Linux)
Needs: UNSHARE_BIN
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# --8<-- [start:probe]
# What a process can see: its PID, how many processes /proc lists, its network interfaces
# (/proc/net/dev is per network namespace), its hostname, and a file in a directory.
LOOK = """
echo "pid $$"
n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo "processes $n"
echo "interfaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
echo "hostname $(hostname)"
echo "file $(ls "$1")"
"""
# Inside the namespaces it also changes what it can: the hostname, and a tmpfs mounted on
# the directory with a file in it. Then it waits until the host has looked at it.
CHANGE = 'hostname box && mount -t tmpfs tmpfs "$1" && touch "$1/made-inside"\n'
WAIT = "echo ready; read _\n"

NAMESPACES = ["--pid", "--fork", "--mount-proc", "--mount", "--net", "--uts"]
# --8<-- [end:probe]


@dataclass(frozen=True)
class View:
    pid: str
    processes: int
    interfaces: str
    hostname: str
    file: str


def parse(lines: list[str]) -> View:
    seen = dict(line.split(" ", 1) if " " in line else (line, "") for line in lines)
    return View(
        seen["pid"], int(seen["processes"]), seen["interfaces"].strip(), seen["hostname"],
        seen["file"].strip(),
    )  # fmt: skip


@dataclass(frozen=True)
class Result:
    inside: View
    host: View  # the same commands on the host, while the namespaced shell still runs
    nspid: str  # the kernel's NSpid line for the shell: its PID in each namespace
    host_hostname_after: str
    host_file_after: str  # what the host sees in the directory after it has exited


# --8<-- [start:run]
def look_inside(unshare: str = "unshare") -> Result:
    with tempfile.TemporaryDirectory(prefix="containers-") as directory:
        script = CHANGE + LOOK + WAIT
        shell = subprocess.Popen(
            [unshare, *NAMESPACES, "sh", "-c", script, "sh", directory],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert shell.stdout is not None and shell.stdin is not None
            lines = []
            while (line := shell.stdout.readline().strip()) != "ready":
                if not line:
                    raise RuntimeError(f"unshare failed (exit {shell.poll()})")
                lines.append(line)
            # unshare --fork made the shell as its child: find it from the host
            # (without --fork, unshare has exec'd the shell: it is that process itself)
            children = Path(f"/proc/{shell.pid}/task/{shell.pid}/children").read_text().split()
            status = Path(f"/proc/{children[0] if children else shell.pid}/status").read_text()
            nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
            host = run_on_host(directory)  # while the namespaced shell is still running
            shell.stdin.write("\n")
            shell.stdin.flush()
            shell.wait(timeout=10)
        finally:
            if shell.poll() is None:
                shell.kill()
                shell.wait(timeout=10)
        return Result(
            parse(lines), host, nspid.split(":", 1)[1].split(), socket.gethostname(),
            " ".join(os.listdir(directory)),
        )  # fmt: skip


def run_on_host(directory: str) -> View:
    """The control: the same LOOK commands, without unshare (and without CHANGE)."""
    out = subprocess.run(
        ["sh", "-c", LOOK, "sh", directory], capture_output=True, text=True, timeout=10
    )
    return parse(out.stdout.splitlines())


# --8<-- [end:run]


def main() -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        sys.exit("namespaces are Linux's, and these need root: sudo python " + __file__)
    r = look_inside(os.environ.get("UNSHARE_BIN") or shutil.which("unshare") or "unshare")
    print(f"{'':24}{'inside the namespaces':24}on the host, meanwhile")
    print(f"{'PID of the shell':24}{r.inside.pid:24}~{r.nspid[0]}")
    print(f"{'processes in /proc':24}{r.inside.processes:<24}~{r.host.processes}")
    others = len([i for i in r.host.interfaces.split() if i != "lo"])
    print(f"{'network interfaces':24}{r.inside.interfaces:24}lo + ~{others} more")
    same = "the host's own" if r.host.hostname != r.inside.hostname else "the same?"
    print(f"{'hostname':24}{r.inside.hostname:24}{same}")
    print(f"{'the directory holds':24}{r.inside.file:24}{r.host.file or '(nothing)'}")
    print(f"The kernel's NSpid line for the shell: ~{r.nspid[0]} on the host, {r.nspid[1]} inside.")
    kept = "unchanged" if r.host_hostname_after == r.host.hostname else "CHANGED"
    left = r.host_file_after or "nothing"
    print(f"After it exited: the host's hostname {kept}, the directory holds {left}.")


if __name__ == "__main__":
    main()
