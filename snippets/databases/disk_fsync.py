"""fsync per write costs a trip to the device; write() alone only copies into the page cache.

Run: python snippets/databases/disk_fsync.py
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RECORD = b"x" * 4096


# --8<-- [start:where]
MEMORY_FILE_SYSTEMS = {"tmpfs", "ramfs"}  # their "disk" is the page cache itself
IN_MEMORY_NOTE = (
    "note: only a memory file system (tmpfs) is available for the temp files, so nothing"
    " here reaches a disk: {what}"
)


def file_system_type(path: Path) -> str | None:
    """The type of the file system holding path, from /proc/self/mountinfo (Linux);
    None where that file does not exist (macOS, Windows)."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target, best, kind = os.path.realpath(path), "", None
    for line in mounts:
        fields, _, after = line.partition(" - ")
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields.split()[4])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):  # the deepest mount, the latest on a tie
            best, kind = mount, after.split()[0]
    return kind


def disk_backed_tempdir() -> tuple[tempfile.TemporaryDirectory[str], bool]:
    """A temp dir on a disk-backed file system: /var/tmp if usable (/tmp is tmpfs on many
    Linux systems), else the default one. Returns it, and True if it is in memory after all."""
    for parent in ("/var/tmp", tempfile.gettempdir()):
        if os.access(parent, os.W_OK) and file_system_type(Path(parent)) not in MEMORY_FILE_SYSTEMS:
            return tempfile.TemporaryDirectory(prefix="disk-io-", dir=parent), False
    return tempfile.TemporaryDirectory(prefix="disk-io-"), True


# --8<-- [end:where]


# --8<-- [start:fsync]
def append_records(path: Path, n: int, sync: Callable[[int], None] | None) -> float:
    """Seconds per append of a 4 KiB record, calling sync(fd) after each one if given."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, RECORD)
            if sync is not None:
                sync(fd)
        return (time.perf_counter() - start) / n
    finally:
        os.close(fd)


def compare(directory: Path, n: int = 30, rounds: int = 3) -> dict[str, float]:
    """Median seconds per append for each policy, interleaved over several rounds."""
    policies: dict[str, tuple[Callable[[int], None] | None, int]] = {
        "write only": (None, n * 10),
        "write + fdatasync": (os.fdatasync, n),
        "write + fsync": (os.fsync, n),
    }
    times: dict[str, list[float]] = {name: [] for name in policies}
    for round_ in range(rounds):
        for name, (sync, count) in policies.items():
            path = directory / f"{name.replace(' ', '_')}_{round_}.log"
            times[name].append(append_records(path, count, sync))
    return {name: statistics.median(t) for name, t in times.items()}


# --8<-- [end:fsync]


def main() -> None:
    directory, in_memory = disk_backed_tempdir()
    if in_memory:
        print(IN_MEMORY_NOTE.format(what="fsync has nothing to flush"), file=sys.stderr)
    with directory as tmp:
        result = compare(Path(tmp))
    print("appending 4 KiB records, median of 3 rounds")
    for name, seconds in result.items():
        print(f"  {name:<18} {seconds * 1e6:9.1f} µs per record")
    print(
        f"fsync per record was {result['write + fsync'] / result['write only']:.1f}x slower"
        f" than write() alone"
    )


if __name__ == "__main__":
    main()
