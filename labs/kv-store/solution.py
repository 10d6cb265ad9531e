"""Reference solution: a crash-safe key-value store (docs/databases/lab-kv-store.md).

Serve: python labs/kv-store/solution.py --port 0 --data /tmp/kv
Run:   make lab LAB=kv-store FILE=labs/kv-store/solution.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import struct
import sys
import threading
import zlib
from pathlib import Path

HOST = "127.0.0.1"
LOG_NAME = "kv.log"
MAX_LINE = 64 * 1024  # a longer command line is refused and the connection closed
MAX_KEY = 256
IDLE_TIMEOUT = 30.0  # seconds a connection may stay silent between commands
HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload
MAX_RECORD = MAX_LINE + 1024  # payload bytes; JSON escaping can make a value longer than this
COMPACT_MIN = 64 * 1024  # never bother compacting a log smaller than this


class CorruptLog(Exception):
    pass


class TooLarge(ValueError):
    pass


def encode(op: dict[str, str]) -> bytes:
    """length | CRC-32 | JSON. Refuses a payload that scan() would not read back: json.dumps
    escapes quotes, backslashes, control and non-ASCII characters (2 to 12 bytes each), so
    a value from a line under MAX_LINE can still make a record over MAX_RECORD."""
    payload = json.dumps(op).encode()
    if len(payload) > MAX_RECORD:
        raise TooLarge(f"record of {len(payload)} bytes, the limit is {MAX_RECORD}")
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes, strict: bool = True) -> tuple[list[dict[str, str]], int]:
    """Records from the start, and where the valid ones end (a torn tail after that).

    A crash tears at most the record being written, the last one, only while at most one
    record is unsynced: under SIGKILL (the kernel keeps every write), or with --fsync
    (each record is synced before the next). There (strict), anything wrong with more
    than one record's worth of data after it is damage, and truncating would drop
    acknowledged writes, so raise CorruptLog instead. Without fsync a power cut can leave
    valid records after a lost page: an ordinary crash, not damage, so (not strict) stop
    at the first bad record, as PostgreSQL's replay does."""
    records, offset = [], 0
    while offset + HEADER.size <= len(data):  # fewer bytes left: a torn header
        length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if length > MAX_RECORD:  # encode() never writes this: garbage, or a damaged header
            if strict and len(data) - offset > HEADER.size + MAX_RECORD:
                raise CorruptLog(f"record at byte {offset} claims {length} bytes")
            break  # a short fragment at the end: torn
        if end > len(data):
            break  # torn: the writer died mid-record
        op = _decode(data[offset + HEADER.size : end], crc)
        if op is None:
            if strict and end < len(data) and _valid_after(data, end):
                raise CorruptLog(f"damaged record at byte {offset} with valid records after it")
            break  # a damaged last record: torn
        records.append(op)
        offset = end
    return records, offset


def _decode(payload: bytes, crc: int) -> dict[str, str] | None:
    """The record's operation, or None if the payload is damaged."""
    if zlib.crc32(payload) != crc:
        return None
    try:
        return json.loads(payload)
    except ValueError:  # e.g. a run of zero bytes: length 0 and CRC 0 "match"
        return None


def _valid_after(data: bytes, offset: int) -> bool:
    if offset + HEADER.size > len(data):
        return False
    length, crc = HEADER.unpack_from(data, offset)
    end = offset + HEADER.size + length
    if length > MAX_RECORD or end > len(data):
        return False
    return _decode(data[offset + HEADER.size : end], crc) is not None


