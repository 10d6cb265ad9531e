"""NGINX: snippets start it themselves (foreground, a temp dir as its prefix, a config
from snippets/servers/nginx/), so this only finds the binary and provides its path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from services import Install, Started, find_binary

NAME = "NGINX"
BINARY_ONLY = True  # the snippet starts it; `make services` leaves it out
PROVIDES = ("NGINX_BIN",)
INSTALL = Install(apt="nginx-light", brew="nginx")


def nginx_binary() -> Path:
    return find_binary("nginx", INSTALL, ("/usr/sbin/nginx",), label="NGINX")


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = nginx_binary()
    yield Started({"NGINX_BIN": str(binary)}, f"NGINX ({binary}), started by the snippet")


binary = nginx_binary  # every service module has one: found, or Missing with the install lines
