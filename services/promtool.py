"""promtool: Prometheus's own checker (rule files, unit tests of rules, the exposition
format). Snippets run it themselves, so this only finds the binary and provides its path.
Debian ships it in the `prometheus` package; Homebrew's `prometheus` formula has it too."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from services import Install, Started, find_binary

NAME = "promtool"
BINARY_ONLY = True  # the snippet runs it on its own files; `make services` leaves it out
PROVIDES = ("PROMTOOL_BIN",)
INSTALL = Install(apt="prometheus", brew="prometheus")


def promtool_binary() -> Path:
    return find_binary("promtool", INSTALL, ("/usr/bin/promtool",), label="promtool")


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = promtool_binary()
    yield Started({"PROMTOOL_BIN": str(binary)}, f"promtool ({binary}), run by the snippet")


binary = promtool_binary  # every service module has one: found, or Missing with the install lines
