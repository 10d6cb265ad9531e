"""An LSM tree vs a B-tree, counted: leveled compaction's write amplification grows with
the data, size-tiered writes less but keeps more runs; bloom filters keep point reads cheap.

Run: python snippets/databases/lsm_tree.py
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from bisect import bisect_right
from collections import Counter
from functools import cache, cached_property

PAGE = 1024  # scaled down with the memtable, so a small data set has several levels
BITS_PER_KEY = 10  # each SSTable's bloom filter: about 1% false positives
RECORD = struct.Struct("<HI")  # key length, value length (TOMBSTONE_LEN marks a delete)
TOMBSTONE_LEN = 0xFFFFFFFF
Entry = tuple[bytes, bytes | None]  # (key, value); None is a tombstone (a delete)


def encode(key: bytes, value: bytes | None) -> bytes:
    size = TOMBSTONE_LEN if value is None else len(value)
    return RECORD.pack(len(key), size) + key + (value or b"")


def record_size(key: bytes, value: bytes | None) -> int:
    return RECORD.size + len(key) + len(value or b"")


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
        digest = hashlib.blake2b(key, digest_size=4 * self.k).digest()
        return [h % self.m for h in struct.unpack(f"<{self.k}I", digest)]  # k 32-bit hashes

    def add(self, key: bytes) -> None:
        for p in self._positions(key):
            self.bits[p // 8] |= 1 << (p % 8)

    def might_contain(self, key: bytes) -> bool:
        return all(self.bits[p // 8] & (1 << (p % 8)) for p in self._positions(key))


# --8<-- [end:bloom]


# --8<-- [start:sstable]
class SSTable:
    """An immutable file of sorted entries in pages (the model keeps the file's bytes in
    memory and counts them). Besides the file: the first key of each page (a sparse
    index) and a bloom filter. A lookup reads at most one page."""

    def __init__(self, entries: list[Entry], io: Counter[str]) -> None:
        self.io, self.first_keys, self.sorted_entries = io, [], entries
        self.smallest, self.largest = entries[0][0], entries[-1][0]
        self.tier = 0  # size-tiered compaction: how many merges made this file
        pages: list[bytes] = []
        page: list[bytes] = []
        used = 0
        for key, value in entries:  # already sorted by key
            record = encode(key, value)
            if used + len(record) > PAGE:
                pages.append(b"".join(page).ljust(PAGE, b"\0"))
                page, used = [], 0
            if not page:
                self.first_keys.append(key)
            page.append(record)
            used += len(record)
        pages.append(b"".join(page).ljust(PAGE, b"\0"))
        self.data = b"".join(pages)
        self.size = len(self.data)
        io["bytes written"] += self.size

    @cached_property
    def bloom(self) -> BloomFilter:
        """Built here at the first lookup, to keep the model quick; a real SSTable builds
        its filter while writing the file and stores it there."""
        bloom = BloomFilter(len(self.sorted_entries), BITS_PER_KEY)
        for key, _ in self.sorted_entries:
            bloom.add(key)
        return bloom

    def get(self, key: bytes, use_bloom: bool) -> tuple[bool, bytes | None]:
        """(found, value): found with value None means a tombstone."""
        if use_bloom and not self.bloom.might_contain(key):
            return False, None  # no page read at all
        index = bisect_right(self.first_keys, key) - 1
        if index < 0:
            return False, None
        page = self.data[index * PAGE : (index + 1) * PAGE]
        self.io["pages read"] += 1
        entries = decode_page(page)
        return (key in entries), entries.get(key)

    def entries(self) -> list[Entry]:
        """Every entry, as compaction reads them: the whole file. (The model hands back the
        list it wrote, rather than decoding its own bytes again.)"""
        self.io["bytes read"] += self.size
        return self.sorted_entries


# --8<-- [end:sstable]


# --8<-- [start:lsm]
class LSMTree:
    """Writes go to a log and a sorted in-memory memtable; a full memtable is written out
    as a new SSTable in level 0; compaction merges SSTables by one of two policies
    (RocksDB wiki: Leveled Compaction, Universal Compaction). Reads check the memtable,
    then the newest data first: level 0 newest to oldest, then one file per deeper level.

    - "leveled": level 0 holds up to `l0_files` overlapping files; level 1 holds
      `l0_files` memtables' worth, each deeper level `fanout` times more, every level
      split into non-overlapping files. An oversized level pushes one file (round robin
      over the key space) into the next, rewriting the next level's files it overlaps.
    - "tiered" (size-tiered): every run stays in level 0; `fanout` runs of one tier are
      merged into one run of the next tier. Fewer rewrites, more runs to look in.
    """

    def __init__(
        self,
        memtable_limit: int = 16,
        policy: str = "leveled",
        fanout: int = 10,
        l0_files: int = 4,
        use_bloom: bool = True,
    ) -> None:
        self.limit, self.policy = memtable_limit, policy
        self.fanout, self.l0_files, self.use_bloom = fanout, l0_files, use_bloom
        self.memtable: dict[bytes, bytes | None] = {}
        self.levels: list[list[SSTable]] = [[]]  # [0]: oldest first; others: by key
        self.cursor: dict[int, bytes] = {}  # per level: where the last compaction ended
        self.io: Counter[str] = Counter()
        self.memtable_bytes = 0  # the size of the last flush: the unit levels are sized in

    def put(self, key: bytes, value: bytes | None) -> None:
        self.io["bytes written"] += record_size(key, value)  # the write-ahead log
        self.memtable[key] = value
        if len(self.memtable) >= self.limit:
            self._flush()

    def delete(self, key: bytes) -> None:
        self.put(key, None)  # a tombstone: older SSTables may still hold the key

    def get(self, key: bytes) -> bytes | None:
        if key in self.memtable:
            return self.memtable[key]
        for table in reversed(self.levels[0]):  # overlapping: newest first
            found, value = table.get(key, self.use_bloom)
            if found:
                return value
        for level in self.levels[1:]:  # non-overlapping: at most one file per level
            index = bisect_right([t.smallest for t in level], key) - 1
            if index >= 0 and key <= level[index].largest:
                found, value = level[index].get(key, self.use_bloom)
                if found:
                    return value
        return None

    def sorted_runs(self) -> int:
        """How many places a lookup may have to look (read amplification, at most)."""
        return len(self.levels[0]) + sum(1 for level in self.levels[1:] if level)

    def _new_table(self, entries: list[Entry], tier: int = 0) -> SSTable:
        table = SSTable(entries, self.io)
        table.tier = tier
        return table

    def _flush(self) -> None:
        table = self._new_table(sorted(self.memtable.items()))
        self.memtable_bytes = table.size
        self.levels[0].append(table)
        self.memtable.clear()  # (and the log can be truncated)
        if self.policy == "leveled":
            self._compact_leveled()
        else:
            self._compact_tiered()

    def _merge(self, tables: list[SSTable], bottom: bool) -> list[Entry]:
        """Merge tables given oldest first: the newest value of each key wins. Tombstones
        can go only at the bottom, where no older file is left for them to hide."""
        merged: dict[bytes, bytes | None] = {}
        for table in tables:
            merged.update(table.entries())  # (and the old file is deleted)
        return sorted((k, v) for k, v in merged.items() if v is not None or not bottom)

    def _compact_tiered(self) -> None:
        runs = self.levels[0]
        while len(runs) >= self.fanout and len({t.tier for t in runs[-self.fanout :]}) == 1:
            group, bottom = runs[-self.fanout :], len(runs) == self.fanout
            del runs[-self.fanout :]
            entries = self._merge(group, bottom)
            if entries:
                runs.append(self._new_table(entries, tier=group[0].tier + 1))

    def _compact_leveled(self) -> None:
        if len(self.levels[0]) >= self.l0_files:
            self._push(0, list(self.levels[0]))  # all of level 0: its files overlap
        level = 1
        while level < len(self.levels):
            target = self.memtable_bytes * self.l0_files * self.fanout ** (level - 1)
            if sum(t.size for t in self.levels[level]) <= target:
                level += 1
                continue
            files, after = self.levels[level], self.cursor.get(level, b"")
            chosen = next((t for t in files if t.smallest > after), files[0])
            self.cursor[level] = chosen.largest
            self._push(level, [chosen])

    def _push(self, level: int, tables: list[SSTable]) -> None:
        """Merge `tables` from `level` with the files of the next level they overlap."""
        if len(self.levels) == level + 1:
            self.levels.append([])
        low, high = min(t.smallest for t in tables), max(t.largest for t in tables)
        below = self.levels[level + 1]
        overlap = [t for t in below if t.largest >= low and t.smallest <= high]
        bottom = len(self.levels) == level + 2
        for table in tables:
            self.levels[level].remove(table)
        entries = self._merge(overlap + tables, bottom)  # the next level holds older data
        kept = [t for t in below if t not in overlap]
        self.levels[level + 1] = sorted(kept + self._split(entries), key=lambda t: t.smallest)

    def _split(self, entries: list[Entry]) -> list[SSTable]:
        """Write a merge's output as files of about one memtable each."""
        tables, start, size = [], 0, 0
        for i, (key, value) in enumerate(entries):
            size += record_size(key, value)
            if size >= self.memtable_bytes or i == len(entries) - 1:
                tables.append(self._new_table(entries[start : i + 1]))
                start, size = i + 1, 0
        return tables


