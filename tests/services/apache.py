"""Apache httpd (Debian package apache2): its prefork and event MPMs beside NGINX.

Like NGINX, the snippets start Apache themselves (foreground, temp ServerRoot, config from
snippets/servers/nginx/apache.conf); the tests only need the binary and its modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import require_binary, services_required

ENV = {"APACHE2_BIN": "apache2_bin"}
MODULES = Path("/usr/lib/apache2/modules")  # where Debian installs mod_mpm_*.so


@pytest.fixture(scope="session")
def apache2_bin() -> str:
    path = str(require_binary("apache2", apt="apache2", candidates=("/usr/sbin/apache2",)))
    if not (MODULES / "mod_mpm_prefork.so").exists():
        message = f"apache2 has no MPM modules in {MODULES}: sudo apt-get install apache2"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path
