"""A power cut loses acknowledged writes that were not fsynced; fsync or group commit loses none.

Run: python snippets/databases/wal_power_loss.py
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, field

HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload


# --8<-- [start:disk]
@dataclass
class ForgetfulDisk:
    """One log file as a power cut sees it — the idea behind LazyFS.

    write() only reaches a volatile cache (the page cache, the drive's write cache).
    fsync(), or the kernel's own background writeback, makes the cache durable.
    A process crash loses nothing the kernel accepted; a power loss keeps the durable
    bytes plus at most a random prefix of the cache (part of it may have reached the disk)."""

    durable: bytearray = field(default_factory=bytearray)
    cache: bytearray = field(default_factory=bytearray)
    fsyncs: int = 0

    def write(self, data: bytes) -> None:
        self.cache += data

    def writeback(self) -> None:
        self.durable += self.cache
        self.cache.clear()

    def fsync(self) -> None:
        self.fsyncs += 1
        self.writeback()

    def after_process_crash(self) -> bytes:
        return bytes(self.durable + self.cache)  # the kernel still writes its cache out

    def after_power_loss(self, rng: random.Random) -> bytes:
        return bytes(self.durable + self.cache[: rng.randrange(len(self.cache) + 1)])


# --8<-- [end:disk]


def record(key: str) -> bytes:
    payload = f"put {key}".encode()
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def recovered_keys(data: bytes) -> set[str]:
    """Replay records until the first torn or damaged one (the tail a crash leaves)."""
    keys, offset = set(), 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        payload = data[offset + HEADER.size : offset + HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        keys.add(payload.decode().removeprefix("put "))
        offset += HEADER.size + length
    return keys


# --8<-- [start:policies]
def run_until_crash(
    policy: str, crash_at: int, writeback_every: int = 100, batch: int = 10
) -> tuple[ForgetfulDisk, list[str]]:
    """Clients write keys until the crash; return the disk and the keys acknowledged.

    "no fsync":     acknowledge as soon as write() returns
    "fsync each":   write(), fsync(), then acknowledge
    "group commit": write a batch of records, one fsync(), then acknowledge all of them"""
    disk, acked, pending = ForgetfulDisk(), [], []
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
    crash_points, cache_kept = random.Random(seed), random.Random(seed + 1)
    totals = {"acked": 0, "fsyncs": 0, "lost on kill": 0, "lost on power loss": 0}
    for _ in range(trials):
        disk, acked = run_until_crash(policy, crash_at=crash_points.randrange(100, 1000))
        totals["acked"] += len(acked)
        totals["fsyncs"] += disk.fsyncs
        for failure, data in [
            ("lost on kill", disk.after_process_crash()),
            ("lost on power loss", disk.after_power_loss(cache_kept)),
        ]:
            survived = recovered_keys(data)
            totals[failure] += sum(1 for key in acked if key not in survived)
    return totals


# --8<-- [end:policies]


def main() -> None:
    print("20 crashes at seeded random points, writes counted over all of them")
    print(
        f"{'policy':<14}{'acknowledged':>14}{'fsyncs':>9}{'lost on kill':>14}"
        f"{'lost on power loss':>20}"
    )
    for policy in ["no fsync", "fsync each", "group commit"]:
        t = count_losses(policy)
        print(
            f"{policy:<14}{t['acked']:>14}{t['fsyncs']:>9}{t['lost on kill']:>14}"
            f"{t['lost on power loss']:>20}"
        )


if __name__ == "__main__":
    main()
