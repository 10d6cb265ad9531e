"""A write-ahead log survives SIGKILL mid-write: a checksum finds the torn last record.

Run: python snippets/databases/wal_log.py
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

# --8<-- [start:format]
HEADER = struct.Struct("<II")  # little-endian: payload length, CRC-32 of (length + payload)
MAX_RECORD = 1 << 20  # a longer length field is garbage, never a real record


class CorruptLogError(Exception):
    """A damaged record with valid data after it: not a torn tail, so refuse to guess."""


def encode(op: dict[str, str]) -> bytes:
    payload = json.dumps(op, sort_keys=True).encode()
    length = struct.pack("<I", len(payload))
    return HEADER.pack(len(payload), zlib.crc32(length + payload)) + payload


def scan(data: bytes) -> tuple[list[dict[str, str]], int]:
    """Decode records from the start; return them and the offset where valid data ends.

    A record cut short by the end of the file, or a bad last record, is a torn tail:
    it was never acknowledged, so it is dropped. A bad record with more data after it
    is corruption: raise, because truncating there would drop acknowledged records."""
    records, offset = [], 0
    while offset < len(data):
        if len(data) - offset < HEADER.size:
            break  # torn header
        length, crc = HEADER.unpack_from(data, offset)
        if length > MAX_RECORD:
            raise CorruptLogError(f"record at byte {offset} claims {length} bytes")
        end = offset + HEADER.size + length
        if end > len(data):
            break  # torn payload: the writer died before finishing it
        payload = data[offset + HEADER.size : end]
        if zlib.crc32(data[offset : offset + 4] + payload) != crc:
            if end == len(data):
                break  # a damaged last record is a torn tail too
            raise CorruptLogError(f"checksum mismatch in the record at byte {offset}")
        records.append(json.loads(payload))
        offset = end
    return records, offset


def recover(path: Path) -> tuple[dict[str, str], int]:
    """Replay the log into a dict; truncate a torn tail. Returns (state, bytes dropped)."""
    data = path.read_bytes()
    records, valid_end = scan(data)
    if valid_end < len(data):
        with path.open("r+b") as f:
            f.truncate(valid_end)
            os.fsync(f.fileno())
    state: dict[str, str] = {}
    for op in records:
        if op["op"] == "put":
            state[op["key"]] = op["value"]
        else:
            state.pop(op["key"], None)
    return state, len(data) - valid_end


# --8<-- [end:format]


# --8<-- [start:writer]
def writer(path: str, pause_at: int) -> None:
    """The child: append put records and print "ack N" once write() has returned.

    Each record goes out in two write() calls, like a buffered writer whose buffer fills
    mid-record. Before finishing record `pause_at` it says so and waits to be killed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for i in range(10_000):
        record = encode({"op": "put", "key": f"k{i}", "value": f"v{i}" * 20})
        half = len(record) // 2
        os.write(fd, record[:half])
        if i == pause_at:
            print("mid-write", flush=True)
            sys.stdin.read()  # blocks until the parent kills us
        os.write(fd, record[half:])
        print(f"ack {i}", flush=True)  # the OS has the bytes: acknowledge


# --8<-- [end:writer]


# --8<-- [start:kill]
def lines_until(fd: int, deadline: float) -> Iterator[str]:
    """Lines read from a pipe; TimeoutError if the next one has not come by the deadline
    (a child that hangs must not hang us too)."""
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                yield line.decode() + "\n"
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(timeout=left):
                raise TimeoutError("the writer went silent")
            chunk = os.read(fd, 65536)
            if not chunk:
                return  # the child closed its stdout: it exited
            buffer += chunk


def kill_mid_write(
    path: Path, pause_at: int | None = None, kill_after: int = 0, timeout: float = 10.0
) -> list[str]:
    """Run the writer in a real process and SIGKILL it; return the acknowledged keys.

    pause_at: kill it between the two halves of that record (a repeatable torn tail);
    otherwise kill it as soon as `kill_after` acks have arrived, wherever it is then."""
    pause = -1 if pause_at is None else pause_at
    child = subprocess.Popen(
        [sys.executable, __file__, "--writer", str(path), str(pause)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    acked: list[str] = []
    try:
        assert child.stdout is not None
        for line in lines_until(child.stdout.fileno(), time.monotonic() + timeout):
            if line.startswith("ack "):
                acked.append(f"k{line.split()[1]}")
            if line == "mid-write\n" or (pause_at is None and len(acked) >= kill_after):
                break
        child.send_signal(signal.SIGKILL)  # no handler, no cleanup, no flush
    finally:
        child.kill()
        child.wait(timeout=5)
    return acked


# --8<-- [end:kill]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "wal.log"
        acked = kill_mid_write(log, pause_at=200)
        size = log.stat().st_size
        state, dropped = recover(log)
        print(f"SIGKILL between the two write() calls of record 200: {len(acked)} acknowledged")
        print(f"log was {size} bytes; recovery dropped a torn tail of {dropped} bytes")
        lost = [key for key in acked if key not in state]
        print(f"after recovery: {len(state)} keys, acknowledged writes lost: {len(lost)}")
        print(f"recovering again drops {recover(log)[1]} bytes: the log is clean")

        good = encode({"op": "put", "key": "a", "value": "1"})
        bad = bytearray(good * 3)
        bad[len(good) + HEADER.size + 3] ^= 0xFF  # flip 8 bits inside record 2 of 3
        try:
            scan(bytes(bad))
        except CorruptLogError as error:
            print(f"a damaged record in the middle: CorruptLogError({error})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--writer"]:
        writer(sys.argv[2], int(sys.argv[3]))
    else:
        main()
