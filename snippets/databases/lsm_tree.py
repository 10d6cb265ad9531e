"""An LSM tree vs a B-tree: the LSM tree writes far fewer bytes; bloom filters keep reads cheap.

Run: python snippets/databases/lsm_tree.py
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import struct
import tempfile
from bisect import bisect_right
from collections import Counter
from pathlib import Path

PAGE = 4096
RECORD = struct.Struct("<HI")  # key length, value length (TOMBSTONE_LEN marks a delete)
TOMBSTONE_LEN = 0xFFFFFFFF
Entry = tuple[bytes, bytes | None]  # (key, value); None is a tombstone (a delete)


def encode(key: bytes, value: bytes | None) -> bytes:
    size = TOMBSTONE_LEN if value is None else len(value)
    return RECORD.pack(len(key), size) + key + (value or b"")


def decode_page(page: bytes) -> dict[bytes, bytes | None]:
    """Decode one page; a record running past the end of the page is corruption."""
    entries, offset = {}, 0
    while offset + RECORD.size <= len(page):
        key_len, size = RECORD.unpack_from(page, offset)
        if key_len == 0:
            break  # zero padding at the end of the page
        end = offset + RECORD.size + key_len + (0 if size == TOMBSTONE_LEN else size)
        if end > len(page):
            raise ValueError(f"corrupt page: a record at byte {offset} runs past its end")
        key = page[offset + RECORD.size : offset + RECORD.size + key_len]
        entries[key] = None if size == TOMBSTONE_LEN else page[end - size : end]
        offset = end
    return entries


# --8<-- [start:bloom]
class BloomFilter:
    """k hash functions set k of m bits per key. A clear bit proves a key is absent;
    all bits set means "maybe" (a false positive rate of about 1% at 10 bits per key)."""

    def __init__(self, keys: int, bits_per_key: int = 10) -> None:
        self.m = max(64, keys * bits_per_key)
        self.k = max(1, round(bits_per_key * math.log(2)))
        self.bits = bytearray((self.m + 7) // 8)

    def _positions(self, key: bytes) -> list[int]:
        digest = hashlib.blake2b(key, digest_size=16).digest()
        h1, h2 = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")
        return [(h1 + i * h2) % self.m for i in range(self.k)]  # double hashing

    def add(self, key: bytes) -> None:
        for p in self._positions(key):
            self.bits[p // 8] |= 1 << (p % 8)

    def might_contain(self, key: bytes) -> bool:
        return all(self.bits[p // 8] & (1 << (p % 8)) for p in self._positions(key))


# --8<-- [end:bloom]


# --8<-- [start:sstable]
class SSTable:
    """An immutable file of sorted entries in 4 KiB pages. Kept in memory: the first key
    of each page (a sparse index) and a bloom filter. A lookup reads at most one page."""

    def __init__(self, path: Path, entries: list[Entry], io: Counter[str]) -> None:
        self.path, self.io, self.first_keys = path, io, []
        self.bloom = BloomFilter(len(entries))
        pages, page = [], b""
        for key, value in entries:  # already sorted by key
            record = encode(key, value)
            if len(page) + len(record) > PAGE:
                pages.append(page.ljust(PAGE, b"\0"))
                page = b""
            if not page:
                self.first_keys.append(key)
            page += record
            self.bloom.add(key)
        pages.append(page.ljust(PAGE, b"\0"))
        data = b"".join(pages)
        path.write_bytes(data)
        io["bytes written"] += len(data)

    def get(self, key: bytes, use_bloom: bool) -> tuple[bool, bytes | None]:
        """(found, value): found with value None means a tombstone."""
        if use_bloom and not self.bloom.might_contain(key):
            return False, None  # no page read at all
        index = bisect_right(self.first_keys, key) - 1
        if index < 0:
            return False, None
        with self.path.open("rb") as f:
            page = os.pread(f.fileno(), PAGE, index * PAGE)
        self.io["pages read"] += 1
        entries = decode_page(page)
        return (key in entries), entries.get(key)

    def entries(self) -> list[Entry]:
        data = self.path.read_bytes()
        return [
            e for i in range(0, len(data), PAGE) for e in decode_page(data[i : i + PAGE]).items()
        ]


# --8<-- [end:sstable]


# --8<-- [start:lsm]
class LSMTree:
    """Writes go to a log and a sorted in-memory memtable; a full memtable is written out
    as a new SSTable; too many SSTables are merged into one (compaction). Reads check
    the memtable, then SSTables from newest to oldest: the first hit wins."""

    def __init__(
        self,
        directory: Path,
        memtable_limit: int = 1000,
        max_tables: int = 8,
        use_bloom: bool = True,
    ) -> None:
        self.dir, self.limit, self.max_tables, self.use_bloom = (
            directory,
            memtable_limit,
            max_tables,
            use_bloom,
        )
        self.memtable: dict[bytes, bytes | None] = {}
        self.tables: list[SSTable] = []  # oldest first
        self.io: Counter[str] = Counter()
        self.files = 0

    def put(self, key: bytes, value: bytes | None) -> None:
        self.io["bytes written"] += len(encode(key, value))  # the write-ahead log
        self.memtable[key] = value
        if len(self.memtable) >= self.limit:
            self._flush()

    def delete(self, key: bytes) -> None:
        self.put(key, None)  # a tombstone: older SSTables may still hold the key

    def get(self, key: bytes) -> bytes | None:
        if key in self.memtable:
            return self.memtable[key]
        for table in reversed(self.tables):
            found, value = table.get(key, self.use_bloom)
            if found:
                return value
        return None

    def _new_table(self, entries: list[Entry]) -> SSTable:
        self.files += 1
        return SSTable(self.dir / f"{self.files:06}.sst", entries, self.io)

    def _flush(self) -> None:
        self.tables.append(self._new_table(sorted(self.memtable.items())))
        self.memtable.clear()  # (and the log can be truncated)
        if len(self.tables) > self.max_tables:
            self._compact()

    def _compact(self) -> None:
        """Merge every SSTable into one: newest value wins; tombstones can go, because
        no older table is left for them to hide."""
        merged: dict[bytes, bytes | None] = {}
        for table in self.tables:  # oldest first, so newer entries overwrite
            merged.update(table.entries())
            table.path.unlink()
        live = sorted((k, v) for k, v in merged.items() if v is not None)
        self.tables = [self._new_table(live)]


# --8<-- [end:lsm]


# --8<-- [start:btree]
class BTreePages:
    """The B-tree as the disk sees it: sorted 4 KiB leaf pages updated in place, inner
    levels cached in memory. Every write logs the record, then rewrites its whole leaf
    page (no buffer pool to absorb repeats: the worst case random updates approach)."""

    def __init__(self, path: Path) -> None:
        self.io: Counter[str] = Counter()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.leaves: list[dict[bytes, bytes]] = [{}]  # per leaf: key -> encoded record
        self.first_keys: list[bytes] = [b""]
        self.page_numbers: list[int] = [0]  # where each leaf lives in the file

    def _write_page(self, index: int) -> None:
        leaf = self.leaves[index]
        page = b"".join(leaf[key] for key in sorted(leaf))
        os.pwrite(self.fd, page.ljust(PAGE, b"\0"), self.page_numbers[index] * PAGE)
        self.io["bytes written"] += PAGE

    def put(self, key: bytes, value: bytes) -> None:
        record = encode(key, value)
        self.io["bytes written"] += len(record)  # the write-ahead log
        index = bisect_right(self.first_keys, key) - 1
        leaf = self.leaves[index]
        leaf[key] = record
        if sum(map(len, leaf.values())) > PAGE:  # split: half the keys move to a new page
            keys = sorted(leaf)
            self.leaves.insert(index + 1, {k: leaf.pop(k) for k in keys[len(keys) // 2 :]})
            self.first_keys.insert(index + 1, keys[len(keys) // 2])
            self.page_numbers.insert(index + 1, len(self.page_numbers))  # a new page at the end
            self._write_page(index + 1)
        self._write_page(index)

    def get(self, key: bytes) -> bytes | None:
        """The inner levels are in memory (as the SSTables' sparse indexes are): one page."""
        index = bisect_right(self.first_keys, key) - 1
        page = os.pread(self.fd, PAGE, self.page_numbers[index] * PAGE)
        self.io["pages read"] += 1
        return decode_page(page).get(key)

    def close(self) -> None:
        os.close(self.fd)


# --8<-- [end:btree]


# --8<-- [start:measure]
def workload(n: int = 24_000, keys: int = 10_000, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """n writes of 100-byte values to random keys (so many are overwrites)."""
    rng = random.Random(seed)
    return [(f"user{rng.randrange(keys):06}".encode(), rng.randbytes(100)) for _ in range(n)]


def amplification(use_bloom: bool = True, seed: int = 7) -> dict[str, float]:
    """Write amplification = bytes written to disk / bytes of user data. Read
    amplification = pages read per lookup, sampled all through the workload (every 40
    writes: one key that exists, one that does not), since the SSTable count changes."""
    writes = workload(seed=seed)
    user_bytes = sum(len(k) + len(v) for k, v in writes)
    rng, tables = random.Random(seed), []
    pages: Counter[tuple[str, str]] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        lsm = LSMTree(Path(tmp), use_bloom=use_bloom)
        btree = BTreePages(Path(tmp) / "btree.db")
        try:
            for i, (key, value) in enumerate(writes, start=1):
                lsm.put(key, value)
                btree.put(key, value)
                if i % 40 == 0:
                    tables.append(len(lsm.tables))
                    for kind, probe in [
                        ("present", writes[rng.randrange(i)][0]),
                        ("absent", key + b"~"),
                    ]:  # sorts between keys
                        for name, store in [("lsm", lsm), ("btree", btree)]:
                            before = store.io["pages read"]
                            assert (store.get(probe) is None) == (kind == "absent")
                            pages[name, kind] += store.io["pages read"] - before
        finally:
            btree.close()
        return {
            "lsm write amplification": lsm.io["bytes written"] / user_bytes,
            "btree write amplification": btree.io["bytes written"] / user_bytes,
            **{
                f"{name} pages per lookup ({kind})": pages[name, kind] / len(tables)
                for name, kind in pages
            },
            "sstables": sum(tables) / len(tables),
        }


# --8<-- [end:measure]


def main() -> None:
    with_bloom, without = amplification(use_bloom=True), amplification(use_bloom=False)
    print("24000 writes of 100-byte values to 10000 random keys, 4 KiB pages")
    print(
        f"write amplification: LSM {with_bloom['lsm write amplification']:.1f}x,"
        f" B-tree {with_bloom['btree write amplification']:.1f}x"
        f" -> the LSM tree wrote "
        f"{with_bloom['btree write amplification'] / with_bloom['lsm write amplification']:.1f}x"
        f" fewer bytes"
    )
    print(
        f"pages read per lookup (present key, absent key); the LSM tree had"
        f" {with_bloom['sstables']:.1f} SSTables on average"
    )
    for name, result, store in [
        ("B-tree", with_bloom, "btree"),
        ("LSM, bloom filters", with_bloom, "lsm"),
        ("LSM, no bloom", without, "lsm"),
    ]:
        print(
            f"  {name:<19} {result[f'{store} pages per lookup (present)']:.2f},"
            f" {result[f'{store} pages per lookup (absent)']:.2f}"
        )


if __name__ == "__main__":
    main()
