"""Redis: `redis-server` on 127.0.0.1 with an ephemeral port, no persistence, its files in
a temp dir; ready when a real client gets PONG; stopped (with anything it spawned) by
mirakuru. REDIS_URL is redis://127.0.0.1:<port>/0."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services import (
    Install,
    ServerProcess,
    Started,
    find_binary,
    start_on_a_free_port,
    temp_dir,
)

NAME = "Redis"
PROVIDES = ("REDIS_URL",)
INSTALL = Install(apt="redis-server", brew="redis")
CANDIDATES = ("/usr/bin/redis-server",)


@dataclass(frozen=True)
class Redis:
    host: str
    port: int
    password: str = ""  # random per server: any local user can reach 127.0.0.1

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"


def redis_binary() -> Path:
    return find_binary("redis-server", INSTALL, CANDIDATES, label="Redis")


def answers(server: Redis) -> bool:
    import redis

    try:
        with redis.Redis.from_url(server.url(), socket_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextlib.contextmanager
def running_redis() -> Iterator[Redis]:
    binary = redis_binary()
    password = secrets.token_urlsafe(24)
    with temp_dir("redis-", in_memory=True) as base:
        log = base / "redis.log"
        config = base / "redis.conf"  # the password in a 0600 file, not on the command line
        config.write_text(f"requirepass {password}\n", encoding="utf-8")
        config.chmod(0o600)

        def make(port: int) -> ServerProcess[Redis]:
            command = [str(binary), str(config), "--bind", "127.0.0.1", "--port", str(port)]
            command += ["--dir", str(base), "--save", "", "--appendonly", "no"]
            command += ["--logfile", "", "--loglevel", "warning", "--daemonize", "no"]
            return ServerProcess(command, Redis("127.0.0.1", port, password), answers, log)

        executor = start_on_a_free_port(make, log)
        try:
            yield executor.server
        finally:
            executor.stop()
            executor.close_log()


def describe(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    version = next((w[2:] for w in out.stdout.split() if w.startswith("v=")), "?")
    return f"Redis {version} ({binary})"


@contextlib.contextmanager
def start() -> Iterator[Started]:
    with running_redis() as server:
        yield Started({"REDIS_URL": server.url()}, describe(redis_binary()), handle=server)


binary = redis_binary  # every service module has one: found, or Missing with the install lines
