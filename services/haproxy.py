"""HAProxy: snippets start it themselves (foreground master-worker, `-db`, a config written
to a temp dir), so this only finds the binary and provides its path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from services import Install, Started, find_binary

NAME = "HAProxy"
BINARY_ONLY = True  # the snippet starts it with its own config; `make services` leaves it out
PROVIDES = ("HAPROXY_BIN",)
INSTALL = Install(apt="haproxy", brew="haproxy")


def haproxy_binary() -> Path:
    return find_binary("haproxy", INSTALL, ("/usr/sbin/haproxy",), label="HAProxy")


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = haproxy_binary()
    yield Started({"HAPROXY_BIN": str(binary)}, f"HAProxy ({binary}), started by the snippet")


binary = haproxy_binary  # every service module has one: found, or Missing with the install lines
