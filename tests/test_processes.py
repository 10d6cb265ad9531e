"""services/processes.py: a process group is signalled only while its leader is unreaped,
so its id cannot have been handed to another process (PID reuse)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from services.processes import exit_status, group_members, stop_group, wait_for_exit

# A leader that starts a child ignoring SIGTERM, prints the child's PID and exits.
LEAVES_A_CHILD = """
import signal, subprocess, sys
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print(child.pid, flush=True)
"""


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_until_gone(pid: int, timeout: float) -> bool:
    """True once `pid` has exited (a pidfd turns readable), False after `timeout`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def test_an_exited_leader_stays_unreaped_until_its_group_is_stopped():
    proc = start(LEAVES_A_CHILD)
    child = int(proc.stdout.readline())
    assert wait_for_exit(proc, timeout=30) == 0
    # Exited but not reaped: a zombie still holds the PID, which is the group's id.
    assert proc.returncode is None
    assert Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert exit_status(proc) == 0 and group_members(proc.pid) == [child]
    assert stop_group(proc) == 0  # the child is killed, then the leader reaped
    assert wait_until_gone(child, timeout=30)
    assert proc.returncode == 0 and not Path(f"/proc/{proc.pid}").exists()
    proc.stdout.close()


def test_stop_group_kills_a_child_that_ignores_sigterm_after_the_grace():
    proc = start(LEAVES_A_CHILD + "import time; time.sleep(60)\n")
    child = int(proc.stdout.readline())
    assert exit_status(proc) is None and wait_for_exit(proc, timeout=0.1) is None
    assert stop_group(proc, grace=5) == -15  # the leader took SIGTERM; the child ignored it
    # SIGKILL is delivered asynchronously: wait (on the kernel's word) until the child is gone.
    assert wait_until_gone(child, timeout=30) and not group_members(proc.pid)
    proc.stdout.close()


# A child that imports `what`, prints its PID and exits when its stdin closes.
EXITS_ON_EOF = "import sys, {what}; print(__import__('os').getpid(), flush=True); sys.stdin.read()"


# A stand-in server: echoes one line, then waits for its stdin to close.
ECHOES_A_LINE = (
    "import sys; sys.stdout.write(sys.stdin.readline()); sys.stdout.flush(); sys.stdin.read()"
)


def sleeper(mirakuru_uuid: str) -> subprocess.Popen:
    env = {**os.environ, "mirakuru_uuid": mirakuru_uuid}
    return subprocess.Popen(
        [sys.executable, "-c", ECHOES_A_LINE],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,  # nothing held back in a buffer, to be flushed into a closed pipe later
    )


def still_runs(proc: subprocess.Popen) -> bool:
    """Asked after any kill was sent: does it still run its own code? It echoes a line if
    so. A process with a SIGKILL pending never runs another instruction of its own, so a
    killed one can only close the pipe (EOF). A readiness signal either way: no waiting for
    a kill that may not come."""
    try:
        proc.stdin.write(b"alive?\n")
    except BrokenPipeError:
        return False
    # Noise budget: the answer (echo or EOF) comes within milliseconds; 30 s is a hang.
    assert select.select([proc.stdout], [], [], 30)[0], "neither echoed nor exited in 30 s"
    return proc.stdout.readline() == b"alive?\n"


def survivors_after_exit(what: str) -> tuple[bool, bool]:
    """(another process's server survives, our own server survives) when a process that
    imported `what` exits: the other's mirakuru_uuid merely contains our PID."""
    child = subprocess.Popen(
        [sys.executable, "-c", EXITS_ON_EOF.format(what=what)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = int(child.stdout.readline())
    others, ours = sleeper(f"9{pid}:0f1e"), sleeper(f"{pid}:0f1e")
    try:
        child.stdin.close()
        child.wait(timeout=30)  # its exit hook has sent its signals by now
        return still_runs(others), still_runs(ours)
    finally:
        for proc in (others, ours, child):
            proc.kill()
            proc.wait()
        for proc in (others, ours):
            proc.stdin.close()
            proc.stdout.close()
        child.stdout.close()


def test_an_exiting_process_kills_only_the_servers_it_started():
    """mirakuru's own exit hook matches the PID as a substring and kills another process's
    server (the control); ours, installed by importing `services`, kills only its own."""
    assert survivors_after_exit("mirakuru.base") == (False, False)
    assert survivors_after_exit("services") == (True, False)
