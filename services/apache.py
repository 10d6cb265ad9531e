"""Apache httpd: like NGINX, snippets start it themselves (foreground, temp ServerRoot,
config from snippets/servers/nginx/apache.conf); this finds the binary and checks that
its MPM modules are there."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from services import Install, Missing, Started, find_binary

NAME = "Apache httpd"
BINARY_ONLY = True  # the snippet starts it; `make services` leaves it out
PROVIDES = ("APACHE2_BIN",)
INSTALL = Install(apt="apache2", brew="httpd")
MODULES = Path("/usr/lib/apache2/modules")  # where Debian installs mod_mpm_*.so


def apache_binary() -> Path:
    binary = find_binary("apache2", INSTALL, ("/usr/sbin/apache2",), label="Apache httpd")
    if not (MODULES / "mod_mpm_prefork.so").exists():
        raise Missing(
            f"apache2 has no MPM modules in {MODULES}. Install them with:\n{INSTALL.lines()}"
        )
    return binary


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = apache_binary()
    yield Started({"APACHE2_BIN": str(binary)}, f"Apache httpd ({binary}), started by the snippet")


binary = apache_binary  # every service module has one: found, or Missing with the install lines
