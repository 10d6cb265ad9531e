"""NGINX (Debian package nginx-light): the web server and reverse proxy of the servers chapter.

Snippets start NGINX themselves, in the foreground with a temp dir as its prefix and a
config from snippets/servers/nginx/ (see running_nginx() in snippets/servers/nginx_proxy.py),
so a learner runs them with nothing set up. What the tests need from here is the binary:
found, or the test skips with the install command (fails under REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import pytest

from tests.services import require_binary

# Snippets declare `Needs: NGINX_BIN`; the snippet runner sets it from this fixture.
ENV = {"NGINX_BIN": "nginx_bin"}


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    """Path of the nginx binary (/usr/sbin is not on a normal user's PATH, so look there too)."""
    return str(require_binary("nginx", apt="nginx-light", candidates=("/usr/sbin/nginx",)))
