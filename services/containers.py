"""Linux namespaces and a memory cgroup, for the containers page (docs/operations/
containers.md): its snippets run `unshare` to give a process its own PID, mount, network
and hostname namespaces, and make a child memory cgroup with a limit. That needs Linux and
root (CAP_SYS_ADMIN), and a writable memory cgroup (v2's `memory.max`, or v1's
`memory.limit_in_bytes` where the v1 memory controller is mounted): this module tries
both in throwaway form, and provides unshare's path."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from services import SBIN, Install, Missing, Started

NAME = "Linux namespaces and cgroups"
BINARY_ONLY = True  # the snippets run unshare and make their own cgroups
PROVIDES = ("UNSHARE_BIN",)
INSTALL = Install(apt="util-linux", brew="(Linux only)")
V2, V1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")


def memory_cgroup_parent() -> Path | None:
    """Where a child memory cgroup can be made: the v2 root when it delegates the memory
    controller to its children, else our own cgroup in the v1 memory hierarchy."""
    controllers = V2 / "cgroup.subtree_control"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return V2
    if (V1 / "memory.limit_in_bytes").exists():
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if "memory" in names.split(","):
                return V1 / path.lstrip("/")
    return None


def unshare_binary() -> Path:
    if sys.platform != "linux":
        raise Missing("namespaces and cgroups are Linux's: the containers page needs Linux")
    unshare = shutil.which("unshare", path=f"{SBIN}:/usr/bin:/bin")
    if not unshare:
        raise Missing(f"unshare is not installed. Install it with:\n{INSTALL.lines()}")
    if os.geteuid() != 0:
        raise Missing(
            "new PID, mount and network namespaces and a memory cgroup need root: run the"
            " containers page's tests and snippets as root, e.g."
            " sudo make run S=operations/containers_namespaces"
        )
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "--net", "--uts", "--mount", "true"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    if probe.returncode:
        raise Missing(
            f"root, but unshare could not make the namespaces ({probe.stderr.strip()[:200]});"
            " a container needs --privileged (or --cap-add SYS_ADMIN and no seccomp/AppArmor"
            " confinement) for this page"
        )
    parent = memory_cgroup_parent()
    probe_dir = parent / f"bf-probe-{os.getpid()}" if parent else None
    try:
        if probe_dir is None:
            raise OSError("no memory controller found in /sys/fs/cgroup (v2) or (v1)/memory")
        probe_dir.mkdir()
        probe_dir.rmdir()
    except OSError as error:
        raise Missing(
            f"root, but no memory cgroup could be made ({error}); the memory limit snippet"
            " needs a writable /sys/fs/cgroup with the memory controller"
        ) from None
    return Path(unshare)


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = unshare_binary()
    yield Started({"UNSHARE_BIN": str(binary)}, f"{NAME} ({binary}), made by the snippets as root")


binary = unshare_binary  # every service module has one: found, or Missing with the reason
