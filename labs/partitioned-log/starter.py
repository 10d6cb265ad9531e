"""Lab: build a partitioned log with consumer-group offsets
(docs/messaging/lab-partitioned-log.md). A library: the stages import this file and call
PartitionedLog's methods. Only the standard library is needed.

Fill in the TODOs stage by stage; after each, run the stages against this file:

Run: make lab LAB=partitioned-log FILE=labs/partitioned-log/starter.py

Copy it first if you like (cp labs/partitioned-log/starter.py my_log.py) and pass FILE=.
Keep the contract the stages rely on:
    PartitionedLog(directory)                   opens (or creates) a log in that directory
    create_topic(topic, partitions)             partitions are numbered 0 .. partitions-1
    partitions(topic) -> int
    append(topic, key, value) -> (partition, offset)     key and value are bytes
    read(topic, partition, offset, max_records=100) -> list[Record]   from that offset
    end_offset(topic, partition) -> int         the offset the next append will get
    commit(group, topic, partition, offset)     the group has processed everything before it
    committed(group, topic, partition) -> int   0 before any commit
    close()
Partition p of topic t is stored in <directory>/t/p.log (stage 3 cuts and corrupts it).
Errors (stage 5): UnknownTopic, OffsetOutOfRange, RecordTooLarge, CorruptLog, below.
"""

from __future__ import annotations

import os
import struct  # noqa: F401  (you will need it: a length and a checksum before each record)
import zlib  # noqa: F401  (zlib.crc32: a checksum, and a hash that is the same in every process)
from dataclasses import dataclass
from pathlib import Path

MAX_RECORD = 64 * 1024  # bytes of key + value; a larger record is refused (stage 5)


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


class PartitionedLog:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        # TODO stage 3: load the topics and records already in self.dir; cut a torn last
        # record off its file. TODO stage 5: a bad record with more after it, or a length
        # longer than any record you write -> CorruptLog.

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        # TODO stage 1: remember the topic and its partitions (stage 3: on disk too).
        raise NotImplementedError

    def partitions(self, topic: str) -> int:
        raise NotImplementedError  # TODO stage 2

    def append(self, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
        # TODO stage 1: give the record the next offset of its partition.
        # TODO stage 2: choose the partition from the key, the same in every process.
        # TODO stage 3: write it to the partition's file before returning.
        raise NotImplementedError

    def read(self, topic: str, partition: int, offset: int, max_records: int = 100) -> list[Record]:
        raise NotImplementedError  # TODO stage 1

    def end_offset(self, topic: str, partition: int) -> int:
        raise NotImplementedError  # TODO stage 1

    def commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        raise NotImplementedError  # TODO stage 4: durable, like the records

    def committed(self, group: str, topic: str, partition: int) -> int:
        raise NotImplementedError  # TODO stage 4

    def close(self) -> None:
        pass  # TODO stage 3: close your files
