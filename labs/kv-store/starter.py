"""Lab: build a crash-safe key-value store (docs/databases/lab-kv-store.md).

Fill in the TODOs stage by stage; after each, run the stages against this file:

Run:   make lab LAB=kv-store FILE=labs/kv-store/starter.py
Serve: python labs/kv-store/starter.py --port 0 --data /tmp/kv
       (then, in another terminal: nc 127.0.0.1 <port>, and type PUT a 1 / GET a / DEL a)

Copy it first if you like (cp labs/kv-store/starter.py my_store.py) and pass FILE=.
Keep the contract the stages rely on: started with `--port 0 --data <dir>`, the program
binds 127.0.0.1 on a free port, prints `listening on 127.0.0.1:<port>` before serving,
and keeps its log in `<dir>/kv.log`. Only the standard library is needed.

The protocol, one command per line (UTF-8), one reply per line:
    PUT <key> <value>   -> OK                 (the value is the rest of the line, not empty)
    GET <key>           -> VALUE <value> | NOT_FOUND
    DEL <key>           -> OK | NOT_FOUND
    anything else       -> ERROR <why>        (and the connection stays open)
Also ERROR: a key over MAX_KEY bytes, an empty value (`PUT k `), a line that is not UTF-8,
and a value your log cannot hold (refuse it before writing anything, never after OK).
"""

from __future__ import annotations

import argparse
import os  # noqa: F401  (you will need it: os.open, os.write, os.fsync, os.replace)
import signal
import socketserver
import threading
from pathlib import Path

HOST = "127.0.0.1"
LOG_NAME = "kv.log"
MAX_LINE = 64 * 1024  # a longer command line is refused and the connection closed (stage 6)
MAX_KEY = 256
IDLE_TIMEOUT = 30.0


class Store:
    """A dict in memory; every change appended to a log before it is acknowledged."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir, self.path = directory, directory / LOG_NAME
        self.lock = threading.Lock()  # stage 6: many client threads share this store
        self.data: dict[str, str] = {}
        # TODO stage 3: replay the log at self.path (if it exists) into self.data.
        # TODO stage 4: a crash can leave half a record at the end of the log. Give every
        #   record its length and a checksum (struct.pack("<II", len(payload),
        #   zlib.crc32(payload))), stop replaying at the first record that is incomplete
        #   or fails its checksum, and truncate the file there so new records follow
        #   valid ones.
        # TODO stage 2: open the log for appending (os.open with O_APPEND | O_CREAT).

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        # TODO stage 2: append a record of this change to the log *before* changing
        #   self.data and returning (the caller answers OK once this returns).
        self.data[key] = value
        # TODO stage 5: when the log is much larger than the live data, compact it:
        #   write self.data to a new file, fsync it, os.replace() it over the log.

    def delete(self, key: str) -> bool:
        # TODO stage 2: deletes go to the log too (a record saying "key deleted").
        return self.data.pop(key, None) is not None

    def close(self) -> None:
        pass  # TODO stage 2: close the log


def execute(store: Store, line: str) -> str:
    """One command line (without its newline) -> one reply line (without a newline)."""
    # TODO stage 1: parse GET <key>, PUT <key> <value> (the value is the rest of the line,
    #   spaces included) and DEL <key>; call the store; answer OK, VALUE <v>, NOT_FOUND,
    #   or ERROR <why> for anything else (unknown command, missing or empty key or value,
    #   extra words after GET/DEL, a key longer than MAX_KEY bytes).
    return "ERROR not implemented"


class Handler(socketserver.StreamRequestHandler):
    timeout = IDLE_TIMEOUT
    store: Store

    def handle(self) -> None:
        while True:
            try:
                raw = self.rfile.readline()  # TODO stage 6: never read more than MAX_LINE
            except (TimeoutError, ConnectionError):
                return
            if not raw:
                return  # the client closed
            try:
                reply = execute(self.store, raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError:
                reply = "ERROR not UTF-8"
            self.wfile.write(reply.encode() + b"\n")


class Server(socketserver.TCPServer):  # TODO stage 6: one thread per client
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True, help="directory of the log")
    args = parser.parse_args()
    Handler.store = store = Store(args.data)
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