def fsync_dir(directory: Path) -> None:
    """fsync(2): a file's directory entry is durable only after an fsync of the directory."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Store:
    """A dict in memory, every change appended to a log before it is acknowledged."""

    def __init__(self, directory: Path, fsync: bool = False) -> None:
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        if fsync:  # a new directory's entry lives in its parent: sync that, top down
            for created in reversed(missing):
                fsync_dir(created.parent)
        self.dir, self.path, self.fsync = directory, directory / LOG_NAME, fsync
        self.lock = threading.Lock()
        self.data: dict[str, str] = {}
        self._recover()
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created and fsync:
            fsync_dir(self.dir)  # fsync(2): a new file's directory entry needs its own fsync

    def _recover(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        records, valid_end = scan(data, strict=self.fsync)  # see scan()
        if valid_end < len(data):  # cut the torn tail, so new records follow valid ones
            with self.path.open("r+b") as f:
                f.truncate(valid_end)
                os.fsync(f.fileno())
        for op in records:
            if op["op"] == "put":
                self.data[op["key"]] = op["value"]
            else:
                self.data.pop(op["key"], None)

    def _append(self, record: bytes) -> None:
        record = memoryview(record)
        while record:  # os.write may write less than asked
            record = record[os.write(self.fd, record) :]
        if self.fsync:
            os.fsync(self.fd)

    def get(self, key: str) -> str | None:
        with self.lock:
            return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        """Raises TooLarge, before anything is written, for a value the log cannot hold."""
        record = encode({"op": "put", "key": key, "value": value})
        with self.lock:
            self._append(record)
            self.data[key] = value
            self._maybe_compact()

    def delete(self, key: str) -> bool:
        with self.lock:
            if key not in self.data:
                return False
            self._append(encode({"op": "del", "key": key}))
            del self.data[key]
            self._maybe_compact()
            return True

    def _maybe_compact(self) -> None:
        size = os.fstat(self.fd).st_size
        live = sum(len(k) + len(v) + 40 for k, v in self.data.items())
        if size > COMPACT_MIN and size > 4 * live:
            self._compact()

    def _compact(self) -> None:
        """Write the live data to a new log, make it durable, then swap it in atomically."""
        tmp = self.dir / (LOG_NAME + ".tmp")
        with tmp.open("wb") as f:
            for key, value in self.data.items():
                f.write(encode({"op": "put", "key": key, "value": value}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # atomic: a crash leaves the old log or the new one
        fsync_dir(self.dir)  # make the rename itself durable
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o644)

    def close(self) -> None:
        with self.lock:  # a write in progress on a handler thread finishes first
            os.close(self.fd)


def execute(store: Store, line: str) -> str:
    """One command line -> one response line (without the newline)."""
    command, _, rest = line.partition(" ")
    if command == "GET" and rest and " " not in rest:
        value = store.get(rest)
        return "NOT_FOUND" if value is None else f"VALUE {value}"
    if command == "PUT":
        key, _, value = rest.partition(" ")
        if not key or not value:  # `PUT k ` too: an empty value is refused, use DEL
            return "ERROR usage: PUT <key> <value> (the value must not be empty)"
        if len(key.encode()) > MAX_KEY:
            return f"ERROR key longer than {MAX_KEY} bytes"
        try:
            store.put(key, value)
        except TooLarge:  # never acknowledge what recovery would not read back
            return "ERROR value too large"
        return "OK"
    if command == "DEL" and rest and " " not in rest:
        return "OK" if store.delete(rest) else "NOT_FOUND"
    return "ERROR unknown command or wrong arguments (GET k | PUT k v | DEL k)"


class Handler(socketserver.StreamRequestHandler):
    timeout = IDLE_TIMEOUT
    store: Store

    def handle(self) -> None:
        while True:
            try:
                raw = self.rfile.readline(MAX_LINE + 1)
            except (TimeoutError, ConnectionError):
                return
            if not raw:
                return  # the client closed
            if not raw.endswith(b"\n"):
                if len(raw) > MAX_LINE:
                    self.wfile.write(b"ERROR line too long\n")
                return  # oversized, or the client closed mid-line
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
                reply = execute(self.store, line)
            except UnicodeDecodeError:
                reply = "ERROR not UTF-8"
            self.wfile.write(reply.encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True, help="directory of the log")
    parser.add_argument("--fsync", action="store_true", help="fsync every write (power loss)")
    args = parser.parse_args()
    try:
        Handler.store = store = Store(args.data, fsync=args.fsync)
    except CorruptLog as error:  # refuse to start rather than drop acknowledged writes
        sys.exit(f"{args.data / LOG_NAME} is damaged, not starting: {error}")
    # The handler only records the signal. Python runs it between two bytecodes of the
    # main thread, which may be inside threading's own lock code (Thread.start): an
    # exception raised there broke that code ("release unlocked lock") and the store
    # never exited. The loop below sees the flag within server.timeout.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    with Server((HOST, args.port), Handler) as server:
        server.timeout = 0.2  # handle_request returns this often to look at `stopping`
        print(f"listening on {HOST}:{server.server_address[1]}", flush=True)
        try:
            while not stopping:
                server.handle_request()
        finally:
            store.close()


if __name__ == "__main__":
    main()