# --8<-- [end:lsm]


# --8<-- [start:btree]
class BTreePages:
    """The B-tree as the disk sees it: sorted leaf pages updated in place, inner levels
    cached in memory. Every write logs the record, then rewrites its whole leaf page (no
    buffer pool to absorb repeats: the worst case random updates approach)."""

    def __init__(self) -> None:
        self.io: Counter[str] = Counter()
        self.disk = bytearray()  # the file, in memory: the model counts its bytes
        self.leaves: list[dict[bytes, bytes]] = [{}]  # per leaf: key -> encoded record
        self.first_keys: list[bytes] = [b""]
        self.page_numbers: list[int] = [0]  # where each leaf lives in the file

    def _write_page(self, index: int) -> None:
        leaf = self.leaves[index]
        page = b"".join(leaf[key] for key in sorted(leaf))
        offset = self.page_numbers[index] * PAGE
        self.disk[offset : offset + PAGE] = page.ljust(PAGE, b"\0")
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
        offset = self.page_numbers[index] * PAGE
        page = bytes(self.disk[offset : offset + PAGE])
        self.io["pages read"] += 1
        return decode_page(page).get(key)


# --8<-- [end:btree]


# --8<-- [start:measure]
SIZES = (250, 1_000, 4_000)  # writes; the data set grows 4x per step
STORES = {"leveled": {"fanout": 10}, "tiered": {"fanout": 4}, "btree": {}}


