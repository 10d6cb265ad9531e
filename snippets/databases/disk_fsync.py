"""fsync per write costs a trip to the device; write() alone only copies into the page cache.

Run: python snippets/databases/disk_fsync.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RECORD = b"x" * 4096


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
    with tempfile.TemporaryDirectory() as tmp:
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
