"""Lab reference solution: a partitioned log with consumer-group offsets
(docs/messaging/lab-partitioned-log.md). A library, not a server: the stages import it.

Layout: <dir>/<topic>/<partition>.log holds the records; <dir>/<topic>/partitions the
partition count; <dir>/offsets.log the committed offsets (one frame per commit, the last one
for a (group, topic, partition) wins).

A frame is  length (4 bytes, big-endian) | CRC-32 of the payload (4 bytes) | payload,
and a record's payload is  key length (4 bytes) | key | value.

Durability policy: every append and commit is written with os.write before it returns (in
the operating system's page cache: it survives the process being killed) and fsynced only
with fsync=True (it then survives a power cut too, at the cost of a disk flush per call).

Run: make lab LAB=partitioned-log FILE=labs/partitioned-log/solution.py
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

MAX_RECORD = 64 * 1024  # bytes of key + value; a larger record is refused
MAX_FRAME = MAX_RECORD + 4  # the largest payload this log ever writes (+ the key's length)
HEADER = struct.Struct(">II")  # length, CRC-32


class LogError(Exception):
    """Base class of the errors the log raises on bad input."""


class UnknownTopic(LogError, KeyError):
    pass


class OffsetOutOfRange(LogError, IndexError):
    pass


class RecordTooLarge(LogError, ValueError):
    pass


class CorruptLog(LogError):
    """A record in the middle of a file fails its checksum: refuse to guess."""


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes
    value: bytes


def partition_for(key: bytes, partitions: int) -> int:
    """The same key goes to the same partition in every process (Python's hash() of bytes
    is randomised per process; CRC-32 is not)."""
    return zlib.crc32(key) % partitions


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path) -> list[bytes]:
    """Every valid frame of a file. A torn last frame (short, or failing its checksum with
    nothing after it) is cut off the file; a bad frame with data after it is corruption, and
    so is a length this log never writes: a torn write leaves a whole header or a short one,
    never a wrong length, so a frame claiming more than MAX_FRAME bytes is a damaged header
    (read as a torn tail, it would cut off every record after it)."""
    data = path.read_bytes() if path.exists() else b""
    frames, pos = [], 0
    while pos < len(data):
        if pos + HEADER.size > len(data):
            break  # a torn header
        length, crc = HEADER.unpack_from(data, pos)
        if length > MAX_FRAME:
            raise CorruptLog(f"{path}: record at byte {pos} claims {length} bytes")
        end = pos + HEADER.size + length
        if end > len(data):
            break  # a torn payload
        payload = data[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            if end == len(data):
                break  # the last frame, half-written: a torn tail
            raise CorruptLog(f"{path}: record at byte {pos} fails its checksum")
        frames.append(payload)
        pos = end
    if pos < len(data):
        with open(path, "r+b") as file:
            file.truncate(pos)
    return frames


class Partition:
    def __init__(self, path: Path, fsync: bool) -> None:
        self.path, self.fsync = path, fsync
        self.records: list[Record] = []
        for offset, payload in enumerate(read_frames(path)):
            (klen,) = struct.unpack_from(">I", payload)
            self.records.append(Record(offset, payload[4 : 4 + klen], payload[4 + klen :]))
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, key: bytes, value: bytes) -> int:
        offset = len(self.records)
        os.write(self.fd, frame(struct.pack(">I", len(key)) + key + value))
        if self.fsync:
            os.fsync(self.fd)
        self.records.append(Record(offset, key, value))
        return offset

    def close(self) -> None:
        os.close(self.fd)


class PartitionedLog:
    def __init__(self, directory: str | os.PathLike[str], fsync: bool = False) -> None:
        self.dir, self.fsync = Path(directory), fsync
        self.dir.mkdir(parents=True, exist_ok=True)
        self.topics: dict[str, list[Partition]] = {}
        for meta in sorted(self.dir.glob("*/partitions")):
            count = int(meta.read_text())
            self.topics[meta.parent.name] = [
                Partition(meta.parent / f"{p}.log", fsync) for p in range(count)
            ]
        self.offsets: dict[tuple[str, str, int], int] = {}
        offsets = self.dir / "offsets.log"
        for payload in read_frames(offsets):
            group, topic, partition, offset = payload.decode().split("\0")
            self.offsets[(group, topic, int(partition))] = int(offset)
        self.offsets_fd = os.open(offsets, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    # stage 1-2: topics, appends, reads
    def create_topic(self, topic: str, partitions: int = 1) -> None:
        if not topic or not topic.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"bad topic name {topic!r}")
        if partitions < 1:
            raise ValueError("a topic needs at least one partition")
        if topic in self.topics:
            return
        (self.dir / topic).mkdir(exist_ok=True)
        parts = [Partition(self.dir / topic / f"{p}.log", self.fsync) for p in range(partitions)]
        (self.dir / topic / "partitions").write_text(str(partitions))
        self.topics[topic] = parts

    def _partitions(self, topic: str) -> list[Partition]:
        if topic not in self.topics:
            raise UnknownTopic(topic)
        return self.topics[topic]

    def _partition(self, topic: str, partition: int) -> Partition:
        parts = self._partitions(topic)
        if not 0 <= partition < len(parts):
            raise OffsetOutOfRange(f"{topic} has no partition {partition}")
        return parts[partition]

    def partitions(self, topic: str) -> int:
        return len(self._partitions(topic))

    def append(self, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
        parts = self._partitions(topic)
        if len(key) + len(value) > MAX_RECORD:
            raise RecordTooLarge(f"{len(key) + len(value)} bytes > {MAX_RECORD}")
        partition = partition_for(key, len(parts))
        return partition, parts[partition].append(key, value)

    def read(self, topic: str, partition: int, offset: int, max_records: int = 100) -> list[Record]:
        records = self._partition(topic, partition).records
        if not 0 <= offset <= len(records):
            raise OffsetOutOfRange(f"offset {offset} not in [0, {len(records)}]")
        return records[offset : offset + max_records]

    def end_offset(self, topic: str, partition: int) -> int:
        return len(self._partition(topic, partition).records)

    # stage 4: consumer groups
    def commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        if not 0 <= offset <= self.end_offset(topic, partition):
            raise OffsetOutOfRange(f"cannot commit {offset} for {topic}/{partition}")
        payload = f"{group}\0{topic}\0{partition}\0{offset}".encode()
        if len(payload) > MAX_FRAME:  # on reopen, a longer frame would read as corruption
            raise ValueError(f"group name of {len(group)} bytes is too long")
        os.write(self.offsets_fd, frame(payload))
        if self.fsync:
            os.fsync(self.offsets_fd)
        self.offsets[(group, topic, partition)] = offset

    def committed(self, group: str, topic: str, partition: int) -> int:
        self._partition(topic, partition)
        return self.offsets.get((group, topic, partition), 0)

    def close(self) -> None:
        for parts in self.topics.values():
            for part in parts:
                part.close()
        os.close(self.offsets_fd)
