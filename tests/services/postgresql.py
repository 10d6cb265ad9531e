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
A test that crashes a server and restarts it on the same data directory (the durability
lesson) uses `crashable_postgresql()` (a context manager, at the end).
Snippets get `DATABASE_URL` from `database_url` (ENV below); each creates its own
uniquely named schema and drops it in `finally`, so they can share one database.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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


# --- Durability lessons: crash a server, then start it again on the same data directory ---


def _initdb(postgres: Path, data: Path, base: Path, as_user: dict[str, Any]) -> None:
    subprocess.run(
        [
            str(postgres.parent / "initdb"),
            *("-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
            *("--locale=C", "--no-sync"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=base,
        **as_user,
    )


def _live_members(group: int) -> set[int]:
    """Processes of a process group that have not exited yet (zombies have: they hold no
    shared memory, and only their new parent can reap them)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            state, _ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
            if int(pgrp) == group and state not in ("Z", "X"):
                members.add(int(stat.parent.name))
    return members


def _wait_for_group_exit(group: int, timeout: float) -> None:
    """Block until every process of the group has exited: a pidfd becomes readable when
    its process ends, so this waits on the kernel's signal, not on a sleep."""
    deadline = time.monotonic() + timeout
    while members := _live_members(group):
        for pid in members:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise RuntimeError(f"processes {sorted(members)} outlived SIGKILL")
            finally:
                os.close(fd)


class CrashablePostgreSQL:
    """A private server with fsync on that a test can crash and start again on the same
    data directory, so that PostgreSQL's crash recovery runs. Use `crashable_postgresql()`.

    crash() SIGKILLs the postmaster's whole process group — postmaster, backends, WAL
    writer, checkpointer — at once: no process gets to write() or fsync() anything more,
    which is what a server crash (or `pg_ctl stop -m immediate`) does to its memory."""

    def __init__(self, base: Path, options: dict[str, str]) -> None:
        self.base, self.data, self.log = base, base / "data", base / "postgresql.log"
        self.options = options
        self._executor: PostgresExecutor | None = None

    def start(self) -> PostgreSQL:
        """Start postgres on the data directory; after a crash it replays the WAL first."""
        assert self._executor is None, "already running"
        as_user = _as_postgres_user()
        for attempt in range(5):
            port = _free_port()
            command = [str(postgres_binary()), "-D", str(self.data), "-p", str(port)]
            for key, value in self.options.items():
                command += ["-c", f"{key}={value}"]
            server = PostgreSQL("127.0.0.1", port, self.base, self.data, self.log)
            logged = self.log.stat().st_size if self.log.exists() else 0
            executor = PostgresExecutor(
                command, server.url(), self.log, {"cwd": self.base, **as_user}
            )
            try:
                executor.start()
            except ProcessExitedWithError:
                executor.close_log()
                with self.log.open() as log:
                    log.seek(logged)
                    text = log.read()
                if "Address already in use" in text and attempt < 4:
                    continue  # someone took the port between choosing and binding it
                raise RuntimeError(f"postgres did not start:\n{text[-2000:]}") from None
            self._executor = executor
            return server
        raise AssertionError("unreachable")

    def crash(self) -> None:
        """SIGKILL every server process at once and wait until they are all gone."""
        executor = self._executor
        assert executor is not None and executor.process is not None, "not running"
        group = executor.process.pid  # mirakuru starts postgres in its own session
        os.killpg(group, signal.SIGKILL)
        executor.process.wait(timeout=10)
        _wait_for_group_exit(group, timeout=10)  # or the restart finds its shared memory in use
        executor.close_log()
        self._executor = None

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.stop()  # SIGINT: fast shutdown
            self._executor.close_log()
            self._executor = None


@contextlib.contextmanager
def crashable_postgresql(settings: dict[str, str] | None = None) -> Iterator[CrashablePostgreSQL]:
    """A fresh data directory (initdb) for a CrashablePostgreSQL, not yet started; the
    server is stopped and its files deleted on exit. fsync, synchronous_commit and
    full_page_writes are on (PostgreSQL's defaults), unless `settings` says otherwise."""
    postgres = postgres_binary()
    as_user = _as_postgres_user()
    base = Path(tempfile.mkdtemp(prefix="pg-crash-"))
    cluster: CrashablePostgreSQL | None = None
    try:
        if as_user:
            os.chown(base, as_user["user"], as_user["group"])
        _initdb(postgres, base / "data", base, as_user)
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(base),
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "20",
            **(settings or {}),
        }
        cluster = CrashablePostgreSQL(base, options)
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
