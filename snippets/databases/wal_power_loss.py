"""A model of a power cut: acknowledged writes not fsynced are lost; fsync or group commit keep all.

Run: python snippets/databases/wal_power_loss.py
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, field

HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload


# --8<-- [start:disk]
PAGE = 4096


@dataclass
class ForgetfulDisk:
    """One log file as a power cut sees it: a model, after LazyFS.

    write() only reaches a volatile cache (the page cache, the drive's write cache) and
    marks its 4 KiB pages dirty. fsync() makes every dirty page durable. Background
    writeback (Linux's is driven by timers and thresholds) makes every page that was
    already dirty at the previous round durable, and each newer one with probability
    1/2, in no particular order (a drive may reorder writes too). A process crash loses
    nothing the kernel accepted; a power loss loses every page not yet durable, as
    LazyFS's "clear cache" does. A lost page that had later durable pages reads as zeros."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))
    data: bytearray = field(default_factory=bytearray)  # the file as the kernel sees it
    durable: dict[int, bytes] = field(default_factory=dict)  # page number -> content
    dirty: dict[int, int] = field(default_factory=dict)  # page -> round it was dirtied in
    rounds: int = 0
    fsyncs: int = 0

    def write(self, data: bytes) -> None:
        start = len(self.data)
        self.data += data
        for page in range(start // PAGE, (len(self.data) - 1) // PAGE + 1):
            self.dirty.setdefault(page, self.rounds)

    def _persist(self, pages: list[int]) -> None:
        for page in pages:
            self.durable[page] = bytes(self.data[page * PAGE : (page + 1) * PAGE])
            del self.dirty[page]

    def writeback(self) -> None:
        """The kernel flushing on its own: expired pages, and some of the rest."""
        self.rounds += 1
        expired = [p for p, dirtied in self.dirty.items() if dirtied < self.rounds - 1]
        young = [p for p in self.dirty if p not in expired and self.rng.random() < 0.5]
        self._persist(expired + young)

    def fsync(self) -> None:
        self.fsyncs += 1
        self._persist(sorted(self.dirty))

    def after_process_crash(self) -> bytes:
        return bytes(self.data)  # the kernel still writes its cache out

    def after_power_loss(self) -> bytes:
        if not self.durable:
            return b""
        last = max(self.durable)
        pages = [self.durable.get(p, b"").ljust(PAGE, b"\0") for p in range(last)]
        return b"".join(pages) + self.durable[last]


# --8<-- [end:disk]


def record(key: str) -> bytes:
    payload = f"put {key} ".encode().ljust(120, b"v")  # a 120-byte change
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def recovered_keys(data: bytes) -> set[str]:
    """Replay records until the first torn, zeroed or damaged one, as PostgreSQL does
    (replay ends at the first record whose CRC-32C fails)."""
    keys, offset = set(), 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        payload = data[offset + HEADER.size : offset + HEADER.size + length]
        if length == 0 or len(payload) < length or zlib.crc32(payload) != crc:
            break
        keys.add(payload.decode().split()[1])
        offset += HEADER.size + length
    return keys


def intact_after_damage(data: bytes, written: list[str]) -> bool:
    """Did a whole record survive *after* the point where replay stopped?"""
    survived = recovered_keys(data)
    return any(key not in survived and record(key) in data for key in written)


# --8<-- [start:policies]
def run_until_crash(
    policy: str, crash_at: int, writeback_every: int = 100, batch: int = 10
) -> tuple[ForgetfulDisk, list[str]]:
    """Clients write keys until the crash; return the disk and the keys acknowledged.

    "no fsync":     acknowledge as soon as write() returns
    "fsync each":   write(), fsync(), then acknowledge
    "group commit": write a batch of records, one fsync(), then acknowledge all of them"""
    disk, acked, pending = ForgetfulDisk(random.Random(crash_at)), [], []
    for i in range(crash_at):
        key = f"k{i}"
        disk.write(record(key))
        if policy == "no fsync":
            acked.append(key)
        elif policy == "fsync each":
            disk.fsync()
            acked.append(key)
        else:
            pending.append(key)
            if len(pending) == batch:
                disk.fsync()
                acked += pending
                pending.clear()
        if (i + 1) % writeback_every == 0:
            disk.writeback()  # the kernel flushes dirty pages on its own schedule
    return disk, acked


def count_losses(policy: str, trials: int = 20, seed: int = 1) -> dict[str, int]:
    """Crash at seeded random points; count acknowledged writes missing after recovery."""
    crash_points = random.Random(seed)
    totals = dict.fromkeys(["acked", "fsyncs", "lost on kill", "lost on power loss"], 0)
    totals["holes"] = 0  # power losses that left whole records after the damage
    for _ in range(trials):
        crash_at = crash_points.randrange(100, 1000)
        disk, acked = run_until_crash(policy, crash_at)
        totals["acked"] += len(acked)
        totals["fsyncs"] += disk.fsyncs
        for failure, data in [
            ("lost on kill", disk.after_process_crash()),
            ("lost on power loss", disk.after_power_loss()),
        ]:
            survived = recovered_keys(data)
            totals[failure] += sum(1 for key in acked if key not in survived)
        written = [f"k{i}" for i in range(crash_at)]
        totals["holes"] += intact_after_damage(disk.after_power_loss(), written)
    return totals


# --8<-- [end:policies]


def main() -> None:
    print("A model (not a real disk): 20 crashes at seeded random points, counted over all")
    print(
        f"{'policy':<14}{'acknowledged':>14}{'fsyncs':>9}{'lost on kill':>14}"
        f"{'lost on power loss':>20}{'records after damage':>22}"
    )
    for policy in ["no fsync", "fsync each", "group commit"]:
        t = count_losses(policy)
        print(
            f"{policy:<14}{t['acked']:>14}{t['fsyncs']:>9}{t['lost on kill']:>14}"
            f"{t['lost on power loss']:>20}{t['holes']:>15} of 20"
        )


if __name__ == "__main__":
    main()
