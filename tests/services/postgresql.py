"""PostgreSQL, the real database of the databases chapter (Debian's `postgresql` package).

One server per test session (per xdist worker): `initdb` into a fresh temp dir, then
`postgres` on 127.0.0.1 with an ephemeral port and its unix socket in the same temp dir,
started and stopped by mirakuru. Readiness is a real connection that runs `SELECT 1`,
never a sleep. A port taken between choosing and binding it ("Address already in use")
is retried with another one.

initdb and postgres refuse to run as root (CI containers run as root): then both run as
the `postgres` system user the package creates, with the temp dir owned by it.

Speed over safety: the session server runs with `fsync=off`, `synchronous_commit=off`
and `full_page_writes=off`. That is fine for every lesson EXCEPT durability: a lesson
about crashes and fsync starts its own server with
`running_postgresql(fsync=True)` (a context manager, below) — never the shared one.

Fixtures:
  postgresql_server    session: the running server (host, port, socket dir, data dir)
  database_url         session: libpq URL of the database `backend` on that server
  module_database_url  module:  libpq URL of a fresh, empty database for one test module
Snippets get `DATABASE_URL` from `database_url` (ENV below); each creates its own
uniquely named schema and drops it in `finally`, so they can share one database.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mirakuru import Executor
from mirakuru.exceptions import ProcessExitedWithError

from tests.services import require_binary

# Environment variables this module can provide to snippets (see tests/services/__init__.py).
ENV = {"DATABASE_URL": "database_url"}

# Debian installs the server binaries off PATH, one directory per major version.
CANDIDATES = tuple(
    sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")),
        key=lambda p: int(Path(p).parts[-3]),
        reverse=True,
    )
)
DATABASE = "backend"
START_TIMEOUT = 30.0
_databases = itertools.count()


@dataclass(frozen=True)
class PostgreSQL:
    host: str
    port: int
    socket_dir: Path
    data_dir: Path
    log: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}?connect_timeout=5"


def postgres_binary() -> Path:
    return require_binary("postgres", apt="postgresql", candidates=CANDIDATES)


def _as_postgres_user() -> dict[str, Any]:
    """Popen arguments that drop root to the `postgres` user (initdb/postgres refuse root)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root and there is no `postgres` user to run PostgreSQL as")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresExecutor(Executor):
    """`postgres` in the foreground; started once a real query succeeds."""

    def __init__(self, command: list[str], url: str, log: Path, popen_kwargs: dict[str, Any]):
        self._url = url
        self._log_file = log.open("a")
        super().__init__(
            command,
            timeout=START_TIMEOUT,
            sleep=0.05,
            stop_signal=signal.SIGINT,  # "fast" shutdown: ends open sessions
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            popen_kwargs=popen_kwargs,
        )

    def pre_start_check(self) -> bool:
        return False  # every server gets a fresh data dir and a fresh port

    def after_start_check(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._url, connect_timeout=1, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:  # not listening yet, or "starting up"
            return False

    def close_log(self) -> None:
        self._log_file.close()


@contextlib.contextmanager
def running_postgresql(
    *,
    fsync: bool = False,
    settings: dict[str, str] | None = None,
) -> Iterator[PostgreSQL]:
    """Start a private PostgreSQL in a temp dir; stop it and delete its files on exit.

    fsync=True for lessons about durability (crash and recover); False is faster."""
    postgres = postgres_binary()
    initdb = postgres.parent / "initdb"
    as_user = _as_postgres_user()
    base = Path(tempfile.mkdtemp(prefix="pg-"))  # /tmp, reachable by the postgres user
    try:
        if as_user:
            os.chown(base, as_user["user"], as_user["group"])
        data, log = base / "data", base / "postgresql.log"
        subprocess.run(
            [
                str(initdb),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=base,
            **as_user,
        )
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(base),
            "fsync": "on" if fsync else "off",
            "synchronous_commit": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "max_connections": "100",
            **(settings or {}),
        }
        for attempt in range(5):
            port = _free_port()
            command = [str(postgres), "-D", str(data), "-p", str(port)]
            for key, value in options.items():
                command += ["-c", f"{key}={value}"]
            server = PostgreSQL("127.0.0.1", port, base, data, log)
            executor = PostgresExecutor(command, server.url(), log, {"cwd": base, **as_user})
            try:
                executor.start()
            except ProcessExitedWithError:
                executor.close_log()
                if "Address already in use" in log.read_text() and attempt < 4:
                    continue  # someone took the port between choosing and binding it
                raise RuntimeError(f"postgres did not start:\n{log.read_text()[-2000:]}") from None
            try:
                yield server
            finally:
                executor.stop()  # SIGINT (fast shutdown); mirakuru SIGKILLs after its timeout
                executor.close_log()
            return
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgreSQL]:
    """One PostgreSQL per test session (per xdist worker), with a database `backend`."""
    import psycopg

    with running_postgresql() as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        yield server


@pytest.fixture(scope="session")
def database_url(postgresql_server: PostgreSQL) -> str:
    """libpq URL of the shared database; what snippets get as DATABASE_URL."""
    return postgresql_server.url(DATABASE)


@pytest.fixture(scope="module")
def module_database_url(postgresql_server: PostgreSQL) -> Iterator[str]:
    """A fresh, empty database for one test module, dropped afterwards."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgresql_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    yield postgresql_server.url(name)
    with psycopg.connect(postgresql_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