@cache
def workload(keys: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """`keys` writes of 100-byte values to random keys among `keys` (about a third are
    overwrites, so about 63% of the keys end up in the store)."""
    rng = random.Random(seed)
    return [(f"user{rng.randrange(keys):06}".encode(), rng.randbytes(100)) for _ in range(keys)]


def measure(
    keys: int, store: str, probes: int = 200, seed: int = 7, **options: int
) -> dict[str, float]:
    """Write amplification = bytes written to disk / bytes of user data. Space
    amplification = bytes in the SSTables (the B-tree's pages) / bytes of the live
    records (the log holds the memtable's), with and without page padding: without it,
    what is left over is stale copies. Read amplification = pages read per lookup once
    the writes are done: keys that exist and keys that do not, with bloom filters and
    (for the LSM tree) without."""
    writes = workload(keys, seed)
    user_bytes = sum(len(k) + len(v) for k, v in writes)
    rng = random.Random(seed)
    tree = BTreePages() if store == "btree" else LSMTree(policy=store, **STORES[store] | options)
    for key, value in writes:
        tree.put(key, value)
    result = {"write amplification": tree.io["bytes written"] / user_bytes}
    live = sum(record_size(k, v) for k, v in dict(writes).items())
    if isinstance(tree, LSMTree):
        tables = [t for level in tree.levels for t in level]
        logged = sum(record_size(k, v) for k, v in tree.memtable.items())  # the log
        on_disk = sum(t.size for t in tables) + logged
        records = sum(record_size(k, v) for t in tables for k, v in t.sorted_entries) + logged
    else:  # one copy of each record, in pages that splits leave part empty
        on_disk, records = len(tree.disk), live
    result["space amplification"] = on_disk / live
    result["space amplification (records)"] = records / live
    for bloom in [True, False]:
        if isinstance(tree, LSMTree):
            tree.use_bloom = bloom
            result["sorted runs"] = tree.sorted_runs()
        for kind in ["present", "absent"]:
            before = tree.io["pages read"]
            for _ in range(probes):
                key = writes[rng.randrange(len(writes))][0]
                key += b"~" if kind == "absent" else b""  # sorts between keys
                assert (tree.get(key) is None) == (kind == "absent")
            pages = (tree.io["pages read"] - before) / max(probes, 1)
            result[f"pages per lookup ({kind}, bloom {'on' if bloom else 'off'})"] = pages
    return result


# --8<-- [end:measure]


def main() -> None:
    print(
        f"A model: {PAGE}-byte pages, a 16-entry memtable, level 0 compacted at 4 files;"
        " n writes of 100-byte values to random keys among n"
    )
    results = {
        (n, s): measure(n, s, probes=200 if n == SIZES[-1] else 0) for n in SIZES for s in STORES
    }
    print("write amplification (bytes written / bytes of data) by data set size:")
    print(f"  {'n':>6}  {'leveled, fan-out 10':>20}  {'size-tiered, 4 runs':>20}  {'B-tree':>7}")
    for n in SIZES:
        wa = [results[n, s]["write amplification"] for s in STORES]
        print(f"  {n:>6}  {wa[0]:>19.1f}x  {wa[1]:>19.1f}x  {wa[2]:>6.1f}x")
    print("space amplification (bytes on disk / bytes of live records; in brackets, the records")
    print("alone, without page padding: what is left over is stale copies):")
    for n in SIZES:
        sa = [
            f"{results[n, s]['space amplification']:.2f}x"
            f" [{results[n, s]['space amplification (records)']:.2f}x]"
            for s in STORES
        ]
        print(f"  {n:>6}  {sa[0]:>20}  {sa[1]:>20}  {sa[2]:>15}")
    n = SIZES[-1]
    print(f"pages read per lookup at n = {n} (present key, absent key):")
    for s in STORES:
        r = results[n, s]
        runs = f", {r['sorted runs']:.0f} sorted runs" if "sorted runs" in r else ""
        for bloom in ["on", "off"] if s != "btree" else ["on"]:
            label = f"{s}{runs}, bloom {bloom}" if s != "btree" else "B-tree"
            print(
                f"  {label:<36} {r[f'pages per lookup (present, bloom {bloom})']:.2f},"
                f" {r[f'pages per lookup (absent, bloom {bloom})']:.2f}"
            )


if __name__ == "__main__":
    main()
