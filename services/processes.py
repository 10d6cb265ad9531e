"""Stopping a process and everything in its process group, without ever signalling a
stranger.

A process started with `start_new_session=True` leads its own group, whose id is its PID.
Once the leader has been *reaped* (`Popen.wait()` or `.poll()` after it exited), that PID
is free: the kernel may hand it to a new process at any moment, and if that process leads
a group too (another test's server, started in its own session), `os.killpg(old_pid, …)`
kills it. A busy machine cycles through PIDs fast enough for this to happen: a flake hunt
saw a parallel worker's PostgreSQL die of SIGKILL. While the leader has exited but is not
yet reaped (a zombie), its PID — and so the group id — cannot be reused.

So: look at a leader's exit without reaping it (`exit_status`, `wait_for_exit`), signal
its group only while it is unreaped, and reap it last (`stop_group`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path


def exit_status(proc: subprocess.Popen) -> int | None:
    """The process's exit code (negative: killed by that signal) if it has exited, else
    None — without reaping it, so its PID stays reserved."""
    if proc.returncode is not None:  # reaped already (by Popen): nothing to reserve
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped by someone else's wait()
        return proc.poll()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def wait_for_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    """Wait up to `timeout` seconds for the process to exit, without reaping it; its exit
    code, or None if it is still running."""
    deadline = time.monotonic() + timeout
    if proc.returncode is None and hasattr(os, "pidfd_open"):  # Linux: woken on exit
        with contextlib.suppress(ProcessLookupError, OSError):
            fd = os.pidfd_open(proc.pid)
            try:
                select.select([fd], [], [], max(0.0, timeout))
            finally:
                os.close(fd)
            return exit_status(proc)
    while (status := exit_status(proc)) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # elsewhere: poll for the exit (no readiness signal to wait on)
    return status


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid` (Linux: read from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(stat.parent.name))
    return members


def stop_group(proc: subprocess.Popen, grace: float = 0.0) -> int:
    """Stop a process that leads its own group, and every process in that group; reap it
    and return its exit code. With `grace`, SIGTERM first and wait that long for a clean
    exit; then SIGKILL whatever is left in the group (children that ignored SIGTERM, or
    that the leader left behind when it exited)."""
    if grace > 0 and exit_status(proc) is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        wait_for_exit(proc, grace)
    if proc.returncode is None:  # not reaped: the group id is still ours to signal
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()
