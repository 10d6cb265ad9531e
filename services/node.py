"""Node.js: the JSON page runs JavaScript's own JSON.parse beside Python's parsers (a
number beyond 2^53 read as a double, dates without an offset read as local time), so this
only finds the binary and provides its path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from services import Install, Started, find_binary

NAME = "Node.js"
BINARY_ONLY = True  # the snippet runs it; `make services` leaves it out
PROVIDES = ("NODE_BIN",)
INSTALL = Install(apt="nodejs", brew="node")


def node_binary() -> Path:
    return find_binary("node", INSTALL, label="Node.js")


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = node_binary()
    yield Started({"NODE_BIN": str(binary)}, f"Node.js ({binary}), run by the snippet")


binary = node_binary  # every service module has one: found, or Missing with the install lines
