"""Tinyproxy, a small forward proxy: snippets start it themselves (foreground, `-d`, a
config and log in a temp dir), so this only finds the binary and provides its path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from services import Install, Started, find_binary

NAME = "Tinyproxy"
BINARY_ONLY = True  # the snippet starts it with its own config; `make services` leaves it out
PROVIDES = ("TINYPROXY_BIN",)
INSTALL = Install(apt="tinyproxy", brew="tinyproxy")


def tinyproxy_binary() -> Path:
    return find_binary(
        "tinyproxy", INSTALL, ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"), label="Tinyproxy"
    )


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = tinyproxy_binary()
    yield Started({"TINYPROXY_BIN": str(binary)}, f"Tinyproxy ({binary}), started by the snippet")


binary = tinyproxy_binary  # every service module has one: found, or Missing with the install lines
