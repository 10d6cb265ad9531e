"""Sequential vs random reads, cold and warm: the page cache hides the disk until it is dropped.

Run: python snippets/databases/disk_reads.py
"""

from __future__ import annotations

import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

PAGE = 4096
FILE_SIZE = 64 * 1024 * 1024  # 64 MiB: 16,384 pages


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


def make_file(path: Path, size: int = FILE_SIZE) -> None:
    """Write the file and fsync it, so its cached pages are clean and can be dropped."""
    chunk = os.urandom(1024 * 1024)
    with path.open("wb") as f:
        for _ in range(size // len(chunk)):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


# --8<-- [start:cold]
def drop_from_page_cache(fd: int) -> bool:
    """Ask the kernel to evict this file's clean pages (POSIX_FADV_DONTNEED). It is advice:
    dirty or mapped pages stay, and a disk or hypervisor cache below may still hold them.
    Returns False where the call does not exist (macOS, Windows)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return True


def read_pages(fd: int, offsets: list[int]) -> float:
    """Seconds per page to pread() each 4 KiB page at the given offsets, in that order."""
    start = time.perf_counter()
    for offset in offsets:
        if len(os.pread(fd, PAGE, offset)) != PAGE:
            raise OSError(f"short read at {offset}")
    return (time.perf_counter() - start) / len(offsets)


def measure(path: Path, pages: int = 2000, rounds: int = 3, seed: int = 1) -> dict[str, float]:
    """Median seconds per page for each access pattern, cold (cache dropped) and warm."""
    rng = random.Random(seed)
    results: dict[str, list[float]] = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        total = os.fstat(fd).st_size // PAGE
        for _ in range(rounds):
            start = rng.randrange(total - pages)
            patterns = {
                "sequential": [(start + i) * PAGE for i in range(pages)],
                "random": [p * PAGE for p in rng.sample(range(total), pages)],
            }
            for name, offsets in patterns.items():
                drop_from_page_cache(fd)
                results.setdefault(f"{name}, cold", []).append(read_pages(fd, offsets))
                results.setdefault(f"{name}, warm", []).append(read_pages(fd, offsets))
    finally:
        os.close(fd)
    return {name: statistics.median(times) for name, times in results.items()}


# --8<-- [end:cold]


def main() -> None:
    directory, in_memory = disk_backed_tempdir()
    if in_memory:
        print(IN_MEMORY_NOTE.format(what="every read below is warm"), file=sys.stderr)
    with directory as tmp:
        path = Path(tmp) / "data.bin"
        make_file(path)
        if not hasattr(os, "posix_fadvise"):
            print("no posix_fadvise here: every read below is warm (served from the page cache)")
        result = measure(path)
    print("2000 reads of 4 KiB from a 64 MiB file, median of 3 rounds")
    for name, seconds in result.items():
        print(f"  {name:<17} {seconds * 1e6:8.1f} µs per page")
    cold_random, cold_seq = result["random, cold"], result["sequential, cold"]
    print(f"cold: random reads were {cold_random / cold_seq:.1f}x slower than sequential")
    print(f"random reads: cold was {cold_random / result['random, warm']:.1f}x slower than warm")


if __name__ == "__main__":
    main()
